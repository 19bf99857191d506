// DaemonLoad: a load generator for the real `cobalt serve` process on loopback.
//
//   (repository root)  swift build -c release --product cobalt --scratch-path .build-release
//   (Benchmarks/)      swift run -c release DaemonLoad
//
// Scenarios, each against a freshly started daemon with a fresh database, each bounded in count and time:
//   throughput  pipelined DEALER client(s), a window of events in flight: acknowledged events/s, then the time
//               until the daemon reports every event evaluated (control `status`): evaluated events/s
//   latency     open loop at a fixed offered rate (default 5,000 events/s for 10 s): ACK latency percentiles
//   alerts      a SUB on `clinic/` and events that each change a patient's alerts (default 1,000/s for 8 s):
//               event-to-alert latency at the subscriber
//   echo        a bare ROUTER/DEALER echo with the same payloads, window and offered rate: the transport's ceiling;
//               and 2,000 small synced writes: the disk's floor under every durable ACK
//   reload      a 1,000-rule synthetic set in shadow beside the bundled rules (a scratch copy), open alerts for 1,000
//               patients, then control reloads (each after a harmless edit) while events stream at 1,000/s:
//               reload_ms, evaluation_pause_ms, ACK latency while reloading, no event lost or left unevaluated
import BenchmarkSupport
import Foundation
import Synchronization
import ZeroMQ

// MARK: - Options

struct Options {
    var root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    var daemon: String?
    var rules: String?
    var events = 100_000
    var window = 1_000
    var clients = [1, 4]
    var patients = 1_000
    var rate = 5_000.0
    var latencySeconds = 10.0
    var alertRate = 1_000.0
    var alertSeconds = 8.0
    var capSeconds = 60.0
    var only: Set<String> = ["throughput", "latency", "alerts", "echo", "reload"]
    var reloadRules = 1_000
    var reloads = 10
    var reloadRate = 1_000.0
    var reloadSeconds = 20.0
    var reloadPatients = 1_000
    var perfStat = true
    var countCalls = false
    var perfDirectory: String?
    var dumpEvents: Int?
    var dumpAlternating: Int?
    var quietSeconds = 120.0
    /// YAML added to every daemon's configuration file (`--daemon-config FILE`), e.g. a smaller patient cache.
    var daemonConfiguration: String?

    var daemonBinary: String { daemon ?? root + "/.build-release/release/cobalt" }
    var rulesDirectory: String { rules ?? root + "/Rules" }

    static let usage = """
        usage: DaemonLoad [--daemon PATH] [--rules DIR] [--events N] [--window N] [--clients N,…] [--patients N]
                          [--rate PER_S] [--latency-seconds S] [--alert-rate PER_S] [--alert-seconds S]
                          [--cap-seconds S] [--only throughput,latency,alerts,echo,reload] [--perf-dir DIR] [--wait-quiet S]
                          [--reload-rules N] [--reloads N] [--reload-rate PER_S] [--reload-seconds S] [--reload-patients N]
                          [--no-perf-stat | --count-calls] [--daemon-config FILE]
                          [--dump-events N | --dump-alternating N]   (print the generated events as JSON Lines and exit)
        defaults: --daemon <repo>/.build-release/release/cobalt --rules <repo>/Rules --events 100000 --window 1000
                  --clients 1,4 --patients 1000 --rate 5000 --latency-seconds 10 --alert-rate 1000 --alert-seconds 8
                  --cap-seconds 60 --wait-quiet 120 (before each scenario, wait until other processes use
                  < 0.15 cores, at most S seconds in all; 0 disables) --reload-rules 1000 --reloads 10
                  --reload-rate 1000 --reload-seconds 20 --reload-patients 1000; without --no-perf-stat, the throughput
                  runs count the daemon's fdatasync/fsync calls with `perf stat` when perf is available;
                  --count-calls counts its malloc and swift_retain calls per event instead (uprobes: slow, so the
                  run's rates mean nothing; the counts change only when the code does); --daemon-config adds the
                  file's YAML to every daemon's configuration (e.g. limits.patient_cache: 2000)
        """

