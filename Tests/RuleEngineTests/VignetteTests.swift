import Foundation
import Testing
@testable import RuleEngine

/// Every rule test in Rules/tests (the clinical vignettes and the boundary cases) runs as an individual test, so a
/// change that breaks one names it. The same files are what `cobalt rules test Rules` runs.
@Suite struct VignetteTests {
    static let tests: [RuleTest] = {
        var log = DiagnosticLog()
        let tests = RuleTestLoader.load(directory: Support.rulesDirectory + "/tests", log: &log)
        precondition(!log.hasErrors, log.sorted.map(\.description).joined(separator: "\n"))
        return tests
    }()

    @Test func everyVignetteIsEncoded() {
        let names = Set(Self.tests.compactMap { $0.name.split(separator: " ").first.map(String.init) })
        #expect(names.isSuperset(of: (1...21).map { String(format: "C%02d", $0) }))
    }

    @Test(arguments: tests.map(\.name))
    func vignette(_ name: String) throws {
        let test = try #require(Self.tests.first { $0.name == name })
        let outcome = RuleTestRunner.run(test, bundle: Support.bundled)
        #expect(outcome.failures.isEmpty, "\(outcome.failures.joined(separator: "\n"))")
    }

    /// A rule test must be able to fail: a wrong expectation is reported with expected and actual.
    @Test func wrongExpectationsFailWithADiff() throws {
        var test = try #require(Self.tests.first { $0.name.hasPrefix("C01") })
        test.decisions = [("b12.status", "borderline")]
        test.alerts = [.init(match: "anaphylaxis", severity: nil, text: [])]
        test.absent = ["deficiency"]
        let outcome = RuleTestRunner.run(test, bundle: Support.bundled)
        #expect(outcome.failures.prefix(3) == [
            "decision b12.status: expected borderline, got deficient",
            "missing alert: anaphylaxis",
            "unexpected alert: deficiency (b12.deficiency-alert): Vitamin B12 deficiency (latest B12 result 18 pmol/L)",
        ])
    }
}

extension VignetteTests {
    /// `fired` holds every alert: one more that fires, one listed that does not, and a name that is no alert rule
    /// each fail.
    @Test func firedListsExactlyTheAlertsThatFire() throws {
        var test = try #require(Self.tests.first { $0.name.hasPrefix("C01") })
        test.fired = ["b12.deficiency-alert", "route.recommendation", "monitoring.treatment-review"]
        #expect(RuleTestRunner.run(test, bundle: Support.bundled).failures.isEmpty)
        test.fired = ["b12.deficiency-alert", "route.recommendation", "anaemia", "b12.route"]
        let failures = RuleTestRunner.run(test, bundle: Support.bundled).failures
        #expect(failures.prefix(3) == [
            "fired: no alert rule 'b12.route' in the rules",
            "missing alert: anaemia (listed in fired)",
            "unexpected alert: monitoring (monitoring.treatment-review): Clinical review 1 month after starting B12 treatment (not listed in fired)",
        ], "\(failures)")
    }
}

/// Rule tests must be able to fail: shifting each threshold just past its boundary (a profile, rules untouched)
/// must fail exactly the boundary cases that sit on it.
@Suite struct BoundaryMutationTests {
    @Test func shiftedThresholdsAreCaught() throws {
        let profile = Support.fixtures + "/mutant-profile.yaml"
        let bundle = try #require(RuleLoader(today: Support.today).load(directory: Support.rulesDirectory, profile: profile).bundle)
        let failed = Set(RuleTestRunner.run(VignetteTests.tests, bundle: bundle).filter { !$0.passed }.map(\.test.name))
        #expect(failed == [
            "total B12 180 ng/L not pregnant is borderline", "active B12 70.1 pmol/L is not-deficient",
            "borderline total B12 with MMA 0.45 umol/L is not-deficient",
            "borderline total B12 with MMA 450 nmol/L is not-deficient", "total B12 133 pmol/L is 180.2 ng/L, borderline",
            "total B12 180 pg/mL is 180 ng/L, borderline", "total B12 180 ng/L is 180 ng/L, borderline",
            "folic acid 1 mg with no B12 result", "folic acid 7 mg weekly with no B12 result", "C14 folic acid exactly 1 mg",
            "MCV 100 fL is not macrocytic, so total B12 150 ng/L in pregnancy stays borderline",
            "ferritin 30 ug/L is not iron deficiency", "homocysteine 15 umol/L with folate not low is not raised",
        ])
    }
}

