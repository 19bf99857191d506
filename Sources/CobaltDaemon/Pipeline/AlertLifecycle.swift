import CobaltStore
import Crypto
import RuleEngine

/// The alert lifecycle per patient × rule, as a plain value: compares what an evaluation raised with what was
/// published before and says what to publish. An alert is published when it starts (`firing`), when its
/// clinical content changes (`updated`), and when it stops (`resolved`) — not again on every event.
struct AlertLifecycle {
    /// The clinical content that decides "updated": category, severity, summary, detail, recommendation.
    static func digest(_ alert: Alert) -> String {
        let content = [alert.category, alert.severity, alert.summary, alert.detail, alert.recommendation].joined(separator: "\u{1F}")
        return SHA256.hash(data: Array(content.utf8)).prefix(16).map { byte in
            byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
    }

    /// The changes that take `previous` (stored states of one patient, by rule) to `result`.
    static func changes(previous: [String: AlertState], result: EvaluationResult) -> [AlertChange] {
        var changes: [AlertChange] = []
        var current: Set<String> = []
        for alert in result.alerts {
            current.insert(alert.rule)
            let digest = digest(alert)
            let status: AlertChange.Status
            if let before = previous[alert.rule] {
                guard before.digest != digest else { continue }
                status = .updated
            } else {
                status = .firing
            }
            changes.append(AlertChange(
                patient: result.patient, rule: alert.rule, clinic: result.clinic, alertID: alert.id, status: status,
                digest: digest, body: body(alert, result)))
        }
        for (rule, state) in previous.sorted(by: { $0.key < $1.key }) where !current.contains(rule) {
            changes.append(AlertChange(
                patient: state.patient, rule: rule, clinic: state.clinic, alertID: state.alertID, status: .resolved,
                digest: state.digest, body: state.body))
        }
        return changes
    }

    /// The published alert (INTERFACES §2) before the store adds `seq`, `epoch`, `status` and `time`.
    static func body(_ alert: Alert, _ result: EvaluationResult) -> String {
        let alertJSON = alert.json  // {"id":…,"rule":…, …}
        let context = [
            "\"patient\":\(result.patient.jsonQuoted)", "\"clinic\":\(result.clinic.jsonQuoted)",
            "\"at\":\(Timestamp.format(result.at).jsonQuoted)",
            "\"ruleset\":{\"version\":\(result.rulesetVersion.jsonQuoted),\"hash\":\(result.rulesetHash.jsonQuoted)}",
            "\"decisions\":{" + result.decisions.map { "\($0.name.jsonQuoted):\($0.value.json)" }.joined(separator: ",") + "}",
        ].joined(separator: ",")
        return "{" + context + "," + alertJSON.dropFirst()
    }
}