    init(_ arguments: [String]) throws {
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw BenchmarkError("\(arguments[i - 1]) needs a value\n\(Self.usage)") }
            return arguments[i]
        }
        func number(_ text: String) throws -> Double {
            guard let n = Double(text.replacingOccurrences(of: "_", with: "")), n > 0 else { throw BenchmarkError("not a positive number: \(text)") }
            return n
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--daemon": daemon = try value()
            case "--rules": rules = try value()
            case "--events": events = Int(try number(try value()))
            case "--window": window = Int(try number(try value()))
            case "--clients": clients = try value().split(separator: ",").map { Int(try number(String($0))) }
            case "--patients": patients = Int(try number(try value()))
            case "--rate": rate = try number(try value())
            case "--latency-seconds": latencySeconds = try number(try value())
            case "--alert-rate": alertRate = try number(try value())
            case "--alert-seconds": alertSeconds = try number(try value())
            case "--cap-seconds": capSeconds = try number(try value())
            case "--only": only = Set(try value().split(separator: ",").map(String.init))
            case "--perf-dir": perfDirectory = try value()
            case "--dump-events": dumpEvents = Int(try number(try value()))
            case "--dump-alternating": dumpAlternating = Int(try number(try value()))
            case "--wait-quiet": quietSeconds = Double(try value()) ?? 0
            case "--reload-rules": reloadRules = Int(try number(try value()))
            case "--reloads": reloads = Int(try number(try value()))
            case "--reload-rate": reloadRate = try number(try value())
            case "--reload-seconds": reloadSeconds = try number(try value())
            case "--reload-patients": reloadPatients = Int(try number(try value()))
            case "--no-perf-stat": perfStat = false
            case "--count-calls": countCalls = true
            case "--daemon-config":
                let file = try value()
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw BenchmarkError("cannot read \(file)") }
                daemonConfiguration = text
            case "-h", "--help":
                print(Self.usage)
                exit(0)
            default: throw BenchmarkError("unknown argument \(arguments[i])\n\(Self.usage)")
            }
            i += 1
        }
    }
}

// MARK: - Report rows

struct Row {
    var metric: String
    var result: String
    var target: String
    var verdict: String
}

final class Report {
    var lines: [String] = []
    var rows: [Row] = []

    func say(_ text: String = "") {
        lines.append(text)
        progress(text)
    }
}

/// Mean and bucket-estimated quantiles of a Prometheus histogram/summary in the daemon's metrics text.
func metricSummary(_ text: String, _ name: String, scale: Double = 1, unit: String = "") -> String {
    var sum: Double?, count: Double?
    var buckets: [(Double, Double)] = []
    for line in text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        guard parts.count >= 2, let value = Double(parts[parts.count - 1]) else { continue }
        let key = String(parts[0])
        if key == name + "_sum" || key.hasPrefix(name + "_sum{") { sum = (sum ?? 0) + value }
        else if key == name + "_count" || key.hasPrefix(name + "_count{") { count = (count ?? 0) + value }
        else if key.hasPrefix(name + "_bucket"), let le = key.range(of: "le=\"") {
            let bound = key[le.upperBound...].prefix { $0 != "\"" }
            buckets.append((bound == "+Inf" ? .infinity : Double(bound) ?? .infinity, value))
        } else if key == name {
            return "value \(fmt(value * scale, 3))\(unit)"
        }
    }
    guard let sum, let count, count > 0 else { return "not reported" }
    var text = "mean \(fmt(sum / count * scale, 3))\(unit) over \(grouped(count)) samples"
    buckets.sort { $0.0 < $1.0 }
    func quantile(_ q: Double) -> String {
        guard let hit = buckets.first(where: { $0.1 >= q * count }) else { return "?" }
        return hit.0.isInfinite ? "> largest bucket" : "≤ \(fmt(hit.0 * scale, 3))\(unit)"
    }
    if !buckets.isEmpty { text += ", p50 \(quantile(0.5)), p99 \(quantile(0.99)) (bucket bounds)" }
    return text
}

/// The `_sum` and `_count` of a histogram/summary in the daemon's metrics text (summed over labels).
func metricSumCount(_ text: String, _ name: String) -> (sum: Double, count: Double)? {
    var sum = 0.0, count = 0.0, found = false
    for line in text.split(separator: "\n") where line.hasPrefix(name + "_") {
        let parts = line.split(separator: " ")
        guard parts.count >= 2, let value = Double(parts[parts.count - 1]) else { continue }
        let key = parts[0].prefix { $0 != "{" }
        if key == name + "_sum" { sum += value; found = true } else if key == name + "_count" { count += value; found = true }
    }
    return found ? (sum, count) : nil
}

