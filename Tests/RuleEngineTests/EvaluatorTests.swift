import Crypto
import Foundation
import Testing
@testable import RuleEngine

@Suite struct EvaluatorTests {
    func event(_ time: String, _ body: String, id: String = UUID().uuidString) throws -> PatientEvent {
        try Support.event(#"{"id": "\#(id)", "patient": "p-1", "clinic": "north", "time": "\#(time)"\#(body.isEmpty ? "" : ", " + body)}"#)
    }

    @Test func alertsCarryEvidenceWithReportedAndNormalisedValues() throws {
        let result = Support.evaluate([
            try event("2026-11-20T09:00:00Z", #""pregnancy": {"status": "postpartum", "delivery_date": "2026-09-01"}, "observations": [{"code": "b12.total", "value": 90, "unit": "pmol/L", "time": "2026-11-19T08:00:00Z"}]"#, id: "lab-7")
        ])
        #expect(result.decision("b12.status") == .text("deficient"))
        let alert = try #require(result.alerts.first { $0.category == "deficiency" })
        let evidence = try #require(alert.evidence.first { $0.fact == "b12.total" })
        #expect(evidence.value == .quantity(121.95, UnitTable.unit("ng/L")!))
        #expect(evidence.reportedValue == .number(90) && evidence.reportedUnit == "pmol/L")
        #expect(evidence.time == Timestamp.parse("2026-11-19T08:00:00Z") && evidence.event == "lab-7")
        #expect(alert.evidence.contains { $0.fact == "b12.status" && $0.rule == "b12.status.total-low" })
        #expect(alert.summary == "Vitamin B12 deficiency (latest B12 result 90 pmol/L)")
        #expect(alert.citations == ["NICE NG239 (2024)"])
        #expect(alert.id == Evaluator.alertID(patient: "p-1", rule: "b12.deficiency-alert") && !alert.id.contains("p-1"))
        let json = try JSONSerialization.jsonObject(with: Data(result.json.utf8)) as! [String: Any]
        #expect((json["decisions"] as! [String: Any])["b12.status"] as? String == "deficient")
        #expect((json["ruleset"] as! [String: Any])["hash"] as? String == Support.bundled.hash)
    }

    /// Arithmetic that runs away gives unknown, not an infinity, NaN or a time no text can hold: `now + 1e14 wk`
    /// in an alert's summary stopped the process (the daemon at every event, and again after each restart).
    @Test func arithmeticThatRunsAwayIsUnknown() throws {
        let week = try #require(UnitTable.unit("wk"))
        let now = try #require(Timestamp.parse("2026-11-20T09:00:00Z"))
        #expect(Evaluator.arithmetic(.add, .time(now), .quantity(1e14, week)) == .unknown)
        #expect(Evaluator.arithmetic(.subtract, .time(now), .quantity(1e14, week)) == .unknown)
        #expect(Evaluator.arithmetic(.add, .time(now), .quantity(52, week)) != .unknown)
        #expect(Evaluator.arithmetic(.multiply, .number(1e308), .number(10)) == .unknown)
        #expect(Evaluator.arithmetic(.subtract, .number(.infinity), .number(.infinity)) == .unknown)
        #expect(Evaluator.arithmetic(.multiply, .quantity(1e308, week), .number(10)) == .unknown)
        // And the formatter never traps, whatever it is given.
        #expect(Timestamp.format(1e300) == "9999-12-31T23:59:59Z" && Timestamp.format(.nan) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.formatMilliseconds(-1e300).hasPrefix("0000-01-01T00:00:00.000"))
    }

    /// An alert's content digest is stored with its state; if its recipe changed, every open alert would be
    /// republished as `updated` after an upgrade. Pin it: SHA-256 of id, category, severity, wording and the
    /// displayed values, separated by U+001F, first 16 bytes in hex.
    @Test func contentDigestsKeepTheirRecipe() throws {
        let bundle = Support.bundled
        var timeline = PatientTimeline(patient: "p-1", clinic: "north", factCount: bundle.vocabulary.facts.count)
        timeline.apply(NormalisedEvent(
            try event("2026-11-20T09:00:00Z", #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "observations": [{"code": "b12.active", "value": 18, "unit": "pmol/L"}]"#),
            vocabulary: bundle.vocabulary))
        let evaluation = Evaluator(bundle: Support.bundled).evaluateLazily(timeline)
        #expect(evaluation.count >= 2)
        for index in 0..<evaluation.count {
            let item = evaluation.fired[index]
            let rule = Support.bundled.rules[item.rule]
            let alert = try #require(rule.alert)
            var content = "\(rule.id)\u{1F}\(alert.category)\u{1F}\(alert.severity.rawValue)\u{1F}\(alert.wording)"
            for value in item.values { content += "\u{1F}" + value.display }
            let expected = SHA256.hash(data: Array(content.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
            #expect(evaluation.digest(index) == expected, "\(rule.id)")
            if rule.id == "b12.deficiency-alert" {
                // A literal too: the recipe above is rebuilt from the engine's own wording and display, which could
                // change together with the code (say, how a quantity is displayed) and still agree.
                #expect(evaluation.digest(index) == "a293463ea3d10f7aa2fed52b1fdb81c9")
            }
        }
        #expect((0..<evaluation.count).contains { Support.bundled.rules[evaluation.fired[$0].rule].id == "b12.deficiency-alert" })
    }

    /// The daemon's shards lend each evaluation the buffers of the one before (``Evaluator/Scratch``). That must
    /// change nothing: patients with different histories, evaluated in turn with one scratch, get exactly the
    /// results of fresh evaluations — decisions, alerts, texts and evidence.
    @Test func buffersLentByEarlierEvaluationsCarryNothingOver() throws {
        let bundle = Support.bundled
        func timeline(_ patient: String, _ body: String) throws -> PatientTimeline {
            var timeline = PatientTimeline(patient: patient, clinic: "north", factCount: bundle.vocabulary.facts.count)
            timeline.apply(NormalisedEvent(try event("2026-11-20T09:00:00Z", body), vocabulary: bundle.vocabulary))
            return timeline
        }
        let deficient = try timeline("p-1", #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "diet": "vegan", "observations": [{"code": "b12.active", "value": 18, "unit": "pmol/L"}], "symptoms": [{"code": "paraesthesia", "status": "present"}], "medications": [{"code": "folic-acid", "dose": 5, "unit": "mg", "per": "day"}]"#)
        let replete = try timeline("p-2", #""pregnancy": {"status": "pregnant", "gestation_weeks": 30}, "observations": [{"code": "b12.active", "value": 90, "unit": "pmol/L"}]"#)
        let evaluator = Evaluator(bundle: bundle)
        let fresh = [deficient, replete].map { evaluator.evaluate($0).json }
        #expect(fresh[0] != fresh[1])
        var scratch = Evaluator.Scratch()
        for (index, timeline) in [deficient, replete, replete, deficient, replete].enumerated() {
            let evaluation = evaluator.evaluateLazily(timeline, reusing: consume scratch)
            #expect(evaluation.result().json == fresh[timeline.patient == "p-1" ? 0 : 1], "evaluation \(index)")
            scratch = (consume evaluation).recycle()
        }
    }

    @Test func evaluationIsDeterministicAndAsOfATime() throws {
        let events = [
            try event("2026-06-01T09:00:00Z", #""pregnancy": {"status": "pregnant", "gestation_weeks": 10}, "observations": [{"code": "b12.active", "value": 80, "unit": "pmol/L"}]"#),
            try event("2026-09-01T09:00:00Z", #""pregnancy": {"status": "pregnant", "gestation_weeks": 23.1}, "observations": [{"code": "b12.active", "value": 20, "unit": "pmol/L"}]"#),
        ]
        let early = Support.evaluate(events, at: "2026-07-01T00:00:00Z")
        let late = Support.evaluate(events, at: "2026-09-02T00:00:00Z")
        #expect(early.decision("b12.status") == .text("not-deficient"))
        #expect(late.decision("b12.status") == .text("deficient"))
        #expect(late == Support.evaluate(events.reversed(), at: "2026-09-02T00:00:00Z"))
    }

    @Test func samplesAfterTreatmentStartedAreNotDiagnostic() throws {
        let events = [
            try event("2026-11-01T09:00:00Z", #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "administrations": [{"code": "hydroxocobalamin", "dose": 1, "unit": "mg", "route": "IM"}]"#),
            try event("2026-11-10T09:00:00Z", #""observations": [{"code": "b12.active", "value": 15, "unit": "pmol/L"}]"#),
        ]
        #expect(Support.evaluate(events).decision("b12.status") == .text("unknown"))
        // A low-dose supplement is prevention, not treatment: the later sample still counts.
        let supplement = [
            try event("2026-11-01T09:00:00Z", #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "medications": [{"code": "cyanocobalamin", "dose": 500, "unit": "ug", "per": "day"}]"#),
            try event("2026-11-10T09:00:00Z", #""observations": [{"code": "b12.active", "value": 15, "unit": "pmol/L"}]"#),
        ]
        #expect(Support.evaluate(supplement).decision("b12.status") == .text("deficient"))
    }

    @Test func pregnancyStatusIsJudgedAtSamplingEvenWhenEvaluatedPostpartum() throws {
        // 150 ng/L taken at 36 weeks: pregnant at sampling → 100-179 without support → borderline.
        // The same value taken when not pregnant would be deficient (< 180 ng/L).
        let events = [
            try event("2026-08-01T09:00:00Z", #""pregnancy": {"status": "pregnant", "gestation_weeks": 36}, "observations": [{"code": "b12.total", "value": 150, "unit": "ng/L"}]"#),
            try event("2026-09-10T09:00:00Z", #""pregnancy": {"status": "postpartum", "delivery_date": "2026-09-05", "breastfeeding": true}"#),
        ]
        let result = Support.evaluate(events)
        #expect(result.derivedValue("b12.pregnant_at_sampling") == .bool(true))
        #expect(result.decision("b12.status") == .text("borderline"))
    }

    @Test func decisionTablesTakeTheFirstTrueRow() throws {
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + """

            derive:
              band: {values: [low, mid, high], default: high, publish: true}
            rules:
              - id: low
                when: latest(hb) < 100 g/L
                set: {band: low}
                citations: [SRC]
              - id: mid
                when: latest(hb) < 120 g/L
                set: {band: mid}
                citations: [SRC]
                alert: {category: anaemia, severity: warning, summary: "mid {{latest(hb)}}", detail: d, recommendation: r}
            """])
        defer { scratch.remove() }
        let bundle = try #require(scratch.load().bundle)
        func band(_ hb: Double?) throws -> (Value?, [String]) {
            let body = hb.map { #""observations": [{"code": "hb", "value": \#($0), "unit": "g/L"}]"# } ?? ""
            let result = Support.evaluate([try event("2026-11-20T09:00:00Z", body)], bundle: bundle)
            return (result.decision("band"), result.alerts.map(\.summary))
        }
        #expect(try band(90) == (.text("low"), []))
        #expect(try band(110) == (.text("mid"), ["mid 110 g/L"]))
        #expect(try band(130) == (.text("high"), []))
        #expect(try band(nil) == (.text("high"), []))
    }

    /// `testing` and `draft` rule sets run in shadow: their alerts are evaluated, never published, and a fact they
    /// derive is not among the published decisions. A draft says so with a warning (it is also the status of a
    /// file that names none).
    @Test(arguments: ["testing", "draft"]) func shadowRuleSetsAreEvaluatedAndNeverPublished(status: String) throws {
        let body = """

            derive:
              shadow.flag:
                values: ["yes", "no"]
                publish: true
                description: a candidate classification
            rules:
              - id: shadowed
                when: exists(numbness)
                set: {shadow.flag: "yes"}
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """
        let scratch = try Support.ScratchRules(["a.yaml": Support.header(status: status) + body])
        defer { scratch.remove() }
        let loaded = scratch.load()
        let bundle = try #require(loaded.bundle)
        #expect(loaded.log.warnings.contains { $0.message.contains("is a draft: it runs in shadow") } == (status == "draft"))
        let result = Support.evaluate([try event("2026-11-20T09:00:00Z", #""symptoms": [{"code": "numbness"}]"#)], bundle: bundle)
        #expect(result.alerts.isEmpty)
        #expect(result.shadowAlerts.map(\.rule) == ["shadowed"])
        #expect(result.decision("shadow.flag") == nil)
    }

    /// Shadow logic cannot reach published alerts: a production rule that reads a fact a testing (or draft) rule set
    /// derives is a load error at the rule, in the condition as in a template.
    @Test func publishedRulesMayNotReadShadowFacts() throws {
        let candidate = Support.header(id: "candidate.set", status: "testing") + """

            derive:
              candidate.low:
                values: ["yes", "no"]
                description: a candidate classification
            rules:
              - id: candidate.low-rule
                when: latest(b12.active) < 20 pmol/L
                set: {candidate.low: "yes"}
                citations: [SRC]
            """
        func reader(_ status: String) -> String {
            Support.header(id: "live.set", status: status) + """

                rules:
                  - id: live.reads-candidate
                    when: candidate.low == "yes"
                    citations: [SRC]
                    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
                  - id: live.shows-candidate
                    when: exists(numbness)
                    citations: [SRC]
                    alert: {category: note, severity: info, summary: s, detail: "flag {{candidate.low}}", recommendation: r}
                """
        }
        let scratch = try Support.ScratchRules(["10-candidate.yaml": candidate, "20-live.yaml": reader("production")])
        defer { scratch.remove() }
        let loaded = scratch.load()
        #expect(loaded.bundle == nil)
        let errors = loaded.log.errors.filter { $0.message.contains("which rule set 'candidate.set' derives in shadow") }
        #expect(errors.map(\.location.line).sorted() == [10, 14], "\(loaded.log.sorted.map(\.description))")
        // The same rules in a testing rule set load: shadow may read shadow.
        try reader("testing").write(toFile: scratch.file("20-live.yaml"), atomically: true, encoding: .utf8)
        #expect(scratch.load().bundle != nil)
    }

    @Test func summedFolicAcidAndStoppedMedications() throws {
        let events = [
            try event("2026-11-01T09:00:00Z", #""pregnancy": {"status": "pregnant", "gestation_weeks": 12}, "medications": [{"code": "folic-acid", "dose": 600, "unit": "ug", "per": "day"}, {"code": "folic-acid", "dose": 500, "unit": "ug", "per": "day", "product": "multivitamin"}]"#),
        ]
        let result = Support.evaluate(events)
        #expect(result.decision("folate.masking_risk") == .bool(true))
        let alert = try #require(result.alerts.first { $0.category == "folate-masking" })
        #expect(alert.summary.hasPrefix("Folic acid 1.1 mg/d"))
        // The multivitamin is then stopped: 0.6 mg/d no longer warns.
        let stopped = events + [
            try event("2026-11-10T09:00:00Z", #""medications": [{"code": "folic-acid", "dose": 500, "unit": "ug", "per": "day", "product": "multivitamin", "status": "stopped"}]"#)
        ]
        #expect(Support.evaluate(stopped).decision("folate.masking_risk") == .bool(false))
    }

    @Test func siteProfileChangesTheThresholdWithoutTouchingRules() throws {
        let profile = Support.rulesDirectory + "/profiles/example-site.yaml"
        let site = try #require(RuleLoader(today: Support.today).load(directory: Support.rulesDirectory, profile: profile).bundle)
        #expect(site.hash != Support.bundled.hash)
        let events = [
            try event("2026-11-20T09:00:00Z", #""pregnancy": {"status": "not-pregnant"}, "observations": [{"code": "b12.total", "value": 190, "unit": "ng/L"}]"#)
        ]
        #expect(Support.evaluate(events).decision("b12.status") == .text("borderline"))
        #expect(Support.evaluate(events, bundle: site).decision("b12.status") == .text("deficient"))
    }

    /// The medications in force as of the latest statement come from an index kept as statements arrive; it must
    /// agree with a scan of every statement, whatever the arrival order (late statements shift indices).
    @Test func medicationsInForceAgreeWithAFullScan() throws {
        let bundle = Support.bundled
        let fact = try #require(bundle.vocabulary.facts.first { $0.name == "folic-acid" }).index
        var timeline = PatientTimeline(patient: "p-1", clinic: "north", factCount: bundle.vocabulary.facts.count)
        // Doses (distinct keys) and days, including statements that arrive out of order and repeat a key.
        let statements: [(dose: Int, day: Int)] = [(400, 1), (5, 3), (400, 5), (1, 2), (5, 8), (400, 4), (1, 9), (5, 8)]
        for (n, statement) in statements.enumerated() {
            let unit = statement.dose >= 100 ? "ug" : "mg"
            let day = statement.day < 10 ? "0\(statement.day)" : "\(statement.day)"
            timeline.apply(NormalisedEvent(try event(
                "2026-06-\(day)T09:00:00Z",
                #""medications": [{"code": "folic-acid", "dose": \#(statement.dose), "unit": "\#(unit)", "per": "day", "start": "2026-05-01"}]"#,
                id: "m\(n)"), vocabulary: bundle.vocabulary))
            let records = timeline.medications[fact]
            var expected: [Int] = []
            var seen: Set<String> = []
            for index in records.indices.reversed() where seen.insert(records[index].key).inserted { expected.append(index) }
            var state = Evaluator.State(timeline: timeline, now: timeline.lastEventTime, bundle: bundle)
            #expect(state.currentMedications(fact) == expected, "after statement \(n)")
        }
        #expect(Set(timeline.newestMedication[fact].keys).count == 3)
    }

    /// Records are kept in time order, equal times in arrival order, whatever order they arrive in: the same as a
    /// stable sort of everything received (the place of a late record is found by binary search).
    @Test func recordsStayInTimeOrderWithEqualTimesInArrivalOrder() throws {
        let bundle = Support.bundled
        let fact = try #require(bundle.vocabulary.facts.first { $0.name == "b12.total" }).index
        var timeline = PatientTimeline(patient: "p-1", clinic: "north", factCount: bundle.vocabulary.facts.count)
        var generator = SystemRandomNumberGenerator()
        var sent: [(day: Int, value: Int)] = []
        for n in 0..<300 {
            // Days 1–28 in random order, many repeated; each value is unique, so the order can be checked.
            let day = n % 7 == 0 ? 28 : Int.random(in: 1...27, using: &generator)
            sent.append((day, 100 + n))
            let date = "2026-06-\(day < 10 ? "0" : "")\(day)T09:00:00Z"
            timeline.apply(NormalisedEvent(try event(
                "2026-06-28T10:00:00Z", #""observations": [{"code": "b12.total", "value": \#(100 + n), "unit": "ng/L", "time": "\#(date)"}]"#,
                id: "o\(n)"), vocabulary: bundle.vocabulary))
        }
        let expected = sent.enumerated().sorted { ($0.element.day, $0.offset) < ($1.element.day, $1.offset) }.map { Double($0.element.value) }
        let kept = timeline.observations[fact].map { record -> Double in
            if case .number(let value) = record.value { return value }
            return -1
        }
        #expect(kept == expected)
    }

    /// The vocabulary hash (which decides whether cached timelines must be rebuilt after a reload) is the hash of
    /// the vocabulary file's bytes as loaded.
    @Test func theVocabularyHashIsTheLoadedFilesHash() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(Support.rulesDirectory)/vocabulary.yaml"))
        let expected = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        #expect(Support.bundled.vocabularyHash == expected)
    }
}
