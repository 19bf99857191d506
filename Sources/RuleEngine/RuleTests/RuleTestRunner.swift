/// Runs rule tests against a bundle and explains each failure as a diff of expected and actual.
package enum RuleTestRunner {
    package static func run(_ tests: [RuleTest], bundle: RuleBundle) -> [RuleTestOutcome] {
        tests.map { run($0, bundle: bundle) }
    }

    package static func run(_ test: RuleTest, bundle: RuleBundle) -> RuleTestOutcome {
        var failures: [String] = []
        let results = Timelines.evaluate(test.events, bundle: bundle, at: test.at)
        guard results.count == 1, let result = results.first else {
            return RuleTestOutcome(test: test, failures: ["expected one patient in the timeline, found \(results.count)"], result: nil)
        }
        for (name, expected) in test.decisions {
            guard let actual = result.derivedValue(name) else {
                failures.append("decision \(name): no such derived fact")
                continue
            }
            if actual.display != expected {
                failures.append("decision \(name): expected \(expected), got \(actual.display)")
            }
        }
        for expectation in test.alerts where !result.alerts.contains(where: expectation.matches) {
            failures.append("missing alert: \(expectation)")
        }
        let alertRules = bundle.rules.filter { $0.alert != nil }
        for name in test.absent where !alertRules.contains(where: { $0.id == name || $0.alert?.category == name }) {
            // A misspelt name can never match: the test would assert nothing.
            failures.append("absent: '\(name)' is no alert rule or category of the rules")
        }
        for name in test.absent {
            for alert in result.alerts where alert.rule == name || alert.category == name {
                failures.append("unexpected alert: \(alert.category) (\(alert.rule)): \(alert.summary)")
            }
        }
        if let fired = test.fired {
            let rules = Set(alertRules.map(\.id))
            for name in fired where !rules.contains(name) {
                failures.append("fired: no alert rule '\(name)' in the rules")
            }
            let actual = result.alerts.map(\.rule)
            for name in fired where rules.contains(name) && !actual.contains(name) {
                failures.append("missing alert: \(name) (listed in fired)")
            }
            for alert in result.alerts where !fired.contains(alert.rule) {
                failures.append("unexpected alert: \(alert.category) (\(alert.rule)): \(alert.summary) (not listed in fired)")
            }
        }
        if !failures.isEmpty {
            failures.append("alerts fired: " + (result.alerts.isEmpty ? "none" : result.alerts.map { "\($0.category) (\($0.rule))" }.joined(separator: ", ")))
        }
        return RuleTestOutcome(test: test, failures: failures, result: result)
    }
}