func fetchMetrics(_ context: ZMQContext, _ daemon: DaemonProcess) -> String {
    guard let reply = try? Clients.request(context: context, endpoint: daemon.endpoints.control, Array(#"{"command":"metrics"}"#.utf8)),
        let object = try? JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any], let text = object["text"] as? String
    else { return "" }
    return text
}

/// The calls counted with `--count-calls`, per event, by thread.
func reportCallCounts(_ report: Report, _ file: String, events: Int) {
    guard let counts = DaemonProcess.callCounts(file), events > 0 else {
        report.say("  calls per event: not counted (perf with uprobes unavailable?)")
        return
    }
    let functions = DaemonProcess.countedCalls.map(\.function)
    func line(_ name: String, _ calls: [String: Int]) -> String {
        "    " + name.padding(toLength: 16, withPad: " ", startingAt: 0)
            + functions.map { $0 + " " + fmt(Double(calls[$0] ?? 0) / Double(events), 1) }.joined(separator: ", ")
    }
    report.say("  calls per event (first send → all evaluated; the rates above are slowed by the probes):")
    for (thread, calls) in counts.sorted(by: { $0.key < $1.key }) where calls.values.reduce(0, +) >= events / 100 {
        report.say(line(thread, calls))
    }
    var total: [String: Int] = [:]
    for calls in counts.values { total.merge(calls, uniquingKeysWith: +) }
    report.say(line("all threads", total))
}

func daemonFacts(_ report: Report, _ context: ZMQContext, _ daemon: DaemonProcess, _ label: String) {
    let metrics = fetchMetrics(context, daemon)
    report.say("  daemon metrics (\(label)):")
    report.say("    cobalt_commit_batch_size (ingest messages per group commit): " + metricSummary(metrics, "cobalt_commit_batch_size"))
    report.say("    cobalt_evaluation_duration_seconds (per event, averaged per batch): "
        + metricSummary(metrics, "cobalt_evaluation_duration_seconds", scale: 1e6, unit: " µs"))
    // A cache too small for the patients in play rebuilds evicted patients from the journal on every event.
    let cache = ["cobalt_patients_loaded_total", "cobalt_patients_evicted_total", "cobalt_history_events_read_total"]
        .map { counterValue(metrics, $0).map { grouped($0) } ?? "?" }
    report.say("    patient cache: \(cache[0]) patients loaded, \(cache[1]) evicted, \(cache[2]) journaled events read back")
    report.say("    peak resident memory (VmHWM): " + (daemon.peakResidentBytes.map { fmt(Double($0) / 1_048_576, 0) + " MiB" } ?? "unknown"))
}

/// The value of a counter without labels in Prometheus text.
func counterValue(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return line.split(separator: " ").last.flatMap { Double($0) }
    }
    return nil
}

func finishDaemon(_ report: Report, _ daemon: DaemonProcess) {
    let problems = daemon.problems
    let status = daemon.stop()
    report.say("  daemon stopped with SIGTERM: exit status \(status); \(problems.count) warning/error log lines"
        + (problems.isEmpty ? "" : " (first: \(problems[0]))"))
}

/// The p99 latency of the events sent in each second of the run, to show whether the tail is steady, bursts or grows.
func perSecondP99(sendTimes: [UInt64], doneTimes: [UInt64]) -> String {
    guard let t0 = sendTimes.filter({ $0 > 0 }).min(), let t1 = sendTimes.max() else { return "" }
    var buckets = Array(repeating: [UInt64](), count: Int((t1 - t0) / 1_000_000_000) + 1)
    for (sent, done) in zip(sendTimes, doneTimes) where sent > 0 && done > 0 {
        buckets[Int((sent - t0) / 1_000_000_000)].append(done - sent)
    }
    return buckets.compactMap { Latency($0).map { fmt($0.p99, 1) } }.joined(separator: " ")
}

// MARK: - Scenarios

