import CobaltStore
import RuleEngine

/// The alert lifecycle per patient × rule, as a plain value: compares what an evaluation raised with what was
/// published before and says what to publish. An alert is published when it starts (`firing`), when its
/// clinical content changes (`updated`), and when it stops (`resolved`) — not again on every event.
struct AlertLifecycle {
    /// The changes that take `previous` (stored states of one patient, by rule) to `evaluation`. Texts and
    /// evidence are built only for alerts that changed; shadow alerts (rule sets in `testing`) are never published.
    static func changes(previous: [String: AlertState], evaluation: LazyEvaluation) -> [AlertChange] {
        var changes: [AlertChange] = []
        var current: Set<String> = []
        var header: [UInt8]?
        for index in 0..<evaluation.count where !evaluation.isShadow(index) {
            let rule = evaluation.rule(index)
            current.insert(rule)
            let digest = evaluation.digest(index)
            let status: AlertChange.Status
            if let before = previous[rule] {
                guard before.digest != digest else { continue }
                status = .updated
            } else {
                status = .firing
            }
            if header == nil { header = evaluation.publishedHeader }
            let alert = evaluation.alert(index)
            var change = AlertChange(
                patient: evaluation.patient, rule: rule, clinic: evaluation.clinic, alertID: evaluation.alertID(index),
                status: status, digest: digest, body: evaluation.publishedJSON(alert, header: header!))
            change.severity = alert.severity
            changes.append(change)
        }
        for (rule, state) in previous.filter({ !current.contains($0.key) }).sorted(by: { $0.key < $1.key }) {
            var change = AlertChange(
                patient: state.patient, rule: rule, clinic: state.clinic, alertID: state.alertID, status: .resolved,
                digest: state.digest, body: state.body)
            change.severity = state.severity
            changes.append(change)
        }
        return changes
    }
}
