import CobaltClient
import CobaltStore
@testable import CobaltDaemon
import CobaltTestSupport
import Foundation
import RuleEngine
import Synchronization
import Testing
import ZeroMQ

/// A copy of the bundled rules in a scratch directory, to edit.
func copyRules(into scratch: ScratchDirectory) throws -> String {
    let rules = scratch.path + "/rules"
    try FileManager.default.copyItem(atPath: Repository.rules, toPath: rules)
    return rules
}

/// Runs `body` with a copy of the bundled rules in a scratch directory and a configuration that uses it without
/// the watcher (the test reloads); the directory is removed afterwards.
func withRulesCopy<T: Sendable>(_ body: (DaemonConfiguration, String) async throws -> T) async throws -> T {
    let scratch = try ScratchDirectory()
    defer { scratch.remove() }
    let rules = try copyRules(into: scratch)
    var configuration = testConfiguration(directory: scratch.path, rules: rules)
    configuration.watchRules = false
    return try await body(configuration, rules)
}

/// Adds a rule set in `testing` to a rules directory: `candidate.low-active` fires (in shadow) when the latest
/// active B12 is below 30 pmol/L.
func addShadowCandidate(to rules: String) throws {
    try """
        ruleset:
          id: candidate.note
          version: "0.1"
          owner: Test owner
          status: testing
          review_by: 2027-11-01
          citations: {SRC: Test source}
        rules:
          - id: candidate.low-active
            when: latest(b12.active) < 30 pmol/L
            citations: [SRC]
            alert: {category: note, severity: info, summary: candidate, detail: "active B12 {{latest(b12.active)}}", recommendation: a candidate rule under evaluation}
        """.write(toFile: rules + "/rulesets/95-candidate.yaml", atomically: true, encoding: .utf8)
}

/// A change of wording in the bundled rules that changes an open deficiency alert (`updated` after a reload).
func rewordDeficiencyRecommendation(in rules: String) throws {
    try edit(rules + "/rulesets/10-deficiency.yaml", "Start treatment per the route recommendation;", "Start B12 treatment per the route recommendation;")
}

/// A change to the bundled rules that changes the rule set's hash and no alert.
func changeFolateMaskingOwner(in rules: String) throws {
    try edit(rules + "/rulesets/30-folate-masking.yaml", "owner: Maternity haematology clinical lead", "owner: Obstetric haematology lead")
}

/// The clinic's alerts beyond the first `seen`, once there are any (polled every 100 ms for up to `limit`: a retry
/// after a failure comes 0.5 s, 1, 2, 4 s… later, and a busy machine is slower still; 4 s of polls was too short).
func alertsAdded(after seen: Int, clinic: String, replay: String, within limit: Duration = .seconds(60)) async throws -> [JSONObject] {
    var added: [JSONObject] = []
    let deadline = ContinuousClock.now + limit
    while added.isEmpty, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(100))
        added = Array(try await replayAll(clinic: clinic, replay: replay).dropFirst(seen))
    }
    return added
}

func edit(_ file: String, _ old: String, _ new: String) throws {
    let text = try String(contentsOfFile: file, encoding: .utf8)
    precondition(text.contains(old), "\(old) not in \(file)")
    try text.replacingOccurrences(of: old, with: new).write(toFile: file, atomically: true, encoding: .utf8)
}

/// A test configuration whose watcher looks at the rules every 100 ms and reloads after 300 ms of quiet.
func watchingConfiguration(_ scratch: ScratchDirectory, rules: String) -> DaemonConfiguration {
    var configuration = testConfiguration(directory: scratch.path, rules: rules)
    configuration.watchIntervalMilliseconds = 100
    configuration.watchSettleMilliseconds = 300
    return configuration
}

/// The running rule-set hash once it differs from `original` (the watcher has reloaded), or `original` after 60 s
/// (a reload checks, compiles and tests the rules, which takes seconds on a busy machine: 6 s was too short).
func hashAfterWatcherReload(control: String, from original: String) async throws -> String {
    var live = original
    let deadline = ContinuousClock.now + .seconds(60)
    while live == original, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(100))
        live = try await runningHash(control: control)
    }
    return live
}