func throughput(_ o: Options, clients: Int, _ report: Report, _ context: ZMQContext, _ events: [[UInt8]]) throws {
    report.say("## A. Sustained throughput: \(grouped(Double(events.count))) events, \(clients) DEALER client(s), window \(o.window) in flight each")
    let daemon = try DaemonProcess(binary: o.daemonBinary, rules: o.rulesDirectory, label: "throughput-\(clients)", configuration: o.daemonConfiguration)
    defer { daemon.stop() }
    let perfStatFile = FileManager.default.temporaryDirectory.appendingPathComponent("cobalt-load-perfstat-\(UUID().uuidString.prefix(8)).txt").path
    defer { try? FileManager.default.removeItem(atPath: perfStatFile) }
    if let directory = o.perfDirectory {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        daemon.startPerf(output: directory + "/throughput-\(clients)x\(o.window).perf.data")
    } else if o.countCalls {
        try daemon.startCallCount(output: perfStatFile)
    } else if o.perfStat {
        daemon.startPerfStat(output: perfStatFile)
    }
    let poller = StatusPoller(context: context, endpoint: daemon.endpoints.control, intervalMilliseconds: 100)
    defer { poller.stop() }
    let cpu = CPUWindow(daemonPID: daemon.pid)
    let start = nowNanoseconds()
    let deadline = start + UInt64(o.capSeconds * 1e9)
    let per = (events.count + clients - 1) / clients
    let workers = (0..<clients).map { c in
        let range = (c * per)..<min(events.count, (c + 1) * per)
        return Worker("sender-\(c)") {
            try Clients.windowed(context: context, endpoint: daemon.endpoints.ingest, events: events, range: range, window: o.window, sendDeadline: deadline, mode: .daemon)
        }
    }
    let parts = try workers.map { try $0.join() }
    let ingestCPU = cpu.summary
    let m = SendResult.merged(parts)
    let seconds = Double(m.lastReply - m.firstSend) / 1e9
    let ackRate = Double(m.accepted) / seconds
    let n = m.replyTimes.count
    var middleRate = 0.0
    if n >= 10 {
        let t10 = m.replyTimes[n / 10], t90 = m.replyTimes[n * 9 / 10]
        middleRate = Double(n * 8 / 10) / (Double(t90 - t10) / 1e9)
    }
    report.say("  sent \(m.sent), replies \(m.replied): accepted \(m.accepted), duplicate \(m.duplicate), rejected \(m.rejected)"
        + (m.capped ? " — CAPPED at \(Int(o.capSeconds)) s" : ""))
    if let first = m.firstRejection { report.say("  first rejection: \(first)") }
    report.say("  acknowledged: \(grouped(ackRate)) events/s over \(fmt(seconds, 2)) s (first send → last ACK); middle 80 % of ACKs: \(grouped(middleRate)) events/s")
    if let l = Latency(m.latencies) { report.say("  ACK latency under saturation (closed loop, informational): " + l.line) }
    let backlogAtEnd = poller.board.all.last { $0.time <= m.lastReply }.map { max(0, $0.accepted - $0.evaluated) }
    // Evaluation continues after the last ACK: wait (bounded) until every accepted event is evaluated.
    let evaluatedAt = poller.waitForEvaluated(m.accepted, deadline: max(nowNanoseconds(), m.lastReply) + UInt64(o.capSeconds / 2 * 1e9))
    let samples = poller.board.all
    let evaluatedRate: Double
    var evaluatedNote = ""
    if let evaluatedAt {
        let evaluatedSeconds = Double(evaluatedAt - m.firstSend) / 1e9
        evaluatedRate = Double(m.accepted) / evaluatedSeconds
        report.say("  evaluated: all \(m.accepted) after \(fmt(evaluatedSeconds, 2)) s (first send → status shows all evaluated; polled every 100 ms): \(grouped(evaluatedRate)) events/s")
    } else {
        let last = samples.last
        let done = last?.evaluated ?? 0
        evaluatedRate = Double(done) / (Double((last?.time ?? nowNanoseconds()) - m.firstSend) / 1e9)
        evaluatedNote = " (incomplete: \(done) of \(m.accepted) within the cap)"
        report.say("  evaluated: only \(done) of \(m.accepted) within the cap: \(grouped(evaluatedRate)) events/s")
    }
    if let backlogAtEnd { report.say("  evaluation backlog when the last ACK arrived: \(backlogAtEnd) events") }
    report.say("  until the last ACK: " + ingestCPU)
    report.say("  until all evaluated: " + cpu.summary)
    // Evaluation rate while it runs alone (after ingest ended), from the status samples.
    let after = samples.filter { $0.time >= m.lastReply && $0.evaluated < m.accepted }
    if (backlogAtEnd ?? 0) >= 1_000, let a = after.first, let b = samples.last(where: { $0.time > a.time }), b.evaluated > a.evaluated {
        report.say("  evaluation rate after ingest ended (status samples): \(grouped(Double(b.evaluated - a.evaluated) / (Double(b.time - a.time) / 1e9))) events/s")
    }
    if let last = samples.last { report.say("  alerts published: \(last.published)") }
    let countedSeconds = Double(nowNanoseconds() - start) / 1e9
    daemon.stopPerf()
    daemonFacts(report, context, daemon, "after throughput")
    let peakMemory = daemon.peakResidentBytes
    let metrics = fetchMetrics(context, daemon)
    let commits = metricSumCount(metrics, "cobalt_commit_batch_size")
    let evaluationBatches = metricSumCount(metrics, "cobalt_evaluation_duration_seconds")
    if o.countCalls { reportCallCounts(report, perfStatFile, events: m.accepted) }
    var fsyncNote = "not counted (--perf-dir, --no-perf-stat or --count-calls, or perf unavailable)"
    if o.perfDirectory == nil, o.perfStat, !o.countCalls, let counts = DaemonProcess.perfStatCounts(perfStatFile) {
        let fdatasync = counts["syscalls:sys_enter_fdatasync"] ?? 0, fsync = counts["syscalls:sys_enter_fsync"] ?? 0
        fsyncNote = "\(fdatasync) fdatasync + \(fsync) fsync over \(fmt(countedSeconds, 1)) s (\(grouped(Double(fdatasync) / countedSeconds))/s)"
        if let commits, commits.count > 0 {
            fsyncNote += "; \(grouped(commits.count)) ingest commits"
            if let evaluationBatches { fsyncNote += " + \(grouped(evaluationBatches.count)) evaluation batches" }
            fsyncNote += ": \(fmt(Double(fdatasync) / (commits.count + (evaluationBatches?.count ?? 0)), 2)) fdatasync per transaction"
        }
    }
    report.say("  perf stat on the daemon (first send → all evaluated): " + fsyncNote)
    poller.stop()
    finishDaemon(report, daemon)
    report.rows.append(Row(
        metric: "Sustained acknowledged events/s (group commit, \(clients)×\(o.window) window, \(grouped(Double(m.accepted))) events)",
        result: grouped(ackRate) + " (middle 80 %: \(grouped(middleRate)))", target: "≥ 50,000",
        verdict: ackRate >= 50_000 ? "met" : "MISSED"))
    report.rows.append(Row(
        metric: "Evaluated events/s, same run (first send → all evaluated)", result: grouped(evaluatedRate) + evaluatedNote,
        target: "≥ 50,000 (for ingest to be sustainable)", verdict: evaluatedRate >= 50_000 && evaluatedNote.isEmpty ? "met" : "MISSED"))
    if let l = Latency(m.latencies) {
        report.rows.append(Row(metric: "ACK latency under saturation p50 / p99, same run", result: "\(fmt(l.p50, 1)) / \(fmt(l.p99, 1)) ms", target: "—", verdict: "info"))
    }
    if let commits, commits.count > 0 {
        report.rows.append(Row(metric: "Mean group-commit batch (events per journal transaction), same run", result: "\(fmt(commits.sum / commits.count, 1)) over \(grouped(commits.count)) commits", target: "—", verdict: "info"))
    }
    report.rows.append(Row(metric: "fsync evidence, same run", result: fsyncNote, target: "—", verdict: "info"))
    if let peakMemory {
        report.rows.append(Row(
            metric: "Daemon peak resident memory (VmHWM), same run (\(grouped(Double(o.patients))) patients)",
            result: fmt(Double(peakMemory) / 1_048_576, 0) + " MiB",
            target: "bounded by configuration (compare runs with --patients and --daemon-config)", verdict: "info"))
    }
}

