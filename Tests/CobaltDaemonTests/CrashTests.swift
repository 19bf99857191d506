import CobaltClient
import CobaltDaemon
import CobaltStore
import CobaltTestSupport
import Foundation
import RuleEngine
import Synchronization
import Testing
import ZeroMQ

/// Text collected from a child's output by a reader thread, and whether it has read to the end.
final class OutputBuffer: Sendable {
    let text = Mutex("")
    let ended = Mutex(false)
}

/// The real `cobalt serve` binary as a child process, so it can be killed with SIGKILL.
final class DaemonProcess: @unchecked Sendable {
    let process: ChildProcess
    private let output = OutputBuffer()
    let ingest: String
    let alerts: String
    let replay: String
    let control: String
    /// The HTTP endpoint of `/metrics` and `/healthz` (nil when started with `--metrics off`).
    let metrics: String?

    /// `arguments` go after the others (`--config FILE`: flags still win over the file). With
    /// `signalWhileStarting`, that signal is sent every 20 ms from 150 ms after launch until the daemon has started.
    /// `environment` is added to this process's (without its `NOTIFY_SOCKET`). With `closeOutputAfterStart`, the
    /// reader closes its end of the daemon's stderr once the daemon has started (a log reader that went away).
    init(
        database: String, rules: String = Repository.rules, arguments: [String] = [], signalWhileStarting: Int32? = nil,
        environment: [String: String] = [:], closeOutputAfterStart: Bool = false
    ) throws {
        process = try ChildProcess(
            Repository.cobaltBinary, serveOnLoopback(database: database, rules: rules) + arguments,
            environment: testEnvironment(environment), captureStandardOutput: false)
        let handle = process.output
        let buffer = output
        Thread {
            while true {
                let data = handle.availableData
                if data.isEmpty {
                    buffer.ended.withLock { $0 = true }
                    return
                }
                let started = buffer.text.withLock {
                    $0 += String(decoding: data, as: UTF8.self)
                    return $0.contains("cobalt started")
                }
                if closeOutputAfterStart, started {
                    try? handle.close()
                    buffer.ended.withLock { $0 = true }
                    return
                }
            }
        }.start()
        if let signalWhileStarting {
            let process = process
            Thread {
                Thread.sleep(forTimeInterval: 0.15)
                while process.isRunning, !buffer.text.withLock({ $0.contains("cobalt started") }) {
                    process.signal(signalWhileStarting)
                    Thread.sleep(forTimeInterval: 0.02)
                }
            }.start()
        }
        var endpoints: [String: String] = [:]
        var started = false
        let deadline = ContinuousClock.now + .seconds(120)  // the rule gate runs first: slow on a busy machine
        while !started, process.isRunning, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            let text = buffer.text.withLock { $0 }
            guard let line = text.split(separator: "\n").first(where: { $0.contains("cobalt started") }) else { continue }
            started = true
            // `ingest=tcp://…` in the text log, `"ingest":"tcp://…"` in the JSON one (`--log-format json`).
            for key in ["ingest", "alerts", "replay", "control", "metrics"] {
                if let range = line.range(of: "\(key)(=|\":\")(tcp|http)://127.0.0.1:[0-9]+", options: .regularExpression) {
                    let value = line[range].dropFirst(key.count)
                    endpoints[key] = String(value.drop { $0 == "=" || $0 == "\"" || $0 == ":" })
                }
            }
        }
        guard endpoints.count >= 4 else {
            process.signal(SIGTERM)
            throw ZMQError(code: ETIMEDOUT, operation: "cobalt serve did not start: \(buffer.text.withLock { $0 })")
        }
        ingest = endpoints["ingest"]!
        alerts = endpoints["alerts"]!
        replay = endpoints["replay"]!
        control = endpoints["control"]!
        metrics = endpoints["metrics"]
    }

    /// Starts the daemon on a thread of its own: the start polls for up to 120 s, and a test's Swift concurrency
    /// thread (two on two cores) must not be held meanwhile (several daemons starting at once could starve the
    /// suites with a 1-minute limit).
    static func start(
        database: String, rules: String = Repository.rules, arguments: [String] = [], signalWhileStarting: Int32? = nil,
        environment: [String: String] = [:], closeOutputAfterStart: Bool = false
    ) async throws -> DaemonProcess {
        try await onThread {
            try DaemonProcess(
                database: database, rules: rules, arguments: arguments, signalWhileStarting: signalWhileStarting, environment: environment,
                closeOutputAfterStart: closeOutputAfterStart)
        }
    }

    /// ``terminate()`` on a thread of its own (it waits for the process to exit).
    func stop() async -> Int32 { await onThread { self.terminate() } }

    /// ``kill()`` on a thread of its own.
    func killed() async { await onThread { self.kill() } }

    func kill() {
        process.signal(SIGKILL)
        process.waitUntilExit()
        waitForTheLastOutput()
    }

    /// SIGTERM, then waits; returns the exit status. ``log`` then holds everything the daemon wrote.
    func terminate() -> Int32 {
        process.signal(SIGTERM)
        let status = process.waitUntilExit()
        waitForTheLastOutput()
        return status
    }

    /// The process has exited; its output is read on another thread, which a busy machine may not have run yet
    /// (the log read right after an exit lacked "cobalt stopped" once in 40 tries).
    private func waitForTheLastOutput() {
        let deadline = ContinuousClock.now + .seconds(60)
        while !output.ended.withLock({ $0 }), ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
    }

    var log: String { output.text.withLock { $0 } }
}

