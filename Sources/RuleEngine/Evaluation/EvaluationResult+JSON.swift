/// JSON and text renderings of evaluation results (INTERFACES.md §2).
extension EvaluationResult {
    /// Compact JSON, keys in the documented order.
    package var json: String {
        var fields: [String] = [
            "\"patient\":\(patient.jsonQuoted)", "\"clinic\":\(clinic.jsonQuoted)",
            "\"at\":\(Timestamp.format(at).jsonQuoted)",
            "\"ruleset\":{\"version\":\(rulesetVersion.jsonQuoted),\"hash\":\(rulesetHash.jsonQuoted)}",
        ]
        fields.append("\"decisions\":{" + decisions.map { "\($0.name.jsonQuoted):\($0.value.json)" }.joined(separator: ",") + "}")
        fields.append("\"alerts\":[" + alerts.map(\.json).joined(separator: ",") + "]")
        if !shadowAlerts.isEmpty {
            fields.append("\"shadow_alerts\":[" + shadowAlerts.map(\.json).joined(separator: ",") + "]")
        }
        return "{" + fields.joined(separator: ",") + "}"
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
        let fields = [
            "\"id\":\(id.jsonQuoted)", "\"rule\":\(rule.jsonQuoted)", "\"ruleset_id\":\(ruleset.jsonQuoted)",
            "\"category\":\(category.jsonQuoted)", "\"severity\":\(severity.jsonQuoted)",
            "\"summary\":\(summary.jsonQuoted)", "\"detail\":\(detail.jsonQuoted)",
            "\"recommendation\":\(recommendation.jsonQuoted)",
            "\"citations\":[" + citations.map(\.jsonQuoted).joined(separator: ",") + "]",
            "\"evidence\":[" + evidence.map(\.json).joined(separator: ",") + "]",
        ]
        return "{" + fields.joined(separator: ",") + "}"
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
        var fields = ["\"fact\":\(fact.jsonQuoted)", "\"value\":\(value.jsonScalar)"]
        if case .quantity(_, let unit) = value { fields.append("\"unit\":\(unit.symbol.jsonQuoted)") }
        if reportedValue != nil || reportedUnit != nil {
            var reported: [String] = []
            switch reportedValue {
            case .number(let n)?: reported.append("\"value\":\(n.formatted)")
            case .text(let t)?: reported.append("\"value\":\(t.jsonQuoted)")
            case nil: break
            }
            reported.append("\"unit\":\(reportedUnit.map(\.jsonQuoted) ?? "null")")
            fields.append("\"reported\":{" + reported.joined(separator: ",") + "}")
        }
        if let time { fields.append("\"time\":\(Timestamp.format(time).jsonQuoted)") }
        if let event { fields.append("\"event\":\(event.jsonQuoted)") }
        if let rule { fields.append("\"rule\":\(rule.jsonQuoted)") }
        if let note { fields.append("\"note\":\(note.jsonQuoted)") }
        return "{" + fields.joined(separator: ",") + "}"
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
    /// The value as JSON; quantities give their number (the unit travels beside it).
    package var jsonScalar: String {
        switch self {
        case .unknown: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n.formatted
        case .quantity(let v, _): return v.formatted
        case .text(let t): return t.jsonQuoted
        case .time(let t): return Timestamp.format(t).jsonQuoted
        case .textSet(let s): return "[" + s.sorted().map(\.jsonQuoted).joined(separator: ",") + "]"
        }
    }

    /// The value as JSON, quantities as `{"value", "unit"}`.
    package var json: String {
        if case .quantity(let v, let u) = self { return "{\"value\":\(v.formatted),\"unit\":\(u.symbol.jsonQuoted)}" }
        if case .unknown = self { return "\"unknown\"" }
        return jsonScalar
    }
}
