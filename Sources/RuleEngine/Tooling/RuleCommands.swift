import Foundation

/// The work behind `cobalt rules check`, `cobalt rules test` and `cobalt eval`, returning text and an exit code
/// so that the command-line tool stays thin and the output can be tested directly.
package enum RuleCommands {
    package struct Output: Sendable {
        package var text: String
        package var exitCode: Int32
    }

    /// `cobalt rules check DIR`: every diagnostic with its snippet, then a one-line summary. Exit 1 on errors.
    package static func check(directory: String, profile: String? = nil, today: Double = Date().timeIntervalSince1970) -> Output {
        let result = RuleLoader(today: today).load(directory: directory, profile: profile)
        var text = result.log.sorted.map(\.description).joined(separator: "\n")
        if !text.isEmpty { text += "\n" }
        let errors = result.log.errors.count
        let warnings = result.log.warnings.count
        if let bundle = result.bundle {
            text += "\(directory): \(bundle.rulesets.count) rule sets, \(bundle.rules.count) rules, \(bundle.vocabulary.facts.count) facts; \(errors) errors, \(warnings) warnings; version \(bundle.version) \(bundle.hash)\n"
        } else {
            text += "\(directory): \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s"); not loaded\n"
        }
        return Output(text: text, exitCode: result.bundle == nil ? 1 : 0)
    }

    /// `cobalt rules test DIR`: loads the rules, runs `DIR/tests/*.yaml`, prints PASS/FAIL per test with a diff
    /// for failures. Exit 1 when anything fails or does not load.
    package static func test(
        directory: String, profile: String? = nil, filter: String? = nil, today: Double = Date().timeIntervalSince1970
    ) -> Output {
        let loaded = RuleLoader(today: today).load(directory: directory, profile: profile)
        var log = loaded.log
        guard loaded.bundle != nil else {
            let text = log.sorted.map(\.description).joined(separator: "\n") + "\nrules did not load; no test run\n"
            return Output(text: text, exitCode: 1)
        }
        // The same tests as the daemon's gate: the directory's against the shipped parameters, a profile's own
        // against the profile's.
        let gate = RuleTestRunner.gate(loaded, directory: directory, profile: profile, filter: filter)
        log.append(contentsOf: gate.log)
        var text = gate.log.sorted.map(\.description).joined(separator: "\n")
        if !text.isEmpty { text += "\n" }
        for (label, outcomes) in [("", gate.shipped), ("profile: ", gate.profile)] {
            for outcome in outcomes {
                text += "\(outcome.passed ? "PASS" : "FAIL") \(label)\(outcome.test.name)\n"
                for failure in outcome.failures { text += "     \(outcome.test.location): \(failure)\n" }
            }
        }
        if !gate.changedByProfile.isEmpty {
            text += "NOTE with the profile's parameters, \(gate.changedByProfile.count) of the directory's tests come out otherwise "
                + "(expected where it moves a threshold; its own tests should cover them):\n"
            for name in gate.changedByProfile { text += "     \(name)\n" }
        }
        let outcomes = gate.outcomes
        let failed = outcomes.filter { !$0.passed }.count
        text += "\(outcomes.count - failed) passed, \(failed) failed\n"
        if outcomes.isEmpty, !gate.log.hasErrors {
            text += filter.map { "no rule test's name contains \($0.jsonQuoted)\n" } ?? "no rule tests found\n"
        }
        return Output(text: text, exitCode: gate.passed && !outcomes.isEmpty ? 0 : 1)
    }

    /// `cobalt rules table DIR`: the clinical rule table (docs/clinical-rules.md).
    package static func table(directory: String, today: Double = Date().timeIntervalSince1970) -> Output {
        let loaded = RuleLoader(today: today).load(directory: directory)
        guard let bundle = loaded.bundle else {
            return Output(text: loaded.log.sorted.map(\.description).joined(separator: "\n") + "\nrules did not load\n", exitCode: 1)
        }
        return Output(text: ClinicalTable.markdown(bundle), exitCode: 0)
    }

    /// `cobalt eval FILE`: evaluates a timeline file (JSON array or JSON Lines) offline.
    package static func eval(
        file: String, directory: String, profile: String? = nil, at: String? = nil, json: Bool,
        today: Double = Date().timeIntervalSince1970
    ) -> Output {
        let loaded = RuleLoader(today: today).load(directory: directory, profile: profile)
        guard let bundle = loaded.bundle else {
            return Output(text: loaded.log.sorted.map(\.description).joined(separator: "\n") + "\nrules did not load\n", exitCode: 1)
        }
        var asOf: Double?
        if let at {
            guard let parsed = Timestamp.parse(at) else { return Output(text: "--at: not an RFC 3339 time: \(at)\n", exitCode: 2) }
            asOf = parsed
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            return Output(text: "\(file): cannot read file\n", exitCode: 2)
        }
        let events: [PatientEvent]
        do { events = try EventDecoder.decodeTimeline(data) } catch {
            return Output(text: error.errors.map { "\(file): \($0.path): \($0.message)" }.joined(separator: "\n") + "\n", exitCode: 1)
        }
        let results = Timelines.evaluate(events, bundle: bundle, at: asOf)
        let text = json ? results.map(\.json).joined(separator: "\n") + "\n" : results.map(\.text).joined(separator: "\n")
        return Output(text: text, exitCode: 0)
    }
}