/// docs/clinical-rules.md is generated from the rules; it must match them.
@Suite struct ClinicalTableTests {
    @Test func documentMatchesTheRules() throws {
        let path = Support.repositoryRoot.appendingPathComponent("docs/clinical-rules.md").path
        let document = try String(contentsOfFile: path, encoding: .utf8)
        #expect(document == ClinicalTable.markdown(Support.bundled), "regenerate with: swift run cobalt rules table Rules > docs/clinical-rules.md")
    }
}

/// The CLI's work, end to end on real files: output text and exit codes.
@Suite struct CommandTests {
    @Test func checkReportsSummaryAndExitCode() throws {
        let ok = RuleCommands.check(directory: Support.rulesDirectory, today: Support.today)
        #expect(ok.exitCode == 0)
        #expect(ok.text.contains("0 errors, 0 warnings; version 2026.11.2 sha256:"))
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + "\nrules:\n  - id: r\n    when: latest(b12.totl) < 1 ng/L\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"])
        defer { scratch.remove() }
        let bad = RuleCommands.check(directory: scratch.path, today: Support.today)
        #expect(bad.exitCode == 1)
        #expect(bad.text.hasPrefix("\(scratch.path)/rulesets/a.yaml:11:18: error: unknown fact 'b12.totl' (did you mean 'b12.total'?)\n    when: latest(b12.totl) < 1 ng/L\n                 ^\n"))
        #expect(bad.text.hasSuffix("1 error, 0 warnings; not loaded\n"))
    }

    @Test func testCommandFailsWhenARuleTestFails() throws {
        let rules = Support.header() + "\nrules:\n  - id: r\n    when: exists(numbness)\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"
        let tests = """
            tests:
              - name: fires
                events: [{time: 2026-11-20T09:00:00Z, symptoms: [{code: numbness}]}]
                expect: {alerts: [r]}
              - name: wrongly expects silence
                events: [{time: 2026-11-20T09:00:00Z, symptoms: [{code: numbness}]}]
                expect: {absent: [note]}
            """
        let scratch = try Support.ScratchRules(["a.yaml": rules], tests: ["t.yaml": tests])
        defer { scratch.remove() }
        let output = RuleCommands.test(directory: scratch.path, today: Support.today)
        #expect(output.exitCode == 1)
        #expect(output.text.contains("PASS fires\n"))
        #expect(output.text.contains("FAIL wrongly expects silence\n     \(scratch.path)/tests/t.yaml:5:5: unexpected alert: note (r): s\n"))
        #expect(output.text.hasSuffix("1 passed, 1 failed\n"))
        let bundled = RuleCommands.test(directory: Support.rulesDirectory, today: Support.today)
        #expect(bundled.exitCode == 0, "\(bundled.text)")
    }

    /// `absent: [folate-maskin]` (a typo) names no rule and no category: it can never match, so the "must not fire"
    /// assertion is vacuous. It must be reported (like an unknown decision), not pass silently.
    @Test func anAbsentNameThatIsNoRuleOrCategoryFailsTheTest() throws {
        var test = try #require(VignetteTests.tests.first { $0.name.hasPrefix("C01") })
        test.absent = ["folate-maskin"]
        let outcome = RuleTestRunner.run(test, bundle: Support.bundled)
        #expect(!outcome.passed, "a misspelt 'absent' entry passed silently")
    }

    /// With a profile, the bundled tests check the rules as shipped and the profile's own tests check its
    /// thresholds: the example profile moves the total-B12 cut-offs, which every bundled test on them would fail,
    /// and its own tests pass only with its parameters. A profile without tests is refused.
    @Test func aProfileIsGatedByItsOwnTests() throws {
        let example = Support.rulesDirectory + "/profiles/example-site.yaml"
        let output = RuleCommands.test(directory: Support.rulesDirectory, profile: example, today: Support.today)
        #expect(output.exitCode == 0, "\(output.text)")
        #expect(output.text.contains("PASS total B12 180 ng/L not pregnant is borderline\n"))
        #expect(output.text.contains("PASS profile: site total B12 199.9 ng/L not pregnant is deficient\n"))
        // Which shipped tests the profile decides otherwise is shown, not failed.
        #expect(output.text.contains("NOTE with the profile's parameters, ") && output.text.contains("\n     total B12 180 ng/L not pregnant is borderline\n"),
            "\(output.text)")
        // The profile's tests against the shipped parameters fail: they do test the profile.
        let loaded = RuleLoader(today: Support.today).load(directory: Support.rulesDirectory, profile: example)
        var log = DiagnosticLog()
        let own = RuleTestLoader.load(path: try #require(loaded.profileTests), log: &log)
        let defaults = try #require(loaded.defaults)
        #expect(!own.isEmpty && RuleTestRunner.run(own, bundle: defaults).contains { !$0.passed })

        let scratch = try Support.ScratchRules([:])
        defer { scratch.remove() }
        let untested = scratch.path + "/site.yaml"
        try "profile: {id: site-a}\nparameters:\n  total_b12.deficient_below: 200 ng/L\n".write(toFile: untested, atomically: true, encoding: .utf8)
        let refused = RuleCommands.test(directory: Support.rulesDirectory, profile: untested, today: Support.today)
        #expect(refused.exitCode == 1)
        #expect(refused.text.contains("\(untested):1:1: error: the profile has no rule tests"), "\(refused.text)")
    }

    @Test func evalPrintsOneJSONResultPerPatient() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("timeline-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
            {"id": "a", "patient": "p1", "clinic": "north", "time": "2026-11-20T09:00:00Z", "pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "observations": [{"code": "b12.active", "value": 18, "unit": "pmol/L"}]}
            {"id": "b", "patient": "p2", "clinic": "south", "time": "2026-11-20T09:05:00Z", "observations": [{"code": "b12.total", "value": 160}]}
            """.write(to: file, atomically: true, encoding: .utf8)
        let output = RuleCommands.eval(file: file.path, directory: Support.rulesDirectory, json: true, today: Support.today)
        #expect(output.exitCode == 0)
        let lines = output.text.split(separator: "\n")
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        #expect(first["patient"] as? String == "p1" && first["at"] as? String == "2026-11-20T09:05:00Z")
        #expect((first["decisions"] as! [String: Any])["b12.status"] as? String == "deficient")
        let alerts = first["alerts"] as! [[String: Any]]
        let evidence = try #require(alerts.first?["evidence"] as? [[String: Any]])
        #expect(evidence.contains { $0["fact"] as? String == "b12.active" && $0["unit"] as? String == "pmol/L" && $0["event"] as? String == "a" })
        let second = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        // A B12 value without a unit: never guessed; reported, a repeat requested, and the route deferred.
        #expect((second["alerts"] as! [[String: Any]]).map { $0["category"] as? String } == ["route", "monitoring", "data-quality"])
        #expect((second["decisions"] as! [String: Any])["b12.status"] as? String == "unknown")

        let at = RuleCommands.eval(file: file.path, directory: Support.rulesDirectory, at: "not-a-time", json: true)
        #expect(at.exitCode == 2)
    }
}

/// Every alert the rule tests produce must read well to a clinician.
@Suite struct AlertQualityTests {
    @Test func everyAlertExplainsItself() {
        var seen: Set<String> = []
        for outcome in RuleTestRunner.run(VignetteTests.tests, bundle: Support.bundled) {
            for alert in outcome.result?.alerts ?? [] {
                seen.insert(alert.rule)
                let context = "\(alert.rule) in \(outcome.test.name)"
                #expect(alert.summary.count < 140 && !alert.summary.isEmpty, "\(context): summary")
                #expect(alert.recommendation.count >= 20, "\(context): recommendation '\(alert.recommendation)'")
                #expect(!alert.citations.isEmpty, "\(context): citations")
                #expect(!alert.detail.contains("unknown unknown"), "\(context): detail '\(alert.detail)'")
                // When a laboratory value led to the alert, the detail names a value with its unit.
                let units = alert.evidence.compactMap { item -> String? in
                    guard case .quantity(_, let unit) = item.value, item.event != nil,
                        Support.bundled.vocabulary.fact(identifier: FactDefinition.identifier(for: item.fact))?.kind == .observation
                    else { return nil }
                    return unit.symbol
                }
                if !units.isEmpty {
                    #expect(units.contains { alert.detail.contains(" \($0)") }, "\(context): detail names no value with a unit: '\(alert.detail)'")
                }
            }
        }
        // The rule tests exercise every alerting rule of the bundle.
        let alerting = Set(Support.bundled.rules.filter { $0.alert != nil }.map(\.id))
        #expect(alerting.subtracting(seen).isEmpty, "never raised by any rule test: \(alerting.subtracting(seen).sorted())")
    }
}
