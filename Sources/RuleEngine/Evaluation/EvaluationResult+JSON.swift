/// JSON and text renderings of evaluation results (INTERFACES.md §2).
///
/// The JSON is written as bytes into one buffer, with ``JSONEscaping/appendQuoted(_:to:)`` quoting in place, and
/// becomes a `String` once at the end: building it from a string per field, joined, cost an allocation per field
/// and per quoted string, and the daemon builds an alert for every alert that changes.
extension EvaluationResult {
    /// Compact JSON, keys in the documented order.
    package var json: String {
        var out: [UInt8] = []
        out.reserveCapacity(4_096)
        Self.writeHeader(
            patient: patient, clinic: clinic, at: at, rulesetVersion: rulesetVersion, rulesetHash: rulesetHash,
            decisions: decisions, to: &out)
        out += ",\"alerts\":[".utf8
        for (i, alert) in alerts.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            alert.writeJSON(to: &out)
        }
        out.append(UInt8(ascii: "]"))
        if !shadowAlerts.isEmpty {
            out += ",\"shadow_alerts\":[".utf8
            for (i, alert) in shadowAlerts.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                alert.writeJSON(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `{"patient":…,"clinic":…,"at":…,"ruleset":{"version":…,"hash":…},"decisions":{…}` — how both an evaluation
    /// result and a published alert (INTERFACES §2) begin; the caller adds its own members and the closing brace.
    static func writeHeader(
        patient: String, clinic: String, at: Double, rulesetVersion: String, rulesetHash: String,
        decisions: [(name: String, value: Value)], to out: inout [UInt8]
    ) {
        JSONEscaping.appendMember("{\"patient\":", patient, to: &out)
        JSONEscaping.appendMember(",\"clinic\":", clinic, to: &out)
        out += ",\"at\":".utf8
        Timestamp.appendQuoted(at, to: &out)
        JSONEscaping.appendMember(",\"ruleset\":{\"version\":", rulesetVersion, to: &out)
        JSONEscaping.appendMember(",\"hash\":", rulesetHash, to: &out)
        out += "},\"decisions\":{".utf8
        for (i, decision) in decisions.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONEscaping.appendQuoted(decision.name, to: &out)
            out.append(UInt8(ascii: ":"))
            decision.value.writeJSON(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// A readable report for a terminal.
    package var text: String {
        var out = "patient \(patient) (clinic \(clinic)) at \(Timestamp.format(at))\n"
        out += "  rules \(rulesetVersion) \(rulesetHash.prefix(19))…\n"
        for (name, value) in decisions { out += "  \(name): \(value.display)\n" }
        if alerts.isEmpty { out += "  no alerts\n" }
        for alert in alerts { out += alert.text(indent: "  ") }
        for alert in shadowAlerts { out += alert.text(indent: "  (shadow) ") }
        return out
    }
}

extension Alert {
    package var json: String {
        var out: [UInt8] = []
        out.reserveCapacity(2_048)
        writeJSON(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func writeJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        writeMembers(to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// The alert's members, `"id":…` to `"evidence":[…]`, without braces (a published alert adds them to its
    /// context, see ``LazyEvaluation/publishedJSON(_:header:)``).
    func writeMembers(to out: inout [UInt8]) {
        JSONEscaping.appendMember("\"id\":", id, to: &out)
        JSONEscaping.appendMember(",\"rule\":", rule, to: &out)
        JSONEscaping.appendMember(",\"ruleset_id\":", ruleset, to: &out)
        JSONEscaping.appendMember(",\"category\":", category, to: &out)
        JSONEscaping.appendMember(",\"severity\":", severity, to: &out)
        JSONEscaping.appendMember(",\"summary\":", summary, to: &out)
        JSONEscaping.appendMember(",\"detail\":", detail, to: &out)
        JSONEscaping.appendMember(",\"recommendation\":", recommendation, to: &out)
        out += ",\"citations\":[".utf8
        for (i, citation) in citations.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONEscaping.appendQuoted(citation, to: &out)
        }
        out += "],\"evidence\":[".utf8
        for (i, item) in evidence.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            item.writeJSON(to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    func text(indent: String) -> String {
        var out = "\(indent)[\(severity)] \(category) (\(rule)): \(summary)\n"
        out += "\(indent)    \(detail)\n"
        out += "\(indent)    → \(recommendation)\n"
        for item in evidence { out += "\(indent)    evidence: \(item.text)\n" }
        out += "\(indent)    sources: \(citations.joined(separator: "; "))\n"
        return out
    }
}

extension Evidence {
    package var json: String {
        var out: [UInt8] = []
        writeJSON(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func writeJSON(to out: inout [UInt8]) {
        JSONEscaping.appendMember("{\"fact\":", fact, to: &out)
        out += ",\"value\":".utf8
        value.writeJSONScalar(to: &out)
        if case .quantity(_, let unit) = value {
            JSONEscaping.appendMember(",\"unit\":", unit.symbol, to: &out)
        }
        if reportedValue != nil || reportedUnit != nil {
            out += ",\"reported\":{".utf8
            switch reportedValue {
            case .number(let n)?:
                out += "\"value\":".utf8
                out += n.formatted.utf8
                out.append(UInt8(ascii: ","))
            case .text(let t)?:
                JSONEscaping.appendMember("\"value\":", t, to: &out)
                out.append(UInt8(ascii: ","))
            case nil: break
            }
            out += "\"unit\":".utf8
            if let reportedUnit { JSONEscaping.appendQuoted(reportedUnit, to: &out) } else { out += "null".utf8 }
            out.append(UInt8(ascii: "}"))
        }
        if let time {
            out += ",\"time\":".utf8
            Timestamp.appendQuoted(time, to: &out)
        }
        if let event {
            JSONEscaping.appendMember(",\"event\":", event, to: &out)
        }
        if let rule {
            JSONEscaping.appendMember(",\"rule\":", rule, to: &out)
        }
        if let note {
            JSONEscaping.appendMember(",\"note\":", note, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    var text: String {
        var out = "\(fact) \(value.display)"
        if let reportedValue {
            let shown: String
            switch reportedValue {
            case .number(let n): shown = n.formatted
            case .text(let t): shown = t
            }
            out += " (reported \(shown)\(reportedUnit.map { " \($0)" } ?? ", no unit"))"
        }
        if let note { out += " — \(note)" }
        if let time { out += " at \(Timestamp.format(time))" }
        if let event { out += " [\(event)]" }
        if let rule { out += " [rule \(rule)]" }
        return out
    }
}

extension Value {
    /// The value as JSON, quantities as `{"value", "unit"}`.
    package var json: String {
        var out: [UInt8] = []
        writeJSON(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func writeJSONScalar(to out: inout [UInt8]) {
        switch self {
        case .unknown: out += "null".utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .number(let n): out += n.formatted.utf8
        case .quantity(let v, _): out += v.formatted.utf8
        case .text(let t): JSONEscaping.appendQuoted(t, to: &out)
        case .time(let t): Timestamp.appendQuoted(t, to: &out)
        case .textSet(let s):
            out.append(UInt8(ascii: "["))
            for (i, text) in s.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONEscaping.appendQuoted(text, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    func writeJSON(to out: inout [UInt8]) {
        switch self {
        case .quantity(let v, let u):
            out += "{\"value\":".utf8
            out += v.formatted.utf8
            JSONEscaping.appendMember(",\"unit\":", u.symbol, to: &out)
            out.append(UInt8(ascii: "}"))
        case .unknown: out += "\"unknown\"".utf8
        default: writeJSONScalar(to: &out)
        }
    }
}