/// `status`'s `last_reload` (nil before the first reload since the start).
func lastReload(control: String) async throws -> JSONObject? {
    guard case .object(let last)? = try await request(#"{"command": "status"}"#, to: control)["last_reload"] else { return nil }
    return last
}

/// Returns once the watcher has taken its first look at the rules and acted on a change: it takes its first
/// fingerprint when its service starts, which on a busy machine can be after a test's first edit (the edit is then
/// part of what it considers loaded, and never reloaded). A new file beside the rules (`PROBE.txt`, in `directory`)
/// brings a reload that finds the running set unchanged; `status` shows it. Only for a daemon not reloaded yet.
func waitForTheWatcher(toSee directory: String, control: String) async throws {
    #expect(try await lastReload(control: control) == nil, "a reload before the watcher's first")
    try "probe".write(toFile: directory + "/PROBE.txt", atomically: true, encoding: .utf8)
    try await waitUntil("the watcher's reload after a new file beside the rules") { try await lastReload(control: control) != nil }
    let last = try await lastReload(control: control)
    #expect(last?["outcome"] == .string("unchanged"), "\(last ?? [:])")
}

/// Reloads the rules watcher has done, from the audit trail (written to the store twice a second). Read in this
/// process: every child process started from the tests is another chance of Foundation's `Process.run` crash
/// (swift-corelibs-foundation #5472).
func watcherReloads(database: String) async throws -> Int {
    try await SQLiteStore(path: database).auditTrail(limit: 1_000).count { $0.actor == "watcher" && $0.action.hasPrefix("reload.") }
}

func runningHash(control: String) async throws -> String {
    let status = try await request(#"{"command": "status"}"#, to: control)
    guard case .object(let ruleset)? = status["ruleset"], let hash = ruleset["hash"]?.stringValue else { return "" }
    return hash
}

/// A SUB socket on a thread of its own, subscribed to `topic`, collecting `[topic, body]` messages until stopped.
final class Listener: Sendable {
    private final class Shared: Sendable {
        let received = Mutex<[(topic: String, body: JSONObject)]>([])
        let stopping = Atomic<Bool>(false)
    }

    private let shared = Shared()
    private let reading: Task<Void, any Error>

    /// Returns once the subscription has had time to reach the daemon.
    init(_ endpoint: String, topic: String) async throws {
        let shared = shared
        reading = Task {
            try await onThread {
                let sub = try ZMQSocket(context: try ZMQContext(), type: .sub)
                try sub.set(.subscribe, Array(topic.utf8))
                try sub.connect(endpoint)
                while !shared.stopping.load(ordering: .acquiring) {
                    guard try sub.waitForInput(timeout: 50), let message = try sub.receive(), message.frames.count == 2 else { continue }
                    let body = try object(String(decoding: message.frames[1], as: UTF8.self))
                    shared.received.withLock { $0.append((String(decoding: message.frames[0], as: UTF8.self), body)) }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(300))
    }

    /// What arrived so far, as `topic type outcome retained` lines.
    var lines: [String] {
        shared.received.withLock { messages in
            messages.map { m in
                let retained = m.body["retained"] == .bool(true) ? " retained" : ""
                return "\(m.topic) \(m.body["type"]?.stringValue ?? "?") \(m.body["outcome"]?.stringValue ?? "-")\(retained)"
            }
        }
    }

    /// The bodies that arrived so far.
    var bodies: [JSONObject] { shared.received.withLock { $0.map(\.body) } }

    /// ``lines`` once at least `count` have arrived, or after 60 s (a loaded machine delivers late; the caller's
    /// expectation then says what was missing).
    func lines(count: Int) async -> [String] {
        let deadline = ContinuousClock.now + .seconds(60)
        while shared.received.withLock({ $0.count }) < count, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return lines
    }

    func stop() async throws {
        shared.stopping.store(true, ordering: .releasing)
        try await reading.value
    }
}

/// Heartbeats go to every clinic someone subscribes to, not only clinics that have had alerts: a subscriber can
/// then tell a quiet clinic from a subscription that does not work (and subscribe again, see ``Subscriber``).
@Suite(.timeLimit(.minutes(10))) struct HeartbeatTests {
    @Test func aSubscribedClinicWithoutAlertsGetsHeartbeats() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let listener = try await Listener(daemon.endpoints.alerts, topic: "clinic/quiet/")
            var beats: [JSONObject] = []
            let deadline = ContinuousClock.now + .seconds(60)
            while beats.isEmpty, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                beats = listener.bodies.filter { $0["type"] == .string("heartbeat") }
            }
            try await listener.stop()
            #expect(beats.first?["clinic"] == .string("quiet") && beats.first?["last"] == .number(0), "\(beats)")
            let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
            #expect(status["clinics"] == .object(JSONObject([:])), "a clinic without alerts has no last seq: \(status["clinics"] ?? .null)")
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct ReloadTests {
    /// `ops/start` goes out before anyone can have subscribed. The events that describe the daemon's state — its
    /// start and the rule set that last went live — are sent again, marked `retained`, for each later
    /// subscription that covers them (and so also to those already listening); refusals and alerts are not.
    @Test func laterSubscribersGetTheRetainedOperationalState() async throws {
        try await withRulesCopy { configuration, rules in
            try await withRunningDaemon(configuration) { daemon in
                let e = daemon.endpoints
                let first = try await Listener(e.alerts, topic: "ops/")
                let clinic = try await Listener(e.alerts, topic: "clinic/north/")
                #expect(await first.lines(count: 1) == ["ops/start start - retained"])
                let start = first.bodies.first ?? [:]
                let status = try await request(#"{"command": "status"}"#, to: e.control)
                #expect(start["epoch"] != nil && start["epoch"] == status["epoch"] && start["version"] == status["version"])

                let file = rules + "/rulesets/30-folate-masking.yaml"
                try edit(file, "owner: Maternity haematology clinical lead", "owner: Obstetric haematology lead")
                #expect(try await request(#"{"command": "reload"}"#, to: e.control)["status"] == .string("ok"))
                let live = try await runningHash(control: e.control)
                try edit(file, "daily_dose(folic_acid) > $folic_acid.masking_above", "daily_dose(folic_acd) > $folic_acid.masking_above")
                #expect(try await request(#"{"command": "reload"}"#, to: e.control)["status"] == .string("error"))
                try await Task.sleep(for: .milliseconds(200))

                let late = try await Listener(e.alerts, topic: "ops/ruleset")
                #expect(await late.lines(count: 1) == ["ops/ruleset ruleset live retained"])
                #expect(late.bodies.first?["hash"] == .string(live))
                let everything = try await Listener(e.alerts, topic: "ops/")
                #expect(await everything.lines(count: 2) == ["ops/start start - retained", "ops/ruleset ruleset live retained"])
                // Those listening already get each copy too, marked as such.
                #expect(await late.lines(count: 2) == ["ops/ruleset ruleset live retained", "ops/ruleset ruleset live retained"])
                #expect(await first.lines(count: 6) == [
                    "ops/start start - retained", "ops/ruleset ruleset live", "ops/ruleset ruleset rejected",
                    "ops/ruleset ruleset live retained", "ops/start start - retained", "ops/ruleset ruleset live retained",
                ])
                // Nothing retained goes to a clinic's subscriber: only its heartbeats (sent to subscribed clinics).
                #expect(clinic.lines.allSatisfy { $0 == "clinic/north/heartbeat heartbeat -" }, "\(clinic.lines)")

                // A client that subscribes over and over gets copies sent at a bounded rate, not one per subscription:
                // at most the burst, and what the rate adds for the time the subscriptions took to arrive (bounded by
                // the time from the first to the count, however long a busy machine took: a fixed 30 after a fixed
                // 0.3 s could be missed either way).
                let before = first.lines.count
                let started = ContinuousClock.now
                let copies = try await onThread { () -> Int in
                    let sub = try ZMQSocket(context: try ZMQContext(), type: .sub)
                    try sub.connect(e.alerts)
                    for _ in 0..<100 {
                        try sub.set(.subscribe, Array("ops/start".utf8))
                        try sub.set(.unsubscribe, Array("ops/start".utf8))
                    }
                    // Open until the copies have come (the subscriptions still queued would be lost with the socket).
                    let deadline = ContinuousClock.now + .seconds(60)
                    while first.lines.count - before < 10, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
                    Thread.sleep(forTimeInterval: 0.3)
                    return first.lines.count - before
                }
                let allowed = RetainedOps.burst + RetainedOps.perSecond * (ContinuousClock.now - started).timeInterval
                #expect(copies >= 10 && Double(copies) <= allowed, "\(copies) copies for 100 subscriptions (at most \(allowed))")
                for listener in [first, clinic, late, everything] { try await listener.stop() }
            }
        }
    }

    @Test func openAlertsAreReevaluatedWhenTheRulesChange() async throws {
        try await withRulesCopy { configuration, rules in
            try await withRunningDaemon(configuration) { daemon in
                _ = try await send([deficientEvent(id: "re-1", patient: "p-1")], to: daemon.endpoints.ingest)
                try await waitForEvaluated(1, control: daemon.endpoints.control)
                let before = try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
                try rewordDeficiencyRecommendation(in: rules)
                let reload = try await request(#"{"command": "reload"}"#, to: daemon.endpoints.control)
                #expect(reload["status"] == .string("ok"), "\(reload)")
                // No new event: the changed alert is published as updated by the re-evaluation itself.
                let after = try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
                let added = after.dropFirst(before.count)
                #expect(added.count == 1)
                #expect(added.first?["status"] == .string("updated") && added.first?["rule"] == .string("b12.deficiency-alert"))
                #expect(added.first?["recommendation"]?.stringValue?.hasPrefix("Start B12 treatment") == true)
                guard case .object(let ruleset)? = added.first?["ruleset"] else { Issue.record("no ruleset"); return }
                #expect(ruleset["hash"]?.stringValue == reload["ruleset"].flatMap { value -> String? in
                    if case .object(let r) = value { return r["hash"]?.stringValue }
                    return nil
                })
            }
        }
    }

    /// A reload re-evaluates every patient with open alerts — here more than the store is asked for at a time
    /// and many times as many as the patient cache holds — and the cache is still within its bound afterwards
    /// (re-evaluation used to keep every patient it loaded). The patients are read a page at a time, so memory
    /// does not grow with the number of patients with open alerts (it used to read them all at once).
    @Test func aReloadReevaluatesEveryPatientWithOpenAlertsWithinTheCacheBound() async throws {
        try await withRulesCopy { configuration, rules in
            var configuration = configuration
            configuration.patientCache = 4
            try await withRunningDaemon(configuration) { daemon in
                let patients = EvaluationPipeline.reevaluationPage + 2
                let events = (0..<patients).map { deficientEvent(id: "rc-\($0)", patient: "rc-p\($0)") }
                #expect(try await send(events, to: daemon.endpoints.ingest).allSatisfy { $0.status == "accepted" })
                try await waitForEvaluated(patients, control: daemon.endpoints.control)
                let before = try await replayAll(clinic: "north", replay: daemon.endpoints.replay, pageSize: 1_000)
                try rewordDeficiencyRecommendation(in: rules)
                let reload = try await request(#"{"command": "reload"}"#, to: daemon.endpoints.control)
                #expect(reload["status"] == .string("ok"), "\(reload)")
                let added = try await replayAll(clinic: "north", replay: daemon.endpoints.replay, pageSize: 1_000).dropFirst(before.count)
                #expect(added.count == patients && added.allSatisfy { $0["status"] == .string("updated") }, "\(added.count)")
                #expect(Set(added.compactMap { $0["patient"]?.stringValue }).count == patients)
                let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
                guard case .number(let cached)? = status["cached_patients"] else { Issue.record("no cached_patients: \(status)"); return }
                #expect(cached <= 4, "\(cached) patients cached with limits.patient_cache 4")
            }
        }
    }

    /// A re-evaluation that fails part-way — here a later patient cannot be loaded, because her open alert's
    /// published row was deleted behind the daemon's back — commits nothing, and forgets what it changed in memory
    /// for the patients before her: the next event of an earlier patient is judged against her stored alerts, so
    /// the change the failed re-evaluation found is published then (it used to be kept in memory only, so it was
    /// never published).
    @Test func aFailedReevaluationForgetsWhatItDidNotCommit() async throws {
        try await withRulesCopy { configuration, rules in
            let database = configuration.database
            let before = try await withRunningDaemon(configuration) { daemon in
                let events = [deficientEvent(id: "fr-a", patient: "fr-a"), deficientEvent(id: "fr-b", patient: "fr-b")]
                #expect(try await send(events, to: daemon.endpoints.ingest).allSatisfy { $0.status == "accepted" })
                try await waitForEvaluated(2, control: daemon.endpoints.control)
                return try await replayAll(clinic: "north", replay: daemon.endpoints.replay, pageSize: 100)
            }
            #expect(!before.isEmpty && before.allSatisfy { $0["status"] == .string("firing") })
            // Restarted, the cache is empty: the re-evaluation loads fr-a, then fails to load fr-b.
            try await runSQL("""
                DELETE FROM alert_log WHERE (clinic, seq) IN (SELECT clinic, log_seq FROM alert_state WHERE patient = 'fr-b');
                """, database: database)
            try await withRunningDaemon(configuration) { daemon in
                try rewordDeficiencyRecommendation(in: rules)
                _ = try await request(#"{"command": "reload"}"#, to: daemon.endpoints.control)
                // fr-a's next result, the same as before: what differs now is only the reloaded text.
                let again = deficientEvent(id: "fr-a2", patient: "fr-a")
                #expect(try await send([again], to: daemon.endpoints.ingest).map(\.status) == ["accepted"])
                try await waitForEvaluated(1, control: daemon.endpoints.control)  // counted since this start
                let alerts = try await replayAll(clinic: "north", replay: daemon.endpoints.replay, pageSize: 100)
                let updated = alerts.filter { $0["status"] == .string("updated") && $0["rule"] == .string("b12.deficiency-alert") }
                #expect(updated.count == 1, "\(alerts.map { "\($0["status"] ?? .null) \($0["rule"] ?? .null)" })")
                #expect(updated.first?["recommendation"]?.stringValue?.hasPrefix("Start B12 treatment") == true)
            }
        }
    }

    /// A re-evaluation that fails (the alert log refuses writes) is reported in the reload's reply and tried again
    /// on its own: once the store works, the changed alert is published without waiting for the patient's next
    /// event (it used to wait for it, and the reply said nothing).
    @Test func aFailedReevaluationIsReportedAndTriedAgain() async throws {
        try await withRulesCopy { configuration, rules in
            try await withRunningDaemon(configuration) { daemon in
                _ = try await send([deficientEvent(id: "rt-1", patient: "p-1")], to: daemon.endpoints.ingest)
                try await waitForEvaluated(1, control: daemon.endpoints.control)
                let before = try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
                try await runSQL(injectedFailure("INSERT", on: "alert_log"), database: configuration.database)
                try rewordDeficiencyRecommendation(in: rules)
                let reload = try await request(#"{"command": "reload"}"#, to: daemon.endpoints.control)
                #expect(reload["status"] == .string("ok"), "\(reload)")
                #expect(reload["reevaluation_error"]?.stringValue?.contains("injected failure") == true, "\(reload)")
                try await runSQL(injectedFailureOff, database: configuration.database)
                let added = try await alertsAdded(after: before.count, clinic: "north", replay: daemon.endpoints.replay)
                #expect(added.map { $0["status"] } == [.string("updated")], "\(added)")
                #expect(added.first?["recommendation"]?.stringValue?.hasPrefix("Start B12 treatment") == true)
            }
        }
    }

    /// Rules changed while the daemon was stopped: at start, open alerts are re-evaluated under the new rules
    /// (they used to keep the old rules' conclusions until each patient's next event); a start on the same rules
    /// re-evaluates nothing.
    @Test func aStartOnChangedRulesReevaluatesOpenAlerts() async throws {
        try await withRulesCopy { configuration, rules in
            let before = try await withRunningDaemon(configuration) { daemon in
                _ = try await send([deficientEvent(id: "rs-1", patient: "p-1")], to: daemon.endpoints.ingest)
                try await waitForEvaluated(1, control: daemon.endpoints.control)
                return try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
            }
            #expect(!before.isEmpty)
            try rewordDeficiencyRecommendation(in: rules)
            for restart in 0..<2 {
                try await withRunningDaemon(configuration) { daemon in
                    let added = try await alertsAdded(after: before.count, clinic: "north", replay: daemon.endpoints.replay)
                    #expect(added.map { $0["status"] } == [.string("updated")], "start \(restart): \(added)")
                }
            }
        }
    }

    /// A re-evaluation under new rules that never finishes (here its record is refused; a `kill -9` or a stop
    /// part-way leaves the same state) has already changed open alerts under the new rules. A start on the old
    /// rules (a rollback) must re-evaluate them: the store used to still record the old set as the one open alerts
    /// agree with, so nothing was re-evaluated and alerts kept the new set's conclusions (found by killing the
    /// daemon at random moments after reloads).
    @Test func aRollbackAfterAnUnfinishedReevaluationReevaluatesOpenAlerts() async throws {
        try await withRulesCopy { configuration, rules in
            let deficiency = rules + "/rulesets/10-deficiency.yaml"
            let original = try String(contentsOfFile: deficiency, encoding: .utf8)
            let seen = try await withRunningDaemon(configuration) { daemon in
                _ = try await send([deficientEvent(id: "rb-1", patient: "p-1")], to: daemon.endpoints.ingest)
                try await waitForEvaluated(1, control: daemon.endpoints.control)
                try await runSQL(
                    injectedFailure("INSERT", on: "meta", where: "NEW.key = 'reevaluated_ruleset'"), database: configuration.database)
                try rewordDeficiencyRecommendation(in: rules)
                let reload = try await request(#"{"command": "reload"}"#, to: daemon.endpoints.control)
                #expect(reload["status"] == .string("ok"), "\(reload)")
                let alerts = try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
                #expect(alerts.last?["recommendation"]?.stringValue?.hasPrefix("Start B12 treatment") == true)
                return alerts.count
            }
            try await runSQL(injectedFailureOff, database: configuration.database)
            try original.write(toFile: deficiency, atomically: true, encoding: .utf8)
            try await withRunningDaemon(configuration) { daemon in
                let added = try await alertsAdded(after: seen, clinic: "north", replay: daemon.endpoints.replay)
                #expect(added.map { $0["status"] } == [.string("updated")], "\(added)")
                #expect(added.first?["recommendation"]?.stringValue?.hasPrefix("Start treatment per the route") == true)
            }
        }
    }

    /// What lets a re-evaluation record its rule set: its generation still running and no swap announced. A reload
    /// announces its swap before it forgets the store's record, so a re-evaluation finishing between the two cannot
    /// record the old set after the forgetting (and a rollback start would then re-evaluate nothing).
    @Test func aGenerationStopsBeingCurrentWhenASwapIsAnnouncedOrMade() throws {
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        let rules = RulesHolder(bundle)
        let first = rules.versioned.generation
        #expect(rules.isCurrent(first))
        rules.beginChange()
        #expect(!rules.isCurrent(first), "announced")
        rules.cancelChange()
        #expect(rules.isCurrent(first), "called off")
        rules.beginChange()
        rules.swap(bundle)  // even the same rules: what ran under the old generation is not what runs now
        #expect(!rules.isCurrent(first))
        let second = rules.versioned.generation
        #expect(second != first)
        #expect(rules.isCurrent(second))
    }

    /// A reload of the rule set already running changes nothing: no swap, no re-evaluation, no history row and no
    /// `ops/ruleset` message — whether an operator asks twice, or the watcher sees a file beside the rules change.
    /// A compare-and-swap that is not a hash is refused (it used to count as no expectation at all).
    @Test func theSameRuleSetIsNotAppliedTwiceAndAnExpectThatIsNoHashIsRefused() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        let configuration = watchingConfiguration(scratch, rules: rules)
        try await withRunningDaemon(configuration) { daemon in
            let control = daemon.endpoints.control
            let original = try await runningHash(control: control)
            for expect in ["12345", "null", #""""#, #"["\#(original)"]"#] {
                let reply = try await request(#"{"command": "reload", "expect": \#(expect)}"#, to: control)
                #expect(reply["status"] == .string("error") && reply["reason"]?.stringValue?.contains("'expect'") == true, "\(expect): \(reply)")
            }
            // Listening on ops/ before anything goes live: its retained ops/start shows the subscription is in place
            // (a fixed 300 ms could be too short for it on a busy machine, and the one `live` was missed).
            let ops = try await Listener(daemon.endpoints.alerts, topic: "ops/")
            #expect(await ops.lines(count: 1) == ["ops/start start - retained"])
            let database = configuration.database
            // A file beside the rules changes: the watcher reloads the same set (and has now looked at the rules).
            try await waitForTheWatcher(toSee: rules, control: control)
            try await waitUntil("the watcher's first reload in the audit trail") { try await watcherReloads(database: database) >= 1 }
            try changeFolateMaskingOwner(in: rules)
            // The watcher reloads the same edit after 300 ms of quiet: whichever of it and this request runs first
            // takes the edit live, and the other finds it running (on a loaded machine, the watcher can be first).
            let live = try await request(#"{"command": "reload"}"#, to: control)
            #expect(live["status"] == .string("ok"), "\(live)")
            let again = try await request(#"{"command": "reload"}"#, to: control)
            #expect(again["status"] == .string("ok") && again["unchanged"] == .bool(true), "\(again)")
            // The watcher's reload of the edit, then of another change beside the rules: waited for in the audit
            // trail, not assumed done after a second.
            try await waitUntil("the watcher's reload of the edit") { try await watcherReloads(database: database) >= 2 }
            try "notes".write(toFile: rules + "/NOTES.txt", atomically: true, encoding: .utf8)
            try await waitUntil("the watcher's reload after NOTES.txt") { try await watcherReloads(database: database) >= 3 }
            let published = await ops.lines(count: 2).filter { $0 == "ops/ruleset ruleset live" }
            try await Task.sleep(for: .milliseconds(300))  // a second one (a regression) would have been sent before its audit entry
            #expect(published.count == 1 && ops.lines.filter { $0 == "ops/ruleset ruleset live" }.count == 1, "\(ops.lines)")
            try await ops.stop()
            let rows = try await runPythonSQL("SELECT count(*) FROM rulesets", database: configuration.database)
            #expect(rows == "2", "rule-set history rows: \(rows)")  // the start and the edit
        }
    }

    /// After a restart, the pipeline knows which events it evaluated before: a reload's re-evaluation sees each
    /// patient's whole journal, so a changed text is `updated` and nothing open is `resolved` for lack of data.
    @Test func aReloadAfterARestartReevaluatesWithTheWholeJournal() async throws {
        try await withRulesCopy { configuration, rules in
            let before = try await withRunningDaemon(configuration) { daemon in
                _ = try await send([deficientEvent(id: "rr-1", patient: "p-1")], to: daemon.endpoints.ingest)
                try await waitForEvaluated(1, control: daemon.endpoints.control)
                return try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
            }
            #expect(before.count >= 2 && before.allSatisfy { $0["status"] == .string("firing") })
            try await withRunningDaemon(configuration) { daemon in
                try rewordDeficiencyRecommendation(in: rules)
                let reload = try await request(#"{"command": "reload"}"#, to: daemon.endpoints.control)
                #expect(reload["status"] == .string("ok"), "\(reload)")
                let added = try await replayAll(clinic: "north", replay: daemon.endpoints.replay).dropFirst(before.count)
                #expect(added.map { $0["status"] } == [.string("updated")], "\(added)")
                #expect(added.first?["rule"] == .string("b12.deficiency-alert"))
            }
        }
    }

    /// Reloads run one at a time, so the compare-and-swap holds across concurrent triggers: of several reloads that
    /// all expect the hash running when they were sent, exactly one goes live; the others are refused as stale.
    @Test func concurrentReloadsSwapOnceAndStatusDoesNotWaitForThem() async throws {
        try await withRulesCopy { configuration, rules in
            try await withRunningDaemon(configuration) { daemon in
                let control = daemon.endpoints.control
                let original = try await runningHash(control: control)
                try changeFolateMaskingOwner(in: rules)
                let statuses = try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            let reply = try await request(#"{"command": "reload", "expect": "\#(original)"}"#, to: control)
                            return reply["status"]?.stringValue ?? "\(reply)"
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses.sorted() == ["error", "error", "error", "ok"], "\(statuses)")
                #expect(try await runningHash(control: control) != original)
                // Control requests are answered concurrently: a status is not kept waiting behind reloads. Twelve
                // reloads queue (they run one at a time, each checking, compiling and testing the rules), so a
                // status sent after them comes back before the last of them — not after all, as when requests
                // were answered one at a time. (One reload was not enough: on a busy machine it could finish
                // before the status request had even connected; six, about 1 s of queue, were once outlasted by a
                // status delayed 1 s by the other suites running beside it in CI.)
                let reloads = Task {
                    try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
                        for _ in 0..<12 {
                            group.addTask {
                                _ = try await request(#"{"command": "reload"}"#, to: control)
                                return .now
                            }
                        }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                }
                try await Task.sleep(for: .milliseconds(20))
                _ = try await request(#"{"command": "status"}"#, to: control)
                let statusAnswered = ContinuousClock.now
                let reloadsAnswered = try await reloads.value
                #expect(reloadsAnswered.count == 12 && statusAnswered < reloadsAnswered.max()!,
                    "status answered \(reloadsAnswered.map { statusAnswered - $0 }) after the reloads")
            }
        }
    }

    @Test func theWatcherReloadsSettledChangesAndNeverABrokenSet() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        try await withRunningDaemon(watchingConfiguration(scratch, rules: rules)) { daemon in
            let control = daemon.endpoints.control
            let original = try await runningHash(control: control)
            try await waitForTheWatcher(toSee: rules, control: control)
            let file = rules + "/rulesets/30-folate-masking.yaml"
            // A broken edit: refused (status says so once the watcher has tried it), the running set stays.
            try edit(file, "daily_dose(folic_acid) > $folic_acid.masking_above", "daily_dose(folic_acd) > $folic_acid.masking_above")
            try await waitUntil("the watcher's reload of the broken edit") { try await lastReload(control: control)?["outcome"] == .string("refused") }
            #expect(try await runningHash(control: control) == original)
            // Fixed, with a harmless change: goes live once settled.
            try edit(file, "daily_dose(folic_acd) > $folic_acid.masking_above", "daily_dose(folic_acid) > $folic_acid.masking_above")
            try edit(file, "owner: Maternity haematology clinical lead", "owner: Obstetric haematology lead")
            #expect(try await hashAfterWatcherReload(control: control, from: original) != original)
        }
    }

    /// A file in the rules directory dated far outside the years 1677–2262 (a restored backup, an archive with odd
    /// times) is watched like any other: the daemon keeps running, and a change to it is still seen.
    /// Rules deployed as releases behind a symlink (`current -> releases/N`, swapped atomically), and files that
    /// are themselves symlinks (a Kubernetes ConfigMap): the watcher looks through both. It saw nothing through a
    /// symlinked directory, so the swap was never loaded.
    @Test func theWatcherFollowsSymlinkedRules() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let fm = FileManager.default
        let v1 = try copyRules(into: scratch)
        let v2 = scratch.path + "/rules-v2"
        try fm.copyItem(atPath: v1, toPath: v2)
        try changeFolateMaskingOwner(in: v2)
        let current = scratch.path + "/current"
        try fm.createSymbolicLink(atPath: current, withDestinationPath: v1)
        #expect(RulesWatcher.fingerprint(current)?.contains { $0.hasPrefix("bundle.yaml|") } == true, "no files seen through the symlink")
        // A file that is a symlink counts as the file it points to.
        let linked = scratch.path + "/linked"
        try fm.createDirectory(atPath: linked, withIntermediateDirectories: false)
        try fm.createSymbolicLink(atPath: linked + "/bundle.yaml", withDestinationPath: v1 + "/bundle.yaml")
        #expect(RulesWatcher.fingerprint(linked)?.contains { $0.hasPrefix("bundle.yaml|") } == true)
        try await withRunningDaemon(watchingConfiguration(scratch, rules: current)) { daemon in
            let control = daemon.endpoints.control
            let original = try await runningHash(control: control)
            try await waitForTheWatcher(toSee: current, control: control)
            try fm.createSymbolicLink(atPath: current + ".new", withDestinationPath: v2)
            #expect(rename(current + ".new", current) == 0)  // an atomic swap, as `ln -sfn` then `mv -T`
            #expect(try await hashAfterWatcherReload(control: control, from: original) != original)
        }
    }

    /// A site profile kept outside the rules directory (deploy: /etc/cobalt/site.yaml) names its own rule tests
    /// beside it, and since 1e346fc they gate it. An operator moves a threshold: the watcher reloads, the profile's
    /// tests refuse it; the operator then updates the tests to the new threshold — and the watcher must see that
    /// and take the profile live. It watches only the rules directory and the profile file, so the fixed tests were
    /// never looked at: the refused profile stayed refused until an unrelated file changed or someone reloaded.
    @Test func theWatcherSeesAChangeToTheProfilesOwnTests() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        let site = scratch.path + "/site"
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: false)
        let profile = site + "/site.yaml"
        let tests = site + "/site-tests.yaml"
        try String(contentsOfFile: Repository.rules + "/profiles/example-site.yaml", encoding: .utf8)
            .replacingOccurrences(of: "tests: example-site-tests.yaml", with: "tests: site-tests.yaml")
            .write(toFile: profile, atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: Repository.rules + "/profiles/example-site-tests.yaml", toPath: tests)
        var configuration = watchingConfiguration(scratch, rules: rules)
        configuration.profile = profile
        try await withRunningDaemon(configuration) { daemon in
            let control = daemon.endpoints.control
            let original = try await runningHash(control: control)
            try await waitForTheWatcher(toSee: rules, control: control)
            // 200 ng/L is now deficient: the profile's test that it is borderline fails, and the reload is refused
            // (status says so once the watcher has tried it: a fixed 2 s could pass before it had).
            try edit(profile, "total_b12.deficient_below: 200 ng/L", "total_b12.deficient_below: 210 ng/L")
            try await waitUntil("the watcher's reload of the profile") { try await lastReload(control: control)?["outcome"] == .string("refused") }
            #expect(try await runningHash(control: control) == original)
            // The site's tests follow its new threshold: now everything passes.
            try edit(tests, "value: 200, unit: ng/L", "value: 210, unit: ng/L")
            #expect(try await hashAfterWatcherReload(control: control, from: original) != original,
                "the watcher did not reload after the profile's tests changed")
        }
    }

    /// A rule file edited while the daemon starts — after the gate read the rules, before the watcher's first look —
    /// is reloaded: the watcher compares with the files as the start found them, not as they were when its service
    /// began (an edit in that window waited for the next one). And with nothing changed, nothing is reloaded.
    @Test func anEditDuringTheStartIsReloaded() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        let atStart = try #require(RulesWatcher.fingerprint(directory: rules, profile: nil))
        let reloads = Mutex(0)
        func watch(from loaded: [String], for duration: Duration) async throws {
            let watcher = RulesWatcher(
                directory: rules, interval: .milliseconds(20), settle: .milliseconds(50), loaded: loaded,
                reload: { reloads.withLock { $0 += 1 } })
            let running = Task { try await watcher.run() }
            let deadline = ContinuousClock.now + duration
            while ContinuousClock.now < deadline, reloads.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(20)) }
            running.cancel()
            try await running.value
        }
        try await watch(from: atStart, for: .milliseconds(500))
        #expect(reloads.withLock { $0 } == 0, "a reload with nothing changed")
        // A directory that cannot be opened for a while (here: moved away; in the review, a daemon out of
        // descriptors) is no observation: it was taken for a change, and a reload was tried and refused.
        let away = rules + ".away"
        try FileManager.default.moveItem(atPath: rules, toPath: away)
        let back = Task {
            try await Task.sleep(for: .milliseconds(300))
            try FileManager.default.moveItem(atPath: away, toPath: rules)
        }
        try await watch(from: atStart, for: .milliseconds(500))
        try await back.value
        #expect(reloads.withLock { $0 } == 0, "a reload while the directory could not be read")
        try changeFolateMaskingOwner(in: rules)  // the edit, before the watcher runs
        try await watch(from: atStart, for: .seconds(60))
        #expect(reloads.withLock { $0 } == 1, "the edit made during the start was not reloaded")
    }

    @Test func theWatcherTakesFilesWithAnyModificationTime() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        let odd = rules + "/NOTES.txt"
        try "notes".write(toFile: odd, atomically: true, encoding: .utf8)
        let far = Date(timeIntervalSince1970: 10_413_792_000)  // 2300-01-01
        try FileManager.default.setAttributes([.modificationDate: far], ofItemAtPath: odd)
        #expect((try FileManager.default.attributesOfItem(atPath: odd)[.modificationDate] as? Date) == far)
        try await withRunningDaemon(watchingConfiguration(scratch, rules: rules)) { daemon in
            let control = daemon.endpoints.control
            let original = try await runningHash(control: control)
            try await waitForTheWatcher(toSee: rules, control: control)  // it has looked at the directory, odd file included
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: -11_676_096_000)], ofItemAtPath: odd)  // 1600
            try changeFolateMaskingOwner(in: rules)
            #expect(try await hashAfterWatcherReload(control: control, from: original) != original)
        }
    }

    /// The gate is the same at start as on a reload: a rule set refused by a reload and left on disk does not go
    /// live at the next start (a crash, a reboot) — not when a rule test fails, not when there are no tests.
    @Test func theDaemonDoesNotStartOnRulesThatFailOrLackTheirTests() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        let configuration = testConfiguration(directory: scratch.path, rules: rules)
        // Compiles, but the deficiency threshold moves so that the vignettes' expected alerts change.
        try edit(rules + "/rulesets/10-deficiency.yaml", "    value: 25 pmol/L\n    for: b12.active", "    value: 10 pmol/L\n    for: b12.active")
        await #expect {
            try await withRunningDaemon(configuration) { _ in }
        } throws: { error in
            "\(error)".contains("may not run") && "\(error)".contains("rule test failed")
        }
        try edit(rules + "/rulesets/10-deficiency.yaml", "    value: 10 pmol/L\n    for: b12.active", "    value: 25 pmol/L\n    for: b12.active")
        try FileManager.default.removeItem(atPath: rules + "/tests")
        await #expect {
            try await withRunningDaemon(configuration) { _ in }
        } throws: { error in
            "\(error)".contains("no rule tests")
        }
        // Restored, it starts.
        try FileManager.default.copyItem(atPath: Repository.rules + "/tests", toPath: rules + "/tests")
        let hash = try await withRunningDaemon(configuration) { daemon in try await runningHash(control: daemon.endpoints.control) }
        #expect(hash.hasPrefix("sha256:"))
    }

    /// deploy/cobalt.yaml offers `profile: Rules/profiles/example-site.yaml`, and site profiles exist to change
    /// thresholds without editing rule logic. But the gate runs the bundled rule tests (written for the product
    /// defaults) under the profile, so any real threshold override fails them: the daemon refuses to start, and a
    /// reload refuses, with the bundled example profile. A profile must be usable without editing the tests.
    @Test func theBundledExampleProfilePassesTheGate() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var configuration = testConfiguration(directory: scratch.path)
        configuration.profile = Repository.rules + "/profiles/example-site.yaml"
        let gate = Reloader.gate(configuration)
        #expect(gate.bundle != nil)
        #expect(gate.warnings.contains { $0.hasPrefix("the profile's parameters change the outcome of") && $0.contains("total B12 180 ng/L not pregnant is borderline") },
            "\(gate.warnings)")
        #expect(gate.errors.isEmpty, "\(gate.errors.count) errors, first: \(gate.errors.first ?? "")")
    }

    @Test func testingRuleSetsRunInShadowAndAreNeverPublished() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = try copyRules(into: scratch)
        try addShadowCandidate(to: rules)
        var configuration = testConfiguration(directory: scratch.path, rules: rules)
        configuration.watchRules = false
        try await withRunningDaemon(configuration) { daemon in
            _ = try await send([deficientEvent(id: "sh-1", patient: "p-1")], to: daemon.endpoints.ingest)
            try await waitForEvaluated(1, control: daemon.endpoints.control)
            let published = try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
            #expect(!published.isEmpty)
            #expect(!published.contains { $0["rule"] == .string("candidate.low-active") })
            // Not vacuous: under the same rules the candidate does fire for this event — as a shadow alert.
            let bundle = try #require(RuleLoader().load(directory: rules).bundle)
            let event = try EventDecoder.decode(Data(deficientEvent(id: "sh-1", patient: "p-1").utf8))
            let offline = Timelines.evaluate([event], bundle: bundle)[0]
            #expect(offline.shadowAlerts.map(\.rule) == ["candidate.low-active"])
            #expect(!offline.alerts.contains { $0.rule == "candidate.low-active" })
        }
    }
}

