internal import Crypto

/// An evaluation whose alerts are not yet rendered: decisions are final; each fired alert keeps its placeholder
/// values and the range of evidence it read. ``digest(_:)`` identifies an alert's clinical content without
/// building its text; ``alert(_:)`` builds the text and evidence.
package struct LazyEvaluation: Sendable {
    struct Fired: Sendable {
        let rule: Int
        let evidence: Range<Int>
        let values: [Value]
    }

    private(set) var state: Evaluator.State
    private(set) var fired: [Fired]

    init(state: consuming Evaluator.State, fired: consuming [Fired]) {
        self.state = state
        self.fired = fired
    }

    /// Ends the evaluation and gives its buffers back, for the next one to reuse (see ``Evaluator/Scratch``).
    package consuming func recycle() -> Evaluator.Scratch {
        var scratch = Evaluator.Scratch()
        state.release(into: &scratch)
        swap(&scratch.fired, &fired)
        return scratch
    }

    /// Number of alerts fired (published and shadow).
    package var count: Int { fired.count }

    package var patient: String { state.timeline.patient }
    package var clinic: String { state.timeline.clinic }
    package var at: Double { state.now }
    package var rulesetVersion: String { state.bundle.version }
    package var rulesetHash: String { state.bundle.hash }

    /// The rule id of a fired alert.
    package func rule(_ index: Int) -> String { state.bundle.rules[fired[index].rule].id }

    /// Whether a fired alert belongs to a rule set in `testing` (shadow) status.
    package func isShadow(_ index: Int) -> Bool { state.bundle.rules[fired[index].rule].shadow }

    /// The alert's identity (patient × rule), without revealing the patient identifier.
    package func alertID(_ index: Int) -> String { Evaluator.alertID(patient: patient, rule: rule(index)) }

    /// A digest of the alert's clinical content: rule, category, severity, the wording of its texts and every
    /// value they show. Equal digests mean equal alerts.
    package func digest(_ index: Int) -> String {
        // The constant part (id, category, severity, wording) is hashed once when the rule is compiled.
        var hasher = state.bundle.rules[fired[index].rule].digestPrefix
        // The values' bytes are gathered and hashed in one update (the same byte stream, so the same digest, as one
        // update per value): each update of the hash state has a fixed cost, and a separator joined to each display
        // string cost an allocation per value.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        for value in fired[index].values {
            bytes.append(0x1F)
            bytes += value.display.utf8
        }
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hasher.finalize().hexDigits(limit: 16)
    }

    /// ``digest(_:)``, or the digest remembered in `memo` when the rule fired before, from a bundle with the same
    /// hash, with equal values (the usual case: an alert that goes on firing, unchanged, event after event). The
    /// digest is a function of the rule's constant part, which the bundle hash covers, and of the values' display;
    /// equal values display alike, so the remembered digest is the one ``digest(_:)`` would compute. A reload that
    /// changes anything (the wording, say) changes the hash, so nothing is reused across it, and the memo keeps no
    /// old rule set alive (a compiled rule's identity would, or could be reused at the same address).
    package func digest(_ index: Int, memo: inout DigestMemo) -> String {
        let (rule, values, bundle) = (rule(index), fired[index].values, state.bundle.hash)
        if let known = memo.entries[rule], known.bundle == bundle, known.values == values { return known.digest }
        let digest = digest(index)
        memo.entries[rule] = (bundle, values, digest)
        return digest
    }

    /// The beginning shared by every alert this evaluation publishes: context and decisions (see
    /// ``EvaluationResult/writeHeader(patient:clinic:at:rulesetVersion:rulesetHash:decisions:to:)``).
    package var publishedHeader: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1_024)
        EvaluationResult.writeHeader(
            patient: patient, clinic: clinic, at: at, rulesetVersion: rulesetVersion, rulesetHash: rulesetHash,
            decisions: decisions, to: &out)
        return out
    }

    /// A published alert (INTERFACES §2) before the store adds `seq`, `epoch`, `status` and `time`: the shared
    /// `header`, then the alert's own members.
    package func publishedJSON(_ alert: Alert, header: [UInt8]) -> String {
        var out = header
        out.reserveCapacity(header.count + 2_048)
        out.append(UInt8(ascii: ","))
        alert.writeMembers(to: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Builds the alert: texts from the recorded values, evidence from the recorded facts.
    package func alert(_ index: Int) -> Alert {
        let item = fired[index]
        let rule = state.bundle.rules[item.rule]
        let alert = rule.alert!
        var values = item.values.makeIterator()
        func render(_ template: Template) -> String {
            var out = ""
            for part in template.parts {
                switch part {
                case .text(let text): out += text
                case .code: out += values.next()?.display ?? "unknown"
                }
            }
            return out
        }
        let summary = Evaluator.limit(render(alert.summary), to: RuleBundle.summaryLimit - 1)
        let detail = render(alert.detail)
        let recommendation = render(alert.recommendation)
        return Alert(
            id: alertID(index), rule: rule.id, ruleset: rule.ruleset, category: alert.category,
            severity: alert.severity.rawValue, summary: summary, detail: detail, recommendation: recommendation,
            citations: alert.citations, evidence: state.materialize(item.evidence))
    }

    /// Published derived facts in declaration order.
    package var decisions: [(name: String, value: Value)] {
        state.bundle.derived.filter { $0.publish && !$0.shadow }.map { ($0.name, state.derived[$0.slot] ?? $0.defaultValue) }
    }

    /// Everything built: the result of INTERFACES §2.
    package func result() -> EvaluationResult {
        var alerts: [Alert] = []
        var shadow: [Alert] = []
        for index in fired.indices {
            if isShadow(index) { shadow.append(alert(index)) } else { alerts.append(alert(index)) }
        }
        let derived = state.bundle.derived.map { ($0.name, state.derived[$0.slot] ?? $0.defaultValue) }
        return EvaluationResult(
            patient: patient, clinic: clinic, at: at, rulesetVersion: state.bundle.version,
            rulesetHash: state.bundle.hash, decisions: decisions, alerts: alerts, shadowAlerts: shadow, derived: derived)
    }
}

/// Alert digests computed for one patient, by rule id, with the bundle hash and the values each was computed from
/// (see ``LazyEvaluation/digest(_:memo:)``). Entries of rules that stopped firing stay; there is one per rule id
/// at most.
package struct DigestMemo: Sendable {
    fileprivate var entries: [String: (bundle: String, values: [Value], digest: String)] = [:]

    package init() {}

    /// Rules with a remembered digest.
    package var count: Int { entries.count }
}
