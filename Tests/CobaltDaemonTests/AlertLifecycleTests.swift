import CobaltStore
@testable import CobaltDaemon
import CobaltTestSupport
import Foundation
import RuleEngine
import Testing

/// The lifecycle of one patient's alerts against the bundled rules: unchanged alerts are not published again, a
/// changed digest is `updated`, a new alert is `firing`, and a stored alert that no longer fires is `resolved` —
/// also when others keep firing.
@Suite struct AlertLifecycleTests {
    static let bundle: RuleBundle = {
        guard let bundle = RuleLoader(today: Timestamp.parse("2026-11-20")!).load(directory: Repository.rules).bundle else {
            fatalError("the bundled rules do not load")
        }
        return bundle
    }()

    /// A deficient pregnant patient: several alerts fire.
    static func evaluation() throws -> LazyEvaluation {
        var timeline = PatientTimeline(patient: "p-1", clinic: "north", factCount: bundle.vocabulary.facts.count)
        let json = #"{"schema": "cobalt.event.v1", "id": "e-1", "patient": "p-1", "clinic": "north", "time": "2026-11-20T09:00:00Z", "pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "observations": [{"code": "b12.active", "value": 18, "unit": "pmol/L"}]}"#
        timeline.apply(NormalisedEvent(try EventDecoder.decode(Data(json.utf8)), vocabulary: bundle.vocabulary))
        return Evaluator(bundle: bundle).evaluateLazily(timeline)
    }

    static func state(_ rule: String, digest: String) -> AlertState {
        AlertState(patient: "p-1", rule: rule, clinic: "north", alertID: "id-\(rule)", digest: digest, body: "{}", severity: "info")
    }

    /// The lifecycle's changes with nothing remembered (as after a start or an eviction).
    static func changes(previous: [String: AlertState], _ evaluation: LazyEvaluation) -> [AlertChange] {
        var memo = DigestMemo()
        return AlertLifecycle.changes(previous: previous, evaluation: evaluation, memo: &memo)
    }

    @Test func onlyWhatChangedIsPublished() throws {
        let evaluation = try Self.evaluation()
        let fired = (0..<evaluation.count).filter { !evaluation.isShadow($0) }.map { (rule: evaluation.rule($0), digest: evaluation.digest($0)) }
        try #require(fired.count >= 3, "\(fired.map(\.rule))")
        let first = Self.changes(previous: [:], evaluation)
        #expect(first.map(\.rule) == fired.map(\.rule) && first.allSatisfy { $0.status == .firing })

        // All stored as published: nothing to publish.
        var previous = Dictionary(uniqueKeysWithValues: fired.map { ($0.rule, Self.state($0.rule, digest: $0.digest)) })
        #expect(Self.changes(previous: previous, evaluation).isEmpty)

        // One stored with other content, one not stored, two stored that no longer fire (resolved, by rule id).
        previous[fired[0].rule]!.digest = "old"
        previous[fired[1].rule] = nil
        previous["z.gone"] = Self.state("z.gone", digest: "d")
        previous["a.gone"] = Self.state("a.gone", digest: "d")
        let changes = Self.changes(previous: previous, evaluation)
        #expect(changes.map(\.rule) == [fired[0].rule, fired[1].rule, "a.gone", "z.gone"])
        #expect(changes.map(\.status) == [.updated, .firing, .resolved, .resolved])
        #expect(changes[2].alertID == "id-a.gone" && changes[2].body == "{}" && changes[2].digest == "d")
    }

