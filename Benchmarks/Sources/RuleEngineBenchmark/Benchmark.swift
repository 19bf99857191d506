import BenchmarkSupport
import Foundation
import RuleEngine

/// Measures the rule engine in one run: per-event decoding against apply + evaluate (bundled rules and a
/// synthetic 200-rule set), apply + evaluate and alert building on a long (60-event) patient history, and the
/// compile (reload) time of a synthetic 1,000-rule set.
///
///     swift run -c release RuleEngineBenchmark [--iterations N] [--warmup N] [--compile-runs N]
///         [--synthetic-rules N] [--compile-rules N] [--rules DIR] [--only evaluate|long|compile]
///         [--write-synthetic DIR]   (writes the synthetic set of --synthetic-rules rules to DIR and exits)
@main
enum RuleEngineBenchmark {
    struct Options {
        var iterations = 20_000
        var warmup = 2_000
        var compileRuns = 10
        var syntheticRules = 200
        var compileRules = 1_000
        var only: String?
        var rules: String?
        /// Write the synthetic set of `syntheticRules` rules here (for inspection or profiling), then exit.
        var writeSynthetic: String?
    }

    static func main() {
        let options = parse(CommandLine.arguments.dropFirst())
        // Sources/RuleEngineBenchmark/Benchmark.swift → the repository root is three levels above this file.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let bundledRules = options.rules ?? root.appendingPathComponent("Rules").path
        let vocabulary = URL(fileURLWithPath: bundledRules).appendingPathComponent("vocabulary.yaml").path

        if let target = options.writeSynthetic {
            let directory = try! SyntheticRules(ruleCount: options.syntheticRules).write(vocabulary: vocabulary)
            try! FileManager.default.moveItem(atPath: directory, toPath: target)
            let rules = load(target, label: "synthetic rule set")
            print("wrote \(rules.ruleCount) rules to \(target)")
            return
        }
        header(options, root: root.path)
        let started = nowNanoseconds()
        var sink = 0

        if options.only == nil || options.only == "evaluate" {
            let bundled = load(bundledRules, label: "bundled rules")
            let bundledResult = perEvent(bundled, label: "Bundled rules (\(bundledRules))", options: options, sink: &sink)

            let generator = SyntheticRules(ruleCount: options.syntheticRules)
            let directory = try! generator.write(vocabulary: vocabulary)
            defer { SyntheticRules.remove(directory) }
            let synthetic = load(directory, label: "synthetic \(options.syntheticRules)-rule set")
            let syntheticResult = perEvent(synthetic, label: "Synthetic \(options.syntheticRules)-rule set (\(directory))", options: options, sink: &sink)

            summaryTable([("bundled (\(bundled.ruleCount) rules)", bundledResult), ("synthetic (\(synthetic.ruleCount) rules)", syntheticResult)])
        }

        if options.only == nil || options.only == "evaluate" || options.only == "long" {
            let bundled = load(bundledRules, label: "bundled rules")
            _ = longTimeline(bundled, label: "bundled rules (\(bundledRules))", options: options, sink: &sink)
        }

        if options.only == nil || options.only == "compile" {
            compileTime(options: options, vocabulary: vocabulary, bundledRules: bundledRules)
        }

        let elapsed = Double(nowNanoseconds() - started) / 1e9
        print("")
        print("Total benchmark time: \(fmt(elapsed, 1)) s; load average at end: \(Machine.loadAverage) (sink \(sink % 10))")
    }

    // MARK: - Per-event decode vs apply + evaluate

    struct PerEventResult {
        var decode: Summary
        var apply: Summary
        var evaluate: Summary
        var applyEvaluate: Summary
        /// Every alert's text and evidence built (what `cobalt eval` and a first evaluation publish).
        var fullResult: Summary
    }