@Suite struct RulesDiffTests {
    @Test func reportsAddedAndLostAlertsAndFlagsLostCriticalOnes() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let journal = scratch.path + "/journal.db"
        let store = try SQLiteStore(path: journal)
        let events = [
            deficientEvent(id: "d-1", patient: "p-1"),
            eventJSON(id: "d-2", patient: "p-2", clinic: "south", body: #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "symptoms": [{"code": "paraesthesia"}]"#),
        ]
        _ = try store.journal(events.enumerated().map { index, json in
            IncomingEvent(id: "d-\(index)", digest: "x\(index)", patient: index == 0 ? "p-1" : "p-2", clinic: index == 0 ? "north" : "south", time: 0, body: json)
        })
        let same = try await RulesDiff.run(journal: journal, old: Repository.rules, new: Repository.rules)
        #expect(same.events == 2 && same.lostCritical == 0)
        #expect(same.text.contains("no alert would be added or lost"))

        let candidate = try copyRules(into: scratch)
        try edit(candidate + "/rulesets/40-neuro-urgent.yaml", "when: neuro.symptoms and not (exists(alternative_neuro_diagnosis) and b12.replete_specific)", "when: neuro.symptoms and b12.status == \"deficient\"")
        let diff = try await RulesDiff.run(journal: journal, old: Repository.rules, new: candidate)
        #expect(diff.lostCritical == 1)
        #expect(diff.text.contains("- neuro.urgent [critical] clinic south: 1  !! LOST CRITICAL ALERT"))
    }
}