    /// An open alert whose patient's events now come from another clinic ends in the old clinic's stream and
    /// starts in the new one's, even with unchanged content (it used to go on as `updated` in the new clinic,
    /// which never saw it fire, and never end in the old one). Alerts stored at the event's clinic are untouched.
    @Test func anAlertMovesToTheClinicOfTheEvent() throws {
        let evaluation = try Self.evaluation()
        let fired = (0..<evaluation.count).filter { !evaluation.isShadow($0) }.map { (rule: evaluation.rule($0), digest: evaluation.digest($0)) }
        try #require(fired.count >= 2)
        var previous = Dictionary(uniqueKeysWithValues: fired.map { ($0.rule, Self.state($0.rule, digest: $0.digest)) })
        previous[fired[0].rule]!.clinic = "south"
        previous[fired[0].rule]!.body = #"{"clinic":"south"}"#
        let changes = Self.changes(previous: previous, evaluation)
        #expect(changes.map(\.status) == [.resolved, .firing])
        #expect(changes.map(\.rule) == [fired[0].rule, fired[0].rule])
        #expect(changes.map(\.clinic) == ["south", "north"])
        #expect(changes[0].body == #"{"resolution":"moved","clinic":"south"}"# && changes[0].alertID == "id-\(fired[0].rule)")
        #expect(changes[1].body.contains(#""clinic":"north""#), "\(changes[1].body)")
    }

    /// A remembered digest is used only for the same rule of a bundle with the same hash and equal values, and is
    /// then the digest computed afresh: the same evaluation twice hashes nothing new; a new B12 value changes the
    /// deficiency alert's digest; a rule reloaded with other wording never reuses the digest of the one it replaced.
    @Test func rememberedDigestsAreTheDigestsComputedAfresh() throws {
        func published(_ evaluation: LazyEvaluation) -> [Int] { (0..<evaluation.count).filter { !evaluation.isShadow($0) } }
        func digests(_ evaluation: LazyEvaluation, _ memo: inout DigestMemo) -> [String: String] {
            Dictionary(uniqueKeysWithValues: published(evaluation).map { (evaluation.rule($0), evaluation.digest($0, memo: &memo)) })
        }
        func fresh(_ evaluation: LazyEvaluation) -> [String: String] {
            Dictionary(uniqueKeysWithValues: published(evaluation).map { (evaluation.rule($0), evaluation.digest($0)) })
        }
        func timeline(_ b12: [Int], bundle: RuleBundle) throws -> PatientTimeline {
            var timeline = PatientTimeline(patient: "p-1", clinic: "north", factCount: bundle.vocabulary.facts.count)
            for (day, value) in b12.enumerated() {
                let json = #"{"schema": "cobalt.event.v1", "id": "e-\#(day)", "patient": "p-1", "clinic": "north", "time": "2026-11-1\#(day)T09:00:00Z", "pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "observations": [{"code": "b12.active", "value": \#(value), "unit": "pmol/L"}]}"#
                timeline.apply(NormalisedEvent(try EventDecoder.decode(Data(json.utf8)), vocabulary: bundle.vocabulary))
            }
            return timeline
        }
        let deficiency = "b12.deficiency-alert"
        let first = Evaluator(bundle: Self.bundle).evaluateLazily(try timeline([18], bundle: Self.bundle))
        var memo = DigestMemo()
        let computed = digests(first, &memo)
        #expect(computed == fresh(first) && computed[deficiency] != nil && memo.count == computed.count, "\(computed.keys.sorted())")
        #expect(digests(first, &memo) == computed)  // remembered, and the same

        let lower = Evaluator(bundle: Self.bundle).evaluateLazily(try timeline([18, 17], bundle: Self.bundle))
        let changed = digests(lower, &memo)
        #expect(changed == fresh(lower) && changed[deficiency] != computed[deficiency])

        // The same rules compiled again with another summary: every digest of that rule is computed anew.
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = scratch.path + "/rules"
        try FileManager.default.copyItem(atPath: Repository.rules, toPath: rules)
        let file = rules + "/rulesets/10-deficiency.yaml"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        try #require(text.contains("summary: \"Vitamin B12 deficiency (latest B12 result"))
        try text.replacingOccurrences(of: "summary: \"Vitamin B12 deficiency (latest B12 result", with: "summary: \"B12 deficiency (latest result")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let reworded = try #require(RuleLoader(today: Timestamp.parse("2026-11-20")!).load(directory: rules).bundle)
        let again = Evaluator(bundle: reworded).evaluateLazily(try timeline([18, 17], bundle: reworded))
        let afterReload = digests(again, &memo)
        #expect(afterReload == fresh(again) && afterReload[deficiency] != changed[deficiency])
    }
}