/// `cobalt serve` of the real binary's arguments: the rules, the database, every endpoint on a free loopback port.
/// Flags added after these win (the last of a repeated option counts).
func serveOnLoopback(database: String, rules: String = Repository.rules) -> [String] {
    [
        "serve", "--rules", rules, "--db", database, "--ingest", "tcp://127.0.0.1:*", "--alerts", "tcp://127.0.0.1:*",
        "--replay", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--metrics", "http://127.0.0.1:*",
    ]
}

/// A stream of events over 60 patients in three clinics: each patient's B12 goes low, stays low (a repeat),
/// then recovers — so alerts fire, stay quiet, and resolve.
func crashStream() -> [(id: String, json: String)] {
    var events: [(String, String)] = []
    for round in 0..<3 {
        for p in 0..<60 {
            let value = round == 2 ? 95.0 : 18.0 + Double(round)
            let id = "crash-\(p)-\(round)"
            let time = "2026-11-\(10 + round)T09:00:00Z"
            events.append((id, deficientEvent(id: id, patient: "cp-\(p)", clinic: ["north", "south", "east"][p % 3], value: value, time: time)))
        }
    }
    return events
}

/// The alert log of every clinic, without the parts that differ between databases (epoch, wall-clock time).
func alertLog(replay: String) async throws -> [String] {
    var lines: [String] = []
    for clinic in ["north", "south", "east"] {
        for alert in try await replayAll(clinic: clinic, replay: replay) {
            var seq = ""
            if case .number(let n)? = alert["seq"] { seq = n.formatted }
            lines.append([clinic, seq, alert["patient"]?.stringValue ?? "", alert["rule"]?.stringValue ?? "",
                          alert["status"]?.stringValue ?? "", alert["summary"]?.stringValue ?? ""].joined(separator: "|"))
        }
    }
    return lines
}

