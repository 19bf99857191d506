/// A rule test: a patient timeline and what must (and must not) come out of evaluating it.
package struct RuleTest: Sendable {
    /// One expected alert: matched by rule id or category (a bare string matches either), optionally severity
    /// and text that must appear in the summary, detail or recommendation.
    package struct AlertExpectation: Sendable, CustomStringConvertible {
        package var match: String
        package var severity: String?
        package var text: [String]

        package func matches(_ alert: Alert) -> Bool {
            guard alert.rule == match || alert.category == match else { return false }
            if let severity, alert.severity != severity { return false }
            let body = "\(alert.summary)\n\(alert.detail)\n\(alert.recommendation)"
            return text.allSatisfy { body.contains($0) }
        }

        package var description: String {
            var out = match
            if let severity { out += " (\(severity))" }
            if !text.isEmpty { out += " containing " + text.map { "\"\($0)\"" }.joined(separator: ", ") }
            return out
        }
    }

    package var name: String
    package var location: SourceLocation
    package var at: Double?
    package var events: [PatientEvent]
    package var decisions: [(name: String, value: String)]
    package var alerts: [AlertExpectation]
    package var absent: [String]
    /// When given, exactly the alerts of these rules fire (by rule id, in any order): every other alert is a failure.
    package var fired: [String]? = nil
}

/// The outcome of one rule test.
package struct RuleTestOutcome: Sendable {
    package var test: RuleTest
    package var failures: [String]
    package var result: EvaluationResult?

    package var passed: Bool { failures.isEmpty }
}
