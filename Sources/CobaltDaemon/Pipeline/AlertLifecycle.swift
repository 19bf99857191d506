import CobaltStore
import RuleEngine

/// The alert lifecycle per patient × rule, as a plain value: compares what an evaluation raised with what was
/// published before and says what to publish. An alert is published when it starts (`firing`), when its
/// clinical content changes (`updated`), and when it stops (`resolved`) — not again on every event.
///
/// An alert lives in the stream of one clinic, the clinic of the event that raised it. When a patient's events
/// come from another clinic while an alert of hers is open, the alert is `resolved` in the old clinic's stream and
/// `firing` in the new one's, as Alertmanager treats an alert whose labels changed: each clinic's stream stays
/// whole (every alert id it shows starts `firing` and ends `resolved`), and the clinic now sending her events
/// sees what is open for her.
struct AlertLifecycle {
    /// The changes that take `previous` (stored states of one patient, by rule) to `evaluation`. Texts and
    /// evidence are built only for alerts that changed; shadow alerts (rule sets in `testing`) are never published.
    /// `memo` holds the patient's remembered digests (``DigestMemo``), kept up to date here.
    static func changes(previous: [String: AlertState], evaluation: LazyEvaluation, memo: inout DigestMemo) -> [AlertChange] {
        var changes: [AlertChange] = []
        // Previous alerts that fire again (a rule fires at most once per evaluation, and rule ids are unique): when
        // that is all of them, nothing resolved, and no set of the rules that fired is needed — the usual case.
        var firingAgain = 0
        var header: [UInt8]?
        for index in 0..<evaluation.count where !evaluation.isShadow(index) {
            let rule = evaluation.rule(index)
            let digest = evaluation.digest(index, memo: &memo)
            let status: AlertChange.Status
            if let before = previous[rule] {
                firingAgain += 1
                if before.clinic != evaluation.clinic {
                    changes.append(resolution(of: before, moved: true))
                    status = .firing
                } else {
                    guard before.digest != digest else { continue }
                    status = .updated
                }
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
        guard firingAgain < previous.count else { return changes }
        let current = Set((0..<evaluation.count).lazy.filter { !evaluation.isShadow($0) }.map(evaluation.rule))
        for rule in previous.keys.sorted() where !current.contains(rule) {
            changes.append(resolution(of: previous[rule]!))
        }
        return changes
    }

    /// The end of a stored alert, in the stream of the clinic it was published to, with its last published body.
    /// An alert that ends because it moved to another clinic says so (`"resolution": "moved"`), so that nobody
    /// reads it as the condition having resolved; the other clinic is not named.
    private static func resolution(of state: AlertState, moved: Bool = false) -> AlertChange {
        var body = state.body
        if moved, body.hasPrefix("{") {
            body = "{\"resolution\":\"moved\"" + (body.dropFirst().hasPrefix("}") ? "" : ",") + body.dropFirst()
        }
        var change = AlertChange(
            patient: state.patient, rule: state.rule, clinic: state.clinic, alertID: state.alertID, status: .resolved,
            digest: state.digest, body: body)
        change.severity = state.severity
        return change
    }
}