/// Streams `payloads` to a daemon (16 in flight) and SIGKILLs it once `killAfter` of them have been acknowledged
/// (at once for 0); returns each acknowledged event's status by id. The sender stops 16 events past `killAfter`,
/// so the kill lands mid-stream however fast the daemon answers (a faster daemon acknowledged the rest of the
/// stream between two looks at the count, and the kill came after the end). The sender stops waiting for answers
/// once the daemon is killed, or after a minute without one (a stall); it used to stop after 1.5 s without an
/// answer, which a busy machine's daemon took with nothing wrong, and the kill then came before `killAfter`.
func stream(_ payloads: [[UInt8]], to daemon: DaemonProcess, killAfter: Int) async throws -> [String: String] {
    let replies = Mutex<[String: String]>([:])
    let finished = Mutex(false)
    let killed = Mutex(false)
    let ingest = daemon.ingest
    let streaming = Task {
        defer { finished.withLock { $0 = true } }
        try await onThread {
            let context = try ZMQContext()
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.connect(ingest)
            var next = 0
            var inFlight = 0
            while true {
                while inFlight < 16, next < min(payloads.count, killAfter + 16) {
                    try dealer.send([payloads[next]], dontWait: false)
                    next += 1
                    inFlight += 1
                }
                let silentSince = ContinuousClock.now
                while try !dealer.waitForInput(timeout: 100) {
                    if killed.withLock({ $0 }) || ContinuousClock.now - silentSince > .seconds(60) { return }  // gone, or stalled
                }
                guard let reply = try dealer.receive(),
                    case .object(let o)? = try? JSONValue.parse(Data(reply.frames.last ?? [])), let id = o["id"]?.stringValue
                else { return }  // the daemon is gone
                inFlight -= 1
                replies.withLock { $0[id] = o["status"]?.stringValue ?? "?" }
                if next == payloads.count, inFlight == 0 { return }
            }
        }
    }
    // If the stream ends first (the daemon died, or stalled past the sender's patience), kill anyway: the count
    // check after the call then fails, instead of the test waiting for its time limit.
    while replies.withLock({ $0.count }) < killAfter, !finished.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
    await daemon.killed()
    killed.withLock { $0 = true }
    try await streaming.value
    return replies.withLock { $0 }
}