func ackLatency(_ o: Options, _ report: Report, _ context: ZMQContext, _ events: [[UInt8]]) throws {
    report.say("## B. ACK latency at a fixed offered rate: \(grouped(o.rate)) events/s, open loop, \(fmt(o.latencySeconds, 1)) s (\(events.count) events)")
    let daemon = try DaemonProcess(binary: o.daemonBinary, rules: o.rulesDirectory, label: "latency", configuration: o.daemonConfiguration)
    defer { daemon.stop() }
    let deadline = nowNanoseconds() + UInt64((o.latencySeconds + 5) * 1e9)
    let cpu = CPUWindow(daemonPID: daemon.pid)
    let probe = try DiskProbe()
    let probeStart = nowNanoseconds()
    let result = try Worker("paced-sender") {
        try Clients.paced(context: context, endpoint: daemon.endpoints.ingest, events: events, rate: o.rate, sendDeadline: deadline, mode: .daemon)
    }.join()
    let disk = try probe.stop(start: probeStart)
    let sentTimes = result.sendTimes.filter { $0 > 0 }
    let achieved = Double(sentTimes.count) / (Double(sentTimes.max()! - sentTimes.min()!) / 1e9)
    report.say("  sent \(result.sent) (achieved \(grouped(achieved))/s; max send lag behind schedule \(fmt(Double(result.maxScheduleLag) / 1e6, 2)) ms), "
        + "accepted \(result.accepted), duplicate \(result.duplicate), rejected \(result.rejected), no reply \(result.sent - result.replied)"
        + (result.capped ? " — CAPPED" : ""))
    if let first = result.firstRejection { report.say("  first rejection: \(first)") }
    let latency = Latency(result.latencies)
    if let latency { report.say("  ACK latency: " + latency.line) }
    report.say("  p99 per second of sending (ms): " + perSecondP99(sendTimes: result.sendTimes, doneTimes: result.replyTimes))
    report.say("  disk probe: " + disk)
    report.say("  " + cpu.summary)
    daemonFacts(report, context, daemon, "after the latency run")
    finishDaemon(report, daemon)
    if let latency {
        report.rows.append(Row(metric: "ACK latency p50 at \(grouped(o.rate))/s", result: fmt(latency.p50, 2) + " ms", target: "—", verdict: "info"))
        report.rows.append(Row(metric: "ACK latency p90 at \(grouped(o.rate))/s", result: fmt(latency.p90, 2) + " ms", target: "—", verdict: "info"))
        report.rows.append(Row(
            metric: "ACK latency p99 at \(grouped(o.rate))/s", result: fmt(latency.p99, 2) + " ms", target: "≤ 5 ms",
            verdict: latency.p99 <= 5 && result.replied == events.count ? "met" : "MISSED"))
        report.rows.append(Row(metric: "ACK latency max at \(grouped(o.rate))/s", result: fmt(latency.max, 2) + " ms", target: "—", verdict: "info"))
    }
}