    static func perEvent(_ rules: RuleSnapshot, label: String, options: Options, sink: inout Int) -> PerEventResult {
        print("")
        print("== Per-event: decode vs apply + evaluate — \(label)")
        print("   \(rules.ruleCount) rules, bundle \(rules.version), \(rules.hash.prefix(19))…")

        // The patient state before the measured event: five earlier events over the past five months. Each
        // iteration builds its own (untimed), so the measured `apply` changes a state it owns, in place, as the
        // daemon does — applying to a copy would time copying the arrays as well.
        let prior = Scenario.priorEvents.map { decodeOrDie(rules, Data($0.utf8), "prior event") }
        func fresh() -> PatientState {
            var state = PatientState(patient: Scenario.patient, clinic: Scenario.clinic, rules: rules)
            for event in prior { state.apply(event) }
            return state
        }
        let base = fresh()
        let bytes = Data(Scenario.event.utf8)

        // What the measured iteration computes, once, so the reader can see it is doing real work.
        let check = decodeOrDie(rules, bytes, "measured event")
        if !check.findings.isEmpty { print("   data-quality findings on the measured event: \(check.findings)") }
        var checkState = base
        checkState.apply(check)
        let evaluation = checkState.evaluate(rules)
        let decisions = evaluation.decisions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let alerts = evaluation.alerts
        print("   event: \(bytes.count) bytes JSON, 7 observations, 3 medications, 1 symptom; state holds \(Scenario.priorEvents.count) earlier events")
        print("   result: \(decisions.count) published decisions, \(alerts.count) alerts, \(evaluation.json.utf8.count) bytes JSON")
        print("   decisions: \(decisions.prefix(8).joined(separator: ", "))\(decisions.count > 8 ? ", …" : "")")
        let categories = Dictionary(grouping: alerts, by: \.category).map { "\($0.key)×\($0.value.count)" }.sorted()
        print("   alerts: \(categories.joined(separator: ", "))")

        var decode = [UInt64](repeating: 0, count: options.iterations)
        var apply = [UInt64](repeating: 0, count: options.iterations)
        var evaluate = [UInt64](repeating: 0, count: options.iterations)
        var both = [UInt64](repeating: 0, count: options.iterations)
        var full = [UInt64](repeating: 0, count: options.iterations)

        for i in 0..<(options.warmup + options.iterations) {
            let t0 = nowNanoseconds()
            let event: DecodedEvent
            do { event = try rules.decode(bytes) } catch { fatalError("decode failed: \(error)") }
            let t1 = nowNanoseconds()
            var state = fresh()
            let t2 = nowNanoseconds()
            state.apply(event)
            let t3 = nowNanoseconds()
            let changes = state.evaluateForChanges(rules)
            let t4 = nowNanoseconds()
            let result = state.evaluate(rules)
            let t5 = nowNanoseconds()
            sink &+= result.alerts.count &+ changes.count &+ event.id.utf8.count
            if i >= options.warmup {
                let j = i - options.warmup
                decode[j] = t1 - t0
                apply[j] = t3 - t2
                evaluate[j] = t4 - t3
                both[j] = t4 - t2
                full[j] = t5 - t4
            }
        }
        let result = PerEventResult(
            decode: Summary(decode), apply: Summary(apply), evaluate: Summary(evaluate), applyEvaluate: Summary(both),
            fullResult: Summary(full))
        print("   \(options.warmup) warm-up + \(options.iterations) measured iterations; times in µs")
        print("   " + pad("", 22, right: false) + ["p50", "p90", "p99", "max", "mean", "min"].map { pad($0, 10) }.joined())
        for (name, s) in [("decode", result.decode), ("apply", result.apply), ("evaluate", result.evaluate), ("apply + evaluate", result.applyEvaluate), ("full result (explain all)", result.fullResult)] {
            print("   " + pad(name, 22, right: false) + [s.p50, s.p90, s.p99, s.max, s.mean, s.min].map { pad(fmt($0), 10) }.joined())
        }
        let r = result
        print("   ratio (apply + evaluate) / decode: p50 \(fmt(r.applyEvaluate.p50 / r.decode.p50))×, p99 \(fmt(r.applyEvaluate.p99 / r.decode.p99))×, mean \(fmt(r.applyEvaluate.mean / r.decode.mean))×")
        print("   ratio evaluate only / decode:      p50 \(fmt(r.evaluate.p50 / r.decode.p50))×, p99 \(fmt(r.evaluate.p99 / r.decode.p99))×, mean \(fmt(r.evaluate.mean / r.decode.mean))×")
        return result
    }

    static func summaryTable(_ rows: [(String, PerEventResult)]) {
        print("")
        print("== Summary (µs per event; target: p99 apply + evaluate < 50 µs, and evaluation no dearer than decoding)")
        print("   " + pad("rule set", 28, right: false) + ["decode p50", "decode p99", "eval p50", "eval p99", "ratio p50", "ratio p99", "p99<50µs", "eval≤decode"].map { pad($0, 12) }.joined())
        for (name, r) in rows {
            let ratio50 = r.applyEvaluate.p50 / r.decode.p50
            let ratio99 = r.applyEvaluate.p99 / r.decode.p99
            let cells = [
                fmt(r.decode.p50), fmt(r.decode.p99), fmt(r.applyEvaluate.p50), fmt(r.applyEvaluate.p99),
                fmt(ratio50) + "×", fmt(ratio99) + "×",
                r.applyEvaluate.p99 < 50 ? "met" : "MISSED",
                ratio50 <= 1 && ratio99 <= 1 ? "met" : "MISSED",
            ]
            print("   " + pad(name, 28, right: false) + cells.map { pad($0, 12) }.joined())
        }
        print("   (\"eval\" = apply to the patient state in place + evaluate, as the daemon does per event: decisions and a content")
        print("    digest per fired alert; texts and evidence are built only for alerts that change. The full result,")
        print("    every alert's text and evidence built, is shown per rule set above as \"full result (explain all)\".)")
    }

    // MARK: - Compile time

