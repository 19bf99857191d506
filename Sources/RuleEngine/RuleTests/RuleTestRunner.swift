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

extension RuleTestRunner {
    /// The rule tests that stand between a rules directory and going live (the daemon's start and every reload,
    /// and `cobalt rules test`).
    package struct Gate {
        /// The directory's own tests (`tests/`), run against the rules with the parameters they ship with.
        package var shipped: [RuleTestOutcome] = []
        /// A profile's own tests, run against the rules with the profile's parameters.
        package var profile: [RuleTestOutcome] = []
        /// The directory's tests whose outcome the profile changes (they pass as shipped and fail with the profile's
        /// parameters): not a failure — moving a threshold moves the cases on it — but shown, so that a clinical
        /// owner sees which vignettes and boundaries the site's rules now decide differently, and can check that the
        /// profile's own tests cover them.
        package var changedByProfile: [String] = []
        /// Rule-test files that cannot be read, and tests that are missing.
        package var log = DiagnosticLog()

        package var outcomes: [RuleTestOutcome] { shipped + profile }
        package var passed: Bool { !log.hasErrors && outcomes.allSatisfy(\.passed) }
    }

    /// Runs the gate's tests. The directory's tests describe the rules as shipped (the clinical vignettes follow
    /// REFERENCE.md's defaults), so they run against the rules compiled without the profile: a site that moves a
    /// threshold would otherwise fail every test sitting on it and could never go live. The profile's thresholds are
    /// the site's to test: its `tests:` run against the rules as they will run, and a profile without tests is
    /// refused. Both sets must exist.
    package static func gate(_ loaded: RuleLoader.Result, directory: String, profile: String?, filter: String? = nil) -> Gate {
        var gate = Gate()
        guard let bundle = loaded.bundle else { return gate }
        func selected(_ tests: [RuleTest]) -> [RuleTest] { filter.map { f in tests.filter { $0.name.contains(f) } } ?? tests }
        let testDirectory = directory.hasSuffix("/") ? directory + "tests" : directory + "/tests"
        let shipped = RuleTestLoader.load(directory: testDirectory, log: &gate.log)
        if shipped.isEmpty, !gate.log.hasErrors {
            gate.log.error(
                SourceLocation(file: testDirectory, line: 1, column: 1),
                "no rule tests; rules go live only after their tests (clinical vignettes, expected silence) pass")
        }
        guard let profile else {
            gate.shipped = run(selected(shipped), bundle: bundle)
            return gate
        }
        guard let defaults = loaded.defaults else {
            gate.log.error(SourceLocation(file: profile, line: 1, column: 1), "the rules did not compile without the profile")
            return gate
        }
        gate.shipped = run(selected(shipped), bundle: defaults)
        let passing = gate.shipped.filter(\.passed).map(\.test)
        gate.changedByProfile = run(passing, bundle: bundle).filter { !$0.passed }.map(\.test.name)
        guard let path = loaded.profileTests else {
            gate.log.error(
                SourceLocation(file: profile, line: 1, column: 1),
                "the profile has no rule tests: its thresholds go live only after tests of them pass (tests: FILE or DIRECTORY, beside the profile)")
            return gate
        }
        let own = RuleTestLoader.load(path: path, log: &gate.log)
        if own.isEmpty, !gate.log.hasErrors {
            gate.log.error(SourceLocation(file: path, line: 1, column: 1), "the profile's rule tests are missing")
        }
        gate.profile = run(selected(own), bundle: bundle)
        return gate
    }
}