func alertLatency(_ o: Options, _ report: Report, _ context: ZMQContext) throws {
    let count = Int(o.alertRate * o.alertSeconds)
    let patients = min(o.patients, count)
    let events = EventFactory.alternating(prefix: "alert", count: count, patients: patients, seed: 3)
    report.say("## C. Event-to-alert latency: \(grouped(o.alertRate)) events/s, open loop, \(fmt(o.alertSeconds, 1)) s (\(count) events, \(patients) patients alternating 18 ↔ 90 pmol/L)")
    let daemon = try DaemonProcess(binary: o.daemonBinary, rules: o.rulesDirectory, label: "alerts", configuration: o.daemonConfiguration)
    defer { daemon.stop() }
    let subscriber = try AlertSubscriber(context: context, endpoint: daemon.endpoints.alerts)
    defer { subscriber.stop() }
    // Make sure the subscription has reached the daemon (PUB/SUB drops until it has): a probe event whose alert
    // must arrive before the measured events start.
    var random = SplitMix(seed: 99)
    var probeArrived = false
    for attempt in 0..<5 where !probeArrived {
        let probe = EventFactory.event(id: "probe-\(attempt)", patient: "probe-\(attempt)", clinic: EventFactory.clinics[0], secondsAfterBase: 0, activeB12: 18, random: &random)
        guard let reply = try Clients.request(context: context, endpoint: daemon.endpoints.ingest, probe), reply.stringField("status") == "accepted" else {
            throw BenchmarkError("the probe event was not accepted")
        }
        let until = nowNanoseconds() + 2_000_000_000
        while nowNanoseconds() < until, subscriber.received == 0 { usleep(5_000) }
        probeArrived = subscriber.received > 0
    }
    guard probeArrived else { throw BenchmarkError("no alert reached the subscriber for the probe events") }
    usleep(200_000)
    let probeAlerts = subscriber.received
    let deadline = nowNanoseconds() + UInt64((o.alertSeconds + 5) * 1e9)
    let cpu = CPUWindow(daemonPID: daemon.pid)
    let probe = try DiskProbe()
    let probeStart = nowNanoseconds()
    let result = try Worker("alert-sender") {
        try Clients.paced(context: context, endpoint: daemon.endpoints.ingest, events: events, rate: o.alertRate, sendDeadline: deadline, mode: .daemon)
    }.join()
    let disk = try probe.stop(start: probeStart)
    // Wait (bounded) for the alerts of the last events: every event changes 3 alerts.
    let expected = probeAlerts + 3 * result.accepted
    let until = nowNanoseconds() + 10_000_000_000
    while nowNanoseconds() < until, subscriber.received < expected { usleep(10_000) }
    usleep(100_000)
    subscriber.stop()
    let alerts = subscriber.all
    // Match: for each event, the first alert for its patient that arrived after it was sent and before that
    // patient's next event was sent.
    var byPatient: [String: [UInt64]] = [:]
    var statuses: [String: Int] = [:]
    for alert in alerts where !alert.patient.hasPrefix("probe-") {
        byPatient[alert.patient, default: []].append(alert.time)
        statuses[alert.status, default: 0] += 1
    }
    var latencies: [UInt64] = []
    var fired: [UInt64] = []
    var resolved: [UInt64] = []
    var cursor: [String: Int] = [:]
    var missing = 0
    var firstAlert = Array(repeating: UInt64(0), count: events.count)
    for index in 0..<events.count where result.sendTimes[index] > 0 {
        let patient = EventFactory.alternatingPatient(index, patients: patients)
        let sent = result.sendTimes[index]
        let nextSent = index + patients < events.count && result.sendTimes[index + patients] > 0 ? result.sendTimes[index + patients] : UInt64.max
        let times = byPatient[patient] ?? []
        var position = cursor[patient] ?? 0
        while position < times.count, times[position] < sent { position += 1 }
        cursor[patient] = position
        if position < times.count, times[position] < nextSent {
            let latency = times[position] - sent
            firstAlert[index] = times[position]
            latencies.append(latency)
            if (index / patients) % 2 == 0 { fired.append(latency) } else { resolved.append(latency) }
        } else {
            missing += 1
        }
    }
    report.say("  sent \(result.sent), accepted \(result.accepted), rejected \(result.rejected); alerts received \(alerts.count - probeAlerts) "
        + "(expected \(3 * result.accepted): " + statuses.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        + "); events without a matching alert: \(missing)")
    let latency = Latency(latencies)
    if let latency { report.say("  event-to-alert (send → first alert at the subscriber): " + latency.line) }
    report.say("    p99 per second of sending (ms): " + perSecondP99(sendTimes: result.sendTimes, doneTimes: firstAlert))
    if let l = Latency(fired) { report.say("    events that fire alerts:   " + l.line) }
    if let l = Latency(resolved) { report.say("    events that resolve alerts: " + l.line) }
    if let l = Latency(result.latencies) { report.say("  ACK latency in the same run: " + l.line) }
    report.say("    p99 per second of sending (ms): " + perSecondP99(sendTimes: result.sendTimes, doneTimes: result.replyTimes))
    report.say("  disk probe: " + disk)
    report.say("  " + cpu.summary)
    daemonFacts(report, context, daemon, "after the alert run")
    subscriber.stop()
    finishDaemon(report, daemon)
    if let latency {
        report.rows.append(Row(metric: "Event-to-alert p50 at \(grouped(o.alertRate))/s", result: fmt(latency.p50, 2) + " ms", target: "—", verdict: "info"))
        report.rows.append(Row(
            metric: "Event-to-alert p99 at \(grouped(o.alertRate))/s", result: fmt(latency.p99, 2) + " ms" + (missing > 0 ? " (\(missing) unmatched)" : ""),
            target: "≤ 10 ms", verdict: latency.p99 <= 10 && missing == 0 ? "met" : "MISSED"))
    }
}

