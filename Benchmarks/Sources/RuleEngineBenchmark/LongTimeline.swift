import BenchmarkSupport
import Foundation
import RuleEngine

/// A patient with a long history, as the daemon's patients accumulate under load: 60 earlier events shaped like
/// DaemonLoad's `EventFactory.mixed` (pregnancy, diet, a routine panel of six labs, folic acid active, an active
/// B12 result on about one event in five), then a measured 61st event with a deficient active B12, so the
/// deficiency alerts fire and every alert has history behind its evidence.
///
/// Costs that grow with the history (the pregnancy history rebuilt from every report, medication statements
/// scanned per read) show here and not in the five-event scenario.
enum LongTimeline {
    static let patient = "lp-0007"
    static let clinic = "north-antenatal"
    static let priorCount = 60
    /// Seconds between a patient's events: DaemonLoad sends round robin over its patients, one event a second.
    static let spacing = 100

    /// The earlier events, oldest first, and the measured event.
    static func events(seed: UInt64 = 0x5EED) -> (prior: [String], measured: String) {
        var random = SplitMix(seed: seed)
        let bands: [Double] = [18, 45, 90]
        var band = Int(random.next() % 3)
        var prior: [String] = []
        for index in 0..<priorCount {
            var b12: Double?
            if index == 0 || random.next() % 5 == 0 {
                if index > 0, random.next() % 2 == 0 { band = (band + 1 + Int(random.next() % 2)) % 3 }
                b12 = bands[band]
            }
            prior.append(event(index, activeB12: b12, random: &random))
        }
        return (prior, event(priorCount, activeB12: 18, random: &random))
    }

    /// One event of the shape DaemonLoad sends (about 700 bytes of JSON).
    static func event(_ index: Int, activeB12: Double?, random: inout SplitMix) -> String {
        let hb = 112 + Int(random.next() % 24)
        let mcv = 84 + Int(random.next() % 14)
        let ferritin = 30 + Int(random.next() % 70)
        let folate = 12 + Int(random.next() % 20)
        let platelets = 160 + Int(random.next() % 200)
        let weeks = 12 + Int(random.next() % 26)
        let b12 = activeB12.map { "{\"code\":\"b12.active\",\"value\":\(Int($0)),\"unit\":\"pmol/L\"}," } ?? ""
        return """
            {"schema":"cobalt.event.v1","id":"lt-\(index)","patient":"\(patient)","clinic":"\(clinic)",\
            "time":"\(benchmarkTimestamp(index * spacing))",\
            "pregnancy":{"status":"pregnant","gestation_weeks":\(weeks),"fetuses":1},"diet":"vegan",\
            "observations":[\(b12)\
            {"code":"hb","value":\(hb),"unit":"g/L"},{"code":"mcv","value":\(mcv),"unit":"fL"},\
            {"code":"ferritin","value":\(ferritin),"unit":"ug/L"},{"code":"folate.serum","value":\(folate),"unit":"nmol/L"},\
            {"code":"platelets","value":\(platelets),"unit":"10*9/L"},{"code":"egfr","value":96,"unit":"mL/min/1.73m2"}],\
            "medications":[{"code":"folic-acid","dose":5,"unit":"mg","per":"day","status":"active","start":"2026-05-01"}],\
            "symptoms":[{"code":"fatigue","status":"absent"}]}
            """
    }
}

extension RuleEngineBenchmark {
    struct LongTimelineResult {
        var apply: Summary
        var evaluate: Summary
        var digests: Summary
        var applyEvaluate: Summary
        var alerts: Summary
    }

    /// Per event on a 60-event history, as the daemon does it: apply the event to the patient's own timeline
    /// (in place, not to a copy), evaluate lazily, digest every fired alert; and, measured apart, build every
    /// fired alert and its JSON (what the daemon does for the alerts that changed).
    ///
    /// Each iteration rebuilds the 60-event state untimed, so the measured `apply` mutates a timeline it owns, as
    /// the daemon's does; it is fewer iterations than the other cases for that reason.
    static func longTimeline(_ rules: RuleSnapshot, label: String, options: Options, sink: inout Int) -> LongTimelineResult {
        print("")
        print("== Long timeline: apply + evaluate on a \(LongTimeline.priorCount)-event history — \(label)")
        let (priorJSON, measuredJSON) = LongTimeline.events()
        let prior = priorJSON.map { decodeOrDie(rules, Data($0.utf8), "long-timeline event") }
        let measured = decodeOrDie(rules, Data(measuredJSON.utf8), "measured long-timeline event")
        func fresh() -> PatientState {
            var state = PatientState(patient: LongTimeline.patient, clinic: LongTimeline.clinic, rules: rules)
            for event in prior { state.apply(event) }
            return state
        }

        var check = fresh()
        check.apply(measured)
        let evaluation = check.evaluate(rules)
        let changes = check.evaluateForChanges(rules)
        let alertBytes = (0..<changes.count).reduce(0) { $0 + changes.alertJSON($1).utf8.count }
        let categories = Dictionary(grouping: evaluation.alerts, by: \.category).map { "\($0.key)×\($0.value.count)" }.sorted()
        print("   event: \(measuredJSON.utf8.count) bytes JSON; state holds \(prior.count) earlier events")
        print("   result: \(evaluation.decisions.count) published decisions, \(changes.count) alerts fired, \(alertBytes) bytes of alert JSON")
        print("   alerts: \(categories.joined(separator: ", "))")

        let iterations = max(1, options.iterations / 4)
        let warmup = max(1, options.warmup / 4)
        var apply = [UInt64](repeating: 0, count: iterations)
        var evaluate = [UInt64](repeating: 0, count: iterations)
        var digests = [UInt64](repeating: 0, count: iterations)
        var both = [UInt64](repeating: 0, count: iterations)
        var alerts = [UInt64](repeating: 0, count: iterations)
        for i in 0..<(warmup + iterations) {
            var state = fresh()
            let t0 = nowNanoseconds()
            state.apply(measured)
            let t1 = nowNanoseconds()
            let changes = state.evaluateForChanges(rules)
            let t2 = nowNanoseconds()
            let digest = changes.digests
            let t3 = nowNanoseconds()
            var bytes = 0
            for index in 0..<changes.count { bytes &+= changes.alertJSON(index).utf8.count }
            let t4 = nowNanoseconds()
            sink &+= bytes &+ digest.count
            if i >= warmup {
                let j = i - warmup
                apply[j] = t1 - t0
                evaluate[j] = t2 - t1
                digests[j] = t3 - t2
                both[j] = t2 - t0
                alerts[j] = t4 - t3
            }
        }
        let result = LongTimelineResult(
            apply: Summary(apply), evaluate: Summary(evaluate), digests: Summary(digests), applyEvaluate: Summary(both),
            alerts: Summary(alerts))
        print("   \(warmup) warm-up + \(iterations) measured iterations; times in µs")
        print("   " + pad("", 26, right: false) + ["p50", "p90", "p99", "max", "mean", "min"].map { pad($0, 10) }.joined())
        for (name, s) in [
            ("apply (in place)", result.apply), ("evaluateLazily", result.evaluate), ("digests (all fired)", result.digests),
            ("apply + evaluateLazily", result.applyEvaluate), ("all alerts (alert + JSON)", result.alerts),
        ] {
            print("   " + pad(name, 26, right: false) + [s.p50, s.p90, s.p99, s.max, s.mean, s.min].map { pad(fmt($0), 10) }.joined())
        }
        return result
    }
}