    static func compileTime(options: Options, vocabulary: String, bundledRules: String) {
        print("")
        print("== Compile (reload) time: RuleSnapshot.load = read YAML + parse + check + compile + hash")
        let generator = SyntheticRules(ruleCount: options.compileRules)
        let directory = try! generator.write(vocabulary: vocabulary)
        defer { SyntheticRules.remove(directory) }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/rulesets"))?.count ?? 0
        let bytes = ((try? FileManager.default.subpathsOfDirectory(atPath: directory)) ?? []).reduce(0) { total, path in
            total + (((try? FileManager.default.attributesOfItem(atPath: directory + "/" + path))?[.size] as? Int) ?? 0)
        }
        print("   synthetic set: \(directory) — \(files) rule-set files, \(bytes / 1024) KiB of YAML")

        for (label, path, runs) in [("bundled rules", bundledRules, options.compileRuns), ("synthetic \(options.compileRules)-rule set", directory, options.compileRuns)] {
            var samples: [UInt64] = []
            var count = 0
            _ = load(path, label: label)  // warm the file cache and the lazily built tables
            for _ in 0..<runs {
                let t0 = nowNanoseconds()
                let snapshot = load(path, label: label)
                let t1 = nowNanoseconds()
                count = snapshot.ruleCount
                samples.append(t1 - t0)
            }
            let s = Summary(samples, divisor: 1_000_000)
            print("   \(pad(label, 28, right: false)) \(count) rules, \(runs) runs: min \(fmt(s.min)) ms, median \(fmt(Summary.median(samples, divisor: 1_000_000))) ms, max \(fmt(s.max)) ms, mean \(fmt(s.mean)) ms")
            if path == directory {
                let median = Summary.median(samples, divisor: 1_000_000)
                print("   target: reload compile of a 1,000-rule set under 200 ms — \(median < 200 ? "met" : "MISSED") (median \(fmt(median)) ms)")
            }
        }
    }

    // MARK: - Helpers

    static func load(_ directory: String, label: String) -> RuleSnapshot {
        do {
            return try RuleSnapshot.load(directory: directory)
        } catch {
            print("error: the \(label) at \(directory) did not load:")
            print(error.description)
            exit(1)
        }
    }

    static func decodeOrDie(_ rules: RuleSnapshot, _ data: Data, _ what: String) -> DecodedEvent {
        do {
            return try rules.decode(data)
        } catch {
            print("error: the \(what) was rejected:")
            print(error.description)
            exit(1)
        }
    }

    static func header(_ options: Options, root: String) {
        print("Cobalt rule-engine benchmark")
        print("command:   cd Benchmarks && swift run -c release RuleEngineBenchmark\(CommandLine.arguments.dropFirst().map { " " + $0 }.joined())")
        print("build:     \(Machine.buildConfiguration)")
        print("date:      \(ISO8601DateFormatter().string(from: Date()))")
        print("machine:   \(Machine.cores) cores, \(Machine.cpuModel), \(Machine.memory) RAM")
        print("system:    \(ProcessInfo.processInfo.operatingSystemVersionString)")
        print("swift:     \(Machine.swiftVersion)")
        print("engine:    (working tree at run time) \(Machine.revision(root: root))")
        print("load avg:  \(Machine.loadAverage) (another build on this 2-core machine inflates the numbers)")
        var overhead: [UInt64] = []
        for _ in 0..<10_000 {
            let a = nowNanoseconds()
            let b = nowNanoseconds()
            overhead.append(b - a)
        }
        print("timer:     DispatchTime.now() back to back: p50 \(fmt(Summary(overhead).p50 * 1000, 0)) ns")
    }

    static func parse(_ arguments: ArraySlice<String>) -> Options {
        var options = Options()
        var it = arguments.makeIterator()
        func number(_ flag: String) -> Int {
            guard let text = it.next(), let value = Int(text), value > 0 else {
                print("error: \(flag) needs a positive number")
                exit(2)
            }
            return value
        }
        while let argument = it.next() {
            switch argument {
            case "--iterations": options.iterations = number(argument)
            case "--warmup": options.warmup = number(argument)
            case "--compile-runs": options.compileRuns = number(argument)
            case "--synthetic-rules": options.syntheticRules = number(argument)
            case "--compile-rules": options.compileRules = number(argument)
            case "--rules": options.rules = it.next()
            case "--write-synthetic": options.writeSynthetic = it.next()
            case "--only":
                options.only = it.next()
                guard options.only == "evaluate" || options.only == "long" || options.only == "compile" else {
                    print("error: --only takes evaluate, long or compile")
                    exit(2)
                }
            default:
                print("usage: RuleEngineBenchmark [--iterations N] [--warmup N] [--compile-runs N] [--synthetic-rules N] [--compile-rules N] [--rules DIR] [--only evaluate|long|compile] [--write-synthetic DIR]")
                exit(argument == "--help" || argument == "-h" ? 0 : 2)
            }
        }
        return options
    }
}