func echo(_ o: Options, clientsList: [Int], _ report: Report, _ context: ZMQContext, _ throughputEvents: [[UInt8]], _ latencyEvents: [[UInt8]]) throws {
    report.say("## D. Baseline: bare ROUTER/DEALER echo, same payloads")
    let server = try EchoServer(context: context)
    defer { server.stop() }
    for clients in clientsList {
        let start = nowNanoseconds()
        let deadline = start + UInt64(o.capSeconds * 1e9)
        let per = (throughputEvents.count + clients - 1) / clients
        let workers = (0..<clients).map { c in
            let range = (c * per)..<min(throughputEvents.count, (c + 1) * per)
            return Worker("echo-sender-\(c)") {
                try Clients.windowed(context: context, endpoint: server.endpoint, events: throughputEvents, range: range, window: o.window, sendDeadline: deadline, mode: .echo)
            }
        }
        let m = SendResult.merged(try workers.map { try $0.join() })
        let rate = Double(m.replied) / (Double(m.lastReply - m.firstSend) / 1e9)
        report.say("  round trips: \(m.replied) of \(m.sent) in \(fmt(Double(m.lastReply - m.firstSend) / 1e9, 2)) s: \(grouped(rate))/s (\(clients)×\(o.window) window)")
        report.rows.append(Row(metric: "Baseline echo round trips/s (\(clients)×\(o.window) window, same payloads)", result: grouped(rate), target: "—", verdict: "baseline"))
    }
    let paced = try Worker("echo-paced") {
        try Clients.paced(context: context, endpoint: server.endpoint, events: latencyEvents, rate: o.rate, sendDeadline: nowNanoseconds() + UInt64((o.latencySeconds + 5) * 1e9), mode: .echo)
    }.join()
    let latency = Latency(paced.latencies)
    if let latency { report.say("  round-trip latency at \(grouped(o.rate))/s open loop: " + latency.line) }
    report.say("  echoed \(server.stop()) messages")
    if let latency {
        report.rows.append(Row(metric: "Baseline echo round trip p50 / p99 at \(grouped(o.rate))/s", result: "\(fmt(latency.p50, 3)) / \(fmt(latency.p99, 3)) ms", target: "—", verdict: "baseline"))
    }
    if let disk = try diskBaseline() {
        report.say("  disk: 8 KiB pwrite + fdatasync, \(disk.count) times in the temporary directory: " + disk.line)
        report.rows.append(Row(metric: "Baseline disk: 8 KiB write + fdatasync p50 / p99 / max", result: "\(fmt(disk.p50, 3)) / \(fmt(disk.p99, 3)) / \(fmt(disk.max, 3)) ms", target: "—", verdict: "baseline"))
    }
}

/// The disk's floor for a durable ACK: every journal commit ends in an fdatasync, so its latency (and the host's
/// spikes in it) bounds ACK latency whatever the daemon does. 2,000 small synced writes, as a WAL commit does.
func diskBaseline() throws -> Latency? {
    let file = try SyncedFile()
    return Latency(try (0..<2_000).map { try file.write(slot: $0) })
}

/// A scratch file in the temporary directory (where the daemon's database is) for timing small synced writes.
final class SyncedFile: @unchecked Sendable {
    private let path = FileManager.default.temporaryDirectory.appendingPathComponent("cobalt-load-disk-\(UUID().uuidString.prefix(8))").path
    private let fd: Int32
    private let page = [UInt8](repeating: 0x5A, count: 8_192)

    init() throws {
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw BenchmarkError("cannot create \(path): errno \(errno)") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Writes 8 KiB at one of 256 slots and waits for `fdatasync`; returns how long that took, in nanoseconds.
    func write(slot: Int) throws -> UInt64 {
        let start = nowNanoseconds()
        guard page.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, off_t(slot % 256) * 8_192) }) == 8_192, fdatasync(fd) == 0 else {
            throw BenchmarkError("write or fdatasync failed: errno \(errno)")
        }
        return nowNanoseconds() - start
    }
}

/// Times one small synced write every 20 ms while a scenario runs, so that its latency tail can be told apart
/// from the disk's: a second in which the probe's write took tens of milliseconds is a second in which every
/// commit on that disk could too. (50 fsyncs/s beside the daemon's hundreds: a small extra load.)
final class DiskProbe: @unchecked Sendable {
    private let stopped = Mutex(false)
    private var worker: Worker<[(at: UInt64, took: UInt64)]>?

    init() throws {
        let file = try SyncedFile()
        worker = Worker("disk-probe") { [self] in
            var samples: [(at: UInt64, took: UInt64)] = []
            var slot = 0
            while !stopped.withLock({ $0 }) {
                let at = nowNanoseconds()
                samples.append((at, try file.write(slot: slot)))
                slot += 1
                Thread.sleep(forTimeInterval: 0.02)
            }
            return samples
        }
    }