/// Proof under load: while a pyzmq sender streams events, the rules are reloaded again and again, alternating
/// broken and valid sets. Every event is acknowledged and evaluated exactly once, none is rejected because of a
/// reload, broken sets never go live, and the ops stream reports every outcome.
@Suite(.timeLimit(.minutes(10))) struct ReloadUnderLoadTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/stream.py").path

    @Test func reloadsNeverLoseOrRejectEvents() async throws {
        try await withRulesCopy { configuration, rules in
            let count = 3_000
            try await withRunningDaemon(configuration) { daemon in
                let e = daemon.endpoints
                // Subscribed to ops/ruleset, then to ops/start, whose retained copy shows both subscriptions are in
                // place (they are applied in order) before the first reload: a fixed 300 ms could be too short.
                let subscribed = Atomic<Bool>(false)
                let ops = Task {
                    try await onThread { () -> [String] in
                        let sub = try ZMQSocket(context: try ZMQContext(), type: .sub)
                        try sub.set(.subscribe, Array("ops/ruleset".utf8))
                        try sub.set(.subscribe, Array("ops/start".utf8))
                        try sub.connect(e.alerts)
                        var outcomes: [String] = []
                        while outcomes.count < 20, try sub.waitForInput(timeout: 60_000), let message = try sub.receive() {
                            guard String(decoding: message.frames[0], as: UTF8.self) == "ops/ruleset" else {
                                subscribed.store(true, ordering: .releasing)
                                continue
                            }
                            let body = String(decoding: message.frames[1], as: UTF8.self)
                            outcomes.append(body.contains("\"outcome\":\"live\"") ? "live" : "rejected")
                        }
                        return outcomes
                    }
                }
                try await waitUntil("the ops/ subscription") { subscribed.load(ordering: .acquiring) }
                let sender = Task { try await runPython([Self.script, e.ingest, "\(count)", "600"]).output }
                let file = rules + "/rulesets/30-folate-masking.yaml"
                let original = try String(contentsOfFile: file, encoding: .utf8)
                var validHashes: Set<String> = [try await runningHash(control: e.control)]
                var replies: [String] = []
                var pauses: [Double] = []
                var reloadTimes: [Double] = []
                for round in 0..<10 {
                    try original.replacingOccurrences(of: "daily_dose(folic_acid) >", with: "daily_dose(folic_acd) >")
                        .write(toFile: file, atomically: true, encoding: .utf8)
                    let broken = try await request(#"{"command": "reload"}"#, to: e.control)
                    replies.append(broken["status"]?.stringValue ?? "?")
                    try original.replacingOccurrences(of: "owner: Maternity haematology clinical lead", with: "owner: Lead \(round)")
                        .write(toFile: file, atomically: true, encoding: .utf8)
                    let valid = try await request(#"{"command": "reload"}"#, to: e.control)
                    replies.append(valid["status"]?.stringValue ?? "?")
                    if case .number(let pause)? = valid["evaluation_pause_ms"], case .number(let total)? = valid["reload_ms"],
                        case .number(let compile)? = valid["compile_ms"], case .number(let tests)? = valid["tests_ms"]
                    {
                        pauses.append(pause)
                        reloadTimes.append(total)
                        // Compiling and testing are parts of the whole reload (each rounded to 4 significant digits).
                        #expect(compile > 0 && tests > 0 && compile + tests <= total * 1.001, "\(compile) + \(tests) of \(total) ms")
                    }
                    if case .object(let r)? = valid["ruleset"], let hash = r["hash"]?.stringValue { validHashes.insert(hash) }
                    #expect(validHashes.contains(try await runningHash(control: e.control)), "a broken set went live")
                    try await Task.sleep(for: .milliseconds(150))
                }
                #expect(replies == Array(repeating: ["error", "ok"], count: 10).flatMap { $0 })
                #expect(pauses.count == 10)
                // Measured, not asserted (timing belongs in benchmarks): printed for the record.
                print("reload under load: reload_ms max \(reloadTimes.max() ?? -1), evaluation_pause_ms max \(pauses.max() ?? -1)")

                let summary = try await sender.value
                let result = try object(summary.split(separator: "\n").last.map(String.init) ?? "{}")
                #expect(result["statuses"] == .object(["accepted": .number(Double(count))]), "\(summary)")
                #expect(result["unanswered"] == .number(0))
                try await waitForEvaluated(count, control: e.control)
                let status = try await request(#"{"command": "status"}"#, to: e.control)
                guard case .object(let counts)? = status["counts"] else { Issue.record("no counts"); return }
                #expect(counts["journaled"] == .number(Double(count)) && counts["evaluated"] == .number(Double(count)))
                #expect(counts["rejected"] == .number(0) && counts["unevaluated"] == .number(0))
                #expect(try await ops.value == Array(repeating: ["rejected", "live"], count: 10).flatMap { $0 })
            }
        }
    }
}