@Suite(.timeLimit(.minutes(10)), .serialized) struct CrashTests {
    @Test func killNineMidStreamLosesNothingAndRepublishesNothing() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let events = crashStream()
        let payloads = events.map { Array($0.json.utf8) }

        // Reference: the same stream through an uninterrupted daemon.
        let reference = try await DaemonProcess.start(database: scratch.path + "/reference.db")
        let referenceOutcomes = try await onThread { try EventSender(endpoint: reference.ingest).send(payloads, context: try ZMQContext()) }
        #expect(referenceOutcomes.allSatisfy { $0.status == "accepted" })
        try await waitForEvaluated(events.count, control: reference.control)
        let expected = try await alertLog(replay: reference.replay)
        #expect(await reference.stop() == 0, "SIGTERM must stop the daemon cleanly:\n\(reference.log)")
        #expect(!expected.isEmpty)

        // The crash runs, on one database: each streams everything again (a sender retries with the same ids) and is
        // killed at a different point — after a quarter, half and three quarters of the stream has been
        // acknowledged, and once right after it starts (while it may still be evaluating what the run before left).
        let database = scratch.path + "/crash.db"
        var acknowledged: Set<String> = []
        for killAfter in [events.count / 4, events.count / 2, 0, events.count * 3 / 4] {
            let daemon = try await DaemonProcess.start(database: database)
            let replies = try await stream(payloads, to: daemon, killAfter: killAfter)
            for (id, status) in replies {
                #expect(status == "accepted" || status == "duplicate", "\(id): \(status)")
                if acknowledged.contains(id) {
                    #expect(status == "duplicate", "\(id) was acknowledged before a crash, so it must be stored")
                }
            }
            acknowledged.formUnion(replies.keys)
            #expect(replies.count >= killAfter && replies.count < events.count, "the kill must land mid-stream")
        }
        #expect(acknowledged.count >= events.count * 3 / 4)

        // The last restart runs to the end; everything acknowledged before is a duplicate now.
        let survivor = try await DaemonProcess.start(database: database)
        let outcomes = try await onThread { try EventSender(endpoint: survivor.ingest).send(payloads, context: try ZMQContext()) }
        for (event, outcome) in zip(events, outcomes) {
            #expect(outcome.status == "accepted" || outcome.status == "duplicate", "\(event.id): \(outcome.reply)")
            if acknowledged.contains(event.id) {
                #expect(outcome.status == "duplicate", "\(event.id) was acknowledged before a crash, so it must be stored")
            }
        }
        try await waitForEvaluated(0, control: survivor.control)
        let status = try await request(#"{"command": "status"}"#, to: survivor.control)
        guard case .object(let counts)? = status["counts"] else { Issue.record("no counts"); return }
        #expect(counts["journaled"] == .number(Double(events.count)) && counts["unevaluated"] == .number(0))

        // Nothing lost, nothing re-published as new, sequences continue without gaps: the log equals the reference.
        let log = try await alertLog(replay: survivor.replay)
        #expect(log == expected)
        #expect(await survivor.stop() == 0, "SIGTERM must stop the daemon cleanly:\n\(survivor.log)")
    }

    /// A SIGTERM sent as soon as the daemon says "cobalt started" stops it gracefully (exit 0, "cobalt stopped"): it
    /// was trapped only once the service group ran, and in between its default action killed the daemon (9 of 10
    /// tries in the load audit). Five tries, each signalled the moment the line is read.
    @Test func aSigtermRightAfterTheStartStopsTheDaemonGracefully() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        for attempt in 0..<5 {
            let child = try ChildProcess(
                Repository.cobaltBinary, serveOnLoopback(database: scratch.path + "/term-\(attempt).db"),
                environment: testEnvironment(), captureStandardOutput: false)
            var log = ""
            while !log.contains("cobalt started") {
                let data = child.output.availableData
                if data.isEmpty { break }
                log += String(decoding: data, as: UTF8.self)
            }
            child.signal(SIGTERM)
            log += String(decoding: child.output.readDataToEndOfFile(), as: UTF8.self)
            let status = child.waitUntilExit()
            #expect(status == 0 && log.contains("cobalt stopped"), "try \(attempt): exit \(status)\n\(log)")
            if status != 0 { break }
        }
    }

    /// A SIGHUP while the daemon starts (a `systemctl reload` during the rule gate) used to end it: the signal's
    /// default action stood until the reload service trapped it.
    @Test func aSighupWhileStartingDoesNotStopTheDaemon() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/hup.db", signalWhileStarting: SIGHUP)
        #expect(await daemon.stop() == 0, "\(daemon.log)")
    }

    /// The journal holds patient data: its files are the daemon user's alone, whatever umask it was started with
    /// (they were 0644 under the usual 022, readable by any local user).
    @Test func theDatabaseFilesAreReadableByTheirOwnerOnly() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let database = scratch.path + "/private.db"
        let daemon = try await DaemonProcess.start(database: database)
        defer { _ = daemon.terminate() }
        for file in [database, database + "-wal", database + "-shm"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: file)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(file)")
        }
    }

    @Test func sighupReloadsTheRules() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        let daemon = try await DaemonProcess.start(database: scratch.path + "/hup.db", rules: rules, arguments: try noWatcher(in: scratch))
        // An edit, so that the reload has something to take live (the same rule set again is left as it is).
        try changeFolateMaskingOwner(in: rules)
        let reloads = Task {
            try await onThread { () -> [String] in
                let sub = try ZMQSocket(context: try ZMQContext(), type: .sub)
                try sub.set(.subscribe, Array("ops/".utf8))
                try sub.connect(daemon.alerts)
                // The retained ops/start shows the subscription is in place (a fixed 0.3 s could be too short).
                guard try waitForRetainedStart(sub) else { return ["no retained ops/start"] }
                Foundation.kill(daemon.process.processIdentifier, SIGHUP)
                var seen: [String] = []
                while seen.isEmpty, try sub.waitForInput(timeout: 60_000), let message = try sub.receive() {
                    let topic = String(decoding: message.frames[0], as: UTF8.self)
                    if topic == "ops/ruleset" { seen.append(String(decoding: message.frames[1], as: UTF8.self)) }
                }
                return seen
            }
        }
        let events = try await reloads.value
        #expect(events.count == 1 && events[0].contains("\"outcome\":\"live\""), "\(events)\n\(daemon.log)")
        #expect(await daemon.stop() == 0)
        #expect(daemon.log.contains("rule set went live"))
    }

    /// A refused reload must say why where an operator looks — the log (journalctl) — not only on `ops/ruleset`,
    /// which is not retained: after a watcher or SIGHUP reload nobody gets the control reply. The log said only
    /// "rule set rejected; the running set keeps running errors=1". And a reload that goes live with warnings (a
    /// clinical review date passed, a retired rule set no longer loaded) logged none of them, where a start does.
    @Test func aReloadLogsWhyItWasRefusedAndItsWarnings() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        let daemon = try await DaemonProcess.start(database: scratch.path + "/hup-log.db", rules: rules, arguments: try noWatcher(in: scratch))
        func hupAndWait(for outcome: String) async throws {
            let seen = try await onThread { () -> Bool in
                let sub = try ZMQSocket(context: try ZMQContext(), type: .sub)
                try sub.set(.subscribe, Array("ops/ruleset".utf8))
                // Then ops/start, whose retained copy shows both subscriptions are in place (applied in order): a
                // refusal is not retained, so one published before the subscription was missed (a fixed 0.3 s).
                try sub.set(.subscribe, Array("ops/start".utf8))
                try sub.connect(daemon.alerts)
                guard try waitForRetainedStart(sub) else { return false }
                Foundation.kill(daemon.process.processIdentifier, SIGHUP)
                while try sub.waitForInput(timeout: 60_000), let message = try sub.receive() {
                    if String(decoding: message.frames[1], as: UTF8.self).contains("\"outcome\":\"\(outcome)\"") { return true }
                }
                return false
            }
            #expect(seen, "no ops/ruleset \(outcome)")
        }
        /// Whether the daemon's log says `text` within a minute (it is written after ops/ruleset is published, and
        /// read from the child's stderr by a thread of ours: 200 ms could be too short for both).
        func logSays(_ text: String) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(60)
            while !daemon.log.contains(text), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            return daemon.log.contains(text)
        }
        try edit(rules + "/rulesets/60-reactions.yaml", "      severity: critical", "      severty: critical")
        try await hupAndWait(for: "rejected")
        #expect(try await logSays("60-reactions.yaml:47:7"), "the log does not say why:\n\(daemon.log)")
        try edit(rules + "/rulesets/60-reactions.yaml", "      severty: critical", "      severity: critical")
        try edit(rules + "/rulesets/60-reactions.yaml", "review_by: 2027-11-01", "review_by: 2020-01-01")
        try await hupAndWait(for: "live")
        #expect(try await logSays("due for clinical review"), "the review warning is not logged:\n\(daemon.log)")
        #expect(await daemon.stop() == 0)
    }

    /// Under systemd (`Type=notify`), `cobalt serve` says READY=1 once its endpoints are bound and its services
    /// run, RELOADING=1 then READY=1 again around a reload (SIGHUP, as `systemctl reload` sends), and STOPPING=1
    /// as soon as SIGTERM starts the drain — each with a STATUS= line for `systemctl status`.
    @Test func tellsSystemdWhenReadyReloadingAndStopping() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let socket = try NotifySocket(scratch.path + "/notify")
        let daemon = try await DaemonProcess.start(database: scratch.path + "/notify.db", environment: ["NOTIFY_SOCKET": socket.name])
        let pid = daemon.process.processIdentifier
        let ready = try #require(socket.receive(until: "READY=1"), "no READY=1:\n\(daemon.log)")
        #expect(ready.count == 1 && ready[0].contains("MAINPID=\(pid)") && ready[0].contains("STATUS=serving; rules "), "\(ready)")
        Foundation.kill(pid, SIGHUP)
        let reload = try #require(socket.receive(until: "READY=1"), "no READY=1 after the reload:\n\(daemon.log)")
        #expect(reload.count == 2 && reload[0].hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(reload)")
        // The same rules are on disk: the reload leaves them as they are, and says so.
        #expect(reload.last?.contains("last reload unchanged") == true, "\(reload)")
        #expect(await daemon.stop() == 0, "\(daemon.log)")
        let stopping = try #require(socket.receive(until: "STOPPING=1", timeout: 2), "no STOPPING=1")
        #expect(stopping.count == 1, "\(stopping)")
    }

    /// `cobalt serve` exposes its metrics (Prometheus text) on the control socket: counts that match what was sent,
    /// alerts by clinic, severity and status, and the evaluation and commit histograms.
    @Test func metricsCountWhatHappened() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/metrics.db")
        let stream = crashStream()
        _ = try await send(stream.map(\.json) + ["{not json"], to: daemon.ingest)
        try await waitForEvaluated(stream.count, control: daemon.control)
        let log = try await alertLog(replay: daemon.replay)
        // Ingest counts a batch just after sending its answers: the last one (the malformed line) may be counted a
        // moment after the sender has its answer.
        var text = ""
        func value(_ series: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        try? await waitUntil("every event counted as received") {
            text = try await request(#"{"command": "metrics"}"#, to: daemon.control)["text"]?.stringValue ?? ""
            return value("cobalt_events_received_total") == Double(stream.count + 1)
        }
        #expect(value("cobalt_events_accepted_total") == Double(stream.count), "\(text)")
        #expect(value("cobalt_events_received_total") == Double(stream.count + 1))
        #expect(value("cobalt_events_rejected_total") == 1)
        #expect(value("cobalt_events_evaluated_total") == Double(stream.count))
        // Every alert in the log is counted once, under its clinic, severity and status.
        let published = text.split(separator: "\n").filter { $0.hasPrefix("cobalt_alerts_published_total{") }
        let total = published.compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        #expect(total == Double(log.count) && !log.isEmpty)
        #expect(published.contains { $0.contains(#"clinic="north""#) && $0.contains(#"status="resolved""#) && $0.contains(#"severity="warning""#) })
        #expect(text.contains("cobalt_evaluation_duration_seconds_bucket") && text.contains("cobalt_commit_batch_size"))
        #expect(value("cobalt_retained_suppressed_total") == 0)
        #expect(await daemon.stop() == 0)
    }

    /// A rule set in `testing` runs in shadow: its alerts are counted by rule (`cobalt_shadow_alerts_total`), once
    /// per event that fires them, and never published.
    @Test func shadowAlertsAreCountedByRule() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        try addShadowCandidate(to: rules)
        // Five patients below the candidate's threshold, two above it: five shadow alerts.
        let events = (0..<7).map { deficientEvent(id: "shadow-\($0)", patient: "ps-\($0)", value: $0 < 5 ? 18 : 95) }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/shadow.db", rules: rules)
        _ = try await send(events, to: daemon.ingest)
        try await waitForEvaluated(events.count, control: daemon.control)
        let text = try await request(#"{"command": "metrics"}"#, to: daemon.control)["text"]?.stringValue ?? ""
        let series = text.split(separator: "\n").filter { $0.hasPrefix("cobalt_shadow_alerts_total{") }
        #expect(series.count == 1 && series[0].contains(#"rule="candidate.low-active""#), "\(series)")
        #expect(series.first.flatMap { Double($0.split(separator: " ").last ?? "") } == 5)
        // Counters whose values are known in advance show from the start, at zero (no reload happened here).
        for outcome in ["live", "refused", "unchanged"] {
            #expect(text.contains("cobalt_reloads_total{outcome=\"\(outcome)\"} 0"), "\(text.prefix(3_000))")
        }
        for endpoint in ["ingest", "replay", "control"] {
            for reason in ["peer_not_reading", "peer_gone"] {
                #expect(text.split(separator: "\n").contains { $0.hasPrefix("cobalt_replies_undelivered_total{") && $0.contains(#"endpoint="\#(endpoint)""#) && $0.contains(#"reason="\#(reason)""#) && $0.hasSuffix(" 0") },
                    "no cobalt_replies_undelivered_total for \(endpoint), \(reason)")
            }
        }
        // The first start's re-evaluation had no open alert to re-evaluate: nothing waited, nothing is recorded.
        #expect(!text.contains("cobalt_reload_evaluation_pause_seconds_count 1"), "\(text.prefix(3_000))")
        let log = try await alertLog(replay: daemon.replay)
        #expect(!log.isEmpty && !log.contains { $0.contains("candidate.low-active") })
        #expect(await daemon.stop() == 0)
    }

    /// Chunks that change no alert leave the evaluation watermark behind (no commit, no fsync). After `kill -9`
    /// those events are evaluated again at start — and, evaluation being deterministic, change nothing again.
    @Test func eventsThatChangedNothingAreSafelyEvaluatedAgainAfterACrash() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let database = scratch.path + "/deferred.db"
        let first = try await DaemonProcess.start(database: database)
        let quiet = (0..<30).map { deficientEvent(id: "q-\($0)", patient: "qp-\($0)", value: 95) }  // not deficient: no alert
        _ = try await send([deficientEvent(id: "d-1", patient: "dp-1")], to: first.ingest)
        try await waitForEvaluated(1, control: first.control)
        _ = try await send(quiet, to: first.ingest)
        try await waitForEvaluated(31, control: first.control)
        // The watermark is deferred for 1 s at most: when a busy machine's chunks of the 30 took longer, the last
        // chunk committed it. One quiet event after that commit is always deferred.
        var sent = 31
        while try await SQLiteStore(path: database).evaluatedThrough() == Int64(sent), sent < 34 {
            sent += 1
            _ = try await send([deficientEvent(id: "q-more-\(sent)", patient: "qp-more-\(sent)", value: 95)], to: first.ingest)
            try await waitForEvaluated(sent, control: first.control)
        }
        let before = try await alertLog(replay: first.replay)
        await first.killed()
        let (through, journaled) = try await { () async throws -> (Int64, Int64) in
            let store = try SQLiteStore(path: database)
            return (try await store.evaluatedThrough(), try await store.lastJournalSequence())
        }()
        #expect(through >= 1 && through < journaled, "watermark \(through) of \(journaled): nothing was deferred")
        let second = try await DaemonProcess.start(database: database)
        // Exactly the events after the stored watermark are evaluated again, no more, no fewer.
        try await waitForEvaluated(Int(journaled - through), control: second.control)
        let status = try await request(#"{"command": "status"}"#, to: second.control)
        let evaluated: JSONValue? = if case .object(let counts)? = status["counts"] { counts["evaluated"] } else { nil }
        #expect(evaluated == .number(Double(journaled - through)))
        #expect(try await alertLog(replay: second.replay) == before && !before.isEmpty)
        #expect(await second.stop() == 0, "\(second.log)")
        let store = try SQLiteStore(path: database)
        #expect(try await store.evaluatedThrough() == store.lastJournalSequence())
    }
}

/// Waits (up to a minute) for the retained `ops/start` on a SUB socket subscribed to it: the sign that the
/// subscriptions made before it on that socket are applied. Other messages before it are dropped.
func waitForRetainedStart(_ sub: ZMQSocket) throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
        guard try sub.waitForInput(timeout: 1_000), let message = try sub.receive() else { continue }
        if String(decoding: message.frames[0], as: UTF8.self) == "ops/start" { return true }
    }
    return false
}

/// `--config` with the rules watcher off, for tests of SIGHUP: the watcher (1 s looks, 2 s settle) would reload the
/// same edits, and on a busy machine could do so first, so that SIGHUP found the set unchanged (and published
/// nothing), or the test saw the watcher's reload instead of SIGHUP's.
func noWatcher(in scratch: ScratchDirectory) throws -> [String] {
    let file = scratch.path + "/no-watcher.yaml"
    try "watch_rules: false\n".write(toFile: file, atomically: true, encoding: .utf8)
    return ["--config", file]
}