    /// Stops the probe; a line for the report, with the slowest write in each second after `start`.
    func stop(start: UInt64) throws -> String {
        stopped.withLock { $0 = true }
        guard let samples = try worker?.join(), let latency = Latency(samples.map(\.took)) else { return "no samples" }
        var slowest: [Int: UInt64] = [:]
        for sample in samples where sample.at >= start {
            let second = Int((sample.at - start) / 1_000_000_000)
            slowest[second] = max(slowest[second] ?? 0, sample.took)
        }
        let perSecond = slowest.keys.sorted().map { fmt(Double(slowest[$0]!) / 1e6, 1) }.joined(separator: " ")
        return "8 KiB write + fdatasync every 20 ms during the run: " + latency.line + "; slowest per second (ms): " + perSecond
    }
}

// MARK: - Main

let signalSources = installSignalCleanup()
let options: Options
do {
    options = try Options(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(2)
}

if let count = options.dumpEvents {
    for event in EventFactory.mixed(prefix: "dump", count: count, patients: options.patients, seed: 1) {
        print(String(decoding: event, as: UTF8.self))
    }
    exit(0)
}
if let count = options.dumpAlternating {
    for event in EventFactory.alternating(prefix: "dump", count: count, patients: min(options.patients, count), seed: 3) {
        print(String(decoding: event, as: UTF8.self))
    }
    exit(0)
}

guard FileManager.default.isExecutableFile(atPath: options.daemonBinary) else {
    FileHandle.standardError.write(Data("""
        no daemon binary at \(options.daemonBinary); build it first, from the repository root:
            swift build -c release --product cobalt --scratch-path .build-release

        """.utf8))
    exit(2)
}

let report = Report()
let began = Date()
let loadBefore = Machine.loadAverage
let binaryDate = ((try? FileManager.default.attributesOfItem(atPath: options.daemonBinary))?[.modificationDate] as? Date).map { "\($0)" } ?? "?"
report.say("# Cobalt daemon load benchmark")
report.say("date: \(began)")
report.say("machine: nproc \(Machine.cores), CPU \(Machine.cpuModel), RAM \(Machine.memory), \(Machine.os), \(Machine.kernel)")
report.say("load average before: \(loadBefore)")
report.say("command: \(CommandLine.arguments.joined(separator: " "))")
report.say("load generator build: \(Machine.buildConfiguration); libzmq \(ZMQContext.version)")
report.say("daemon: \(options.daemonBinary) (binary modified \(binaryDate)); repository at run time: \(Machine.revision(root: options.root))")
report.say("daemon command: \(options.daemonBinary) serve --rules \(options.rulesDirectory) --db <fresh temp dir>/load.db --ingest tcp://127.0.0.1:* --alerts tcp://127.0.0.1:* --replay tcp://127.0.0.1:* --control tcp://127.0.0.1:*")

let throughputEvents = EventFactory.mixed(prefix: "tput", count: options.events, patients: options.patients, seed: 1)
let latencyEvents = EventFactory.mixed(prefix: "lat", count: Int(options.rate * options.latencySeconds), patients: options.patients, seed: 2)
let sizes = throughputEvents.map(\.count)
report.say("events: \(options.patients) patients in \(EventFactory.clinics.count) clinics; \(sizes.min()!)–\(sizes.max()!) bytes, mean \(sizes.reduce(0, +) / sizes.count) bytes of JSON each; unique ids")
report.say("")

let context: ZMQContext
do { context = try ZMQContext() } catch {
    FileHandle.standardError.write(Data("zmq context: \(error)\n".utf8))
    exit(1)
}
var failures: [String] = []
var quietBudget = options.quietSeconds
@MainActor func attempt(_ name: String, _ body: () throws -> Void) {
    guard options.only.contains(name) else { return }
    if quietBudget > 0 {
        let started = Date()
        let other = waitForQuietMachine(limit: quietBudget)
        quietBudget -= Date().timeIntervalSince(started)
        if other >= 0.15 { report.say("NOTE: other processes used \(fmt(other, 2)) cores when \(name) started (the machine did not become quiet)") }
    }
    do { try body() } catch {
        failures.append("\(name): \(error)")
        report.say("  FAILED: \(error)")
    }
    report.say("")
}
for clients in options.clients {
    attempt("throughput") { try throughput(options, clients: clients, report, context, throughputEvents) }
}
attempt("latency") { try ackLatency(options, report, context, latencyEvents) }
attempt("alerts") { try alertLatency(options, report, context) }
attempt("echo") { try echo(options, clientsList: options.clients, report, context, throughputEvents, latencyEvents) }
attempt("reload") { try reloadUnderLoad(options, report, context) }
context.terminate()

// The summary table goes to stdout (progress and details went to stderr as they happened).
print(report.lines.joined(separator: "\n"))
print("## Summary")
print("load average after: \(Machine.loadAverage); wall time \(fmt(Date().timeIntervalSince(began), 1)) s")
print("")
print("| metric | result | target | |")
print("|---|---|---|---|")
for row in report.rows { print("| \(row.metric) | \(row.result) | \(row.target) | \(row.verdict) |") }
if !failures.isEmpty {
    print("\nFAILED scenarios:\n" + failures.joined(separator: "\n"))
    exit(1)
}
_ = signalSources
