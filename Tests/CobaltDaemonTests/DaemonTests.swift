import CobaltClient
import CobaltDaemon
import CobaltStore
import CobaltTestSupport
import Foundation
import RuleEngine
import Synchronization
import Testing
import ZeroMQ

/// A low active B12 in pregnancy: deficiency, route, monitoring alerts for `clinic`.
func deficientEvent(id: String, patient: String, clinic: String = "north", value: Double = 18, time: String = "2026-11-20T09:00:00Z") -> String {
    eventJSON(id: id, patient: patient, clinic: clinic, time: time, body: #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "diet": "vegan", "observations": [{"code": "b12.active", "value": \#(value), "unit": "pmol/L"}]"#)
}

func object(_ text: String) throws -> JSONObject {
    guard case .object(let o) = try JSONValue.parse(Data(text.utf8)) else { throw ZMQError(code: EINVAL, operation: "not an object") }
    return o
}

func send(_ events: [String], to endpoint: String) async throws -> [EventSender.Outcome] {
    try await onThread {
        try EventSender(endpoint: endpoint).send(events.map { Array($0.utf8) }, context: try ZMQContext())
    }
}

/// SQL that makes every `operation` (`INSERT`, `UPDATE`) on `table` fail with a real SQLite error — or only those
/// whose row meets `condition` (on `NEW`) — until ``injectedFailureOff`` runs: store trouble, injected from another
/// connection while the daemon runs.
func injectedFailure(_ operation: String, on table: String, where condition: String = "1") -> String {
    """
    CREATE TABLE injected_failure (on_ INTEGER NOT NULL); INSERT INTO injected_failure VALUES (1);
    CREATE TRIGGER injected_failure BEFORE \(operation) ON \(table)
    WHEN (SELECT on_ FROM injected_failure) = 1 AND (\(condition)) BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
    """
}

let injectedFailureOff = "UPDATE injected_failure SET on_ = 0;"

/// The first value `query` returns on the daemon's database, read from another process (Python's sqlite3), as
/// Python prints it.
func runPythonSQL(_ query: String, database: String) async throws -> String {
    let (status, output) = try await runPython(["-c", """
        import sqlite3, sys
        db = sqlite3.connect(sys.argv[1], timeout=10)
        print(db.execute(sys.argv[2]).fetchone()[0])
        db.close()
        """, database, query])
    #expect(status == 0, "\(output)")
    return output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs SQL on the daemon's database from another process (Python's sqlite3), as an operator or a fault would.
func runSQL(_ statements: String, database: String) async throws {
    let (status, output) = try await runPython(["-c", """
        import sqlite3, sys
        db = sqlite3.connect(sys.argv[1], timeout=10)
        db.executescript(sys.argv[2])
        db.close()
        """, database, statements])
    #expect(status == 0, "\(output)")
}

/// One request/reply. The timeout is generous: tests assert behaviour, not speed (a reload runs every rule test,
/// and CI machines can be busy).
func request(_ json: String, to endpoint: String, timeout: Int = 60_000) async throws -> JSONObject {
    let reply = try await onThread { try Requester(context: try ZMQContext(), endpoint: endpoint).request(json, timeout: timeout).canonicalText }
    return try object(reply)
}

/// Waits until the daemon has evaluated `count` events (its status says so); throws if it does not within `limit`,
/// so that a test stops there instead of asserting on a half-evaluated state. The limit is generous: a retry after a
/// store failure can be 8 s or more away, and a busy CI machine evaluates slowly (200 polls of 50 ms was too short).
func waitForEvaluated(_ count: Int, control: String, within limit: Duration = .seconds(120)) async throws {
    let deadline = ContinuousClock.now + limit
    var last: JSONValue?
    repeat {
        let status = try await request(#"{"command": "status"}"#, to: control)
        last = status["counts"]
        if case .object(let counts)? = status["counts"], case .number(let evaluated)? = counts["evaluated"], Int(evaluated) >= count,
            case .number(let unevaluated)? = counts["unevaluated"], unevaluated == 0
        {
            return
        }
        try await Task.sleep(for: .milliseconds(50))
    } while ContinuousClock.now < deadline
    throw ZMQError(code: ETIMEDOUT, operation: "waiting for the daemon to evaluate \(count) events (counts: \(last?.canonicalText ?? "none"))")
}

/// Waits until `condition` holds, looking every `interval`; throws (naming `what`) if it does not within `limit`.
/// For what a peer can observe, instead of a fixed sleep that a descheduled process can overrun.
func waitUntil(
    _ what: @autoclosure () -> String, within limit: Duration = .seconds(60), every interval: Duration = .milliseconds(100),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + limit
    while !(try await condition()) {
        guard ContinuousClock.now < deadline else { throw ZMQError(code: ETIMEDOUT, operation: "waiting \(limit) for \(what())") }
        try await Task.sleep(for: interval)
    }
}

func replayAll(clinic: String, replay: String, pageSize: Int = 2) async throws -> [JSONObject] {
    var alerts: [JSONObject] = []
    var after = 0
    while true {
        let page = try await request(#"{"clinic": "\#(clinic)", "after": \#(after), "limit": \#(pageSize)}"#, to: replay)
        guard case .array(let items)? = page["alerts"] else { return alerts }
        for item in items { if case .object(let o) = item { alerts.append(o) } }
        if case .number(let last)? = page["last"] { after = Int(last) }
        guard case .bool(true)? = page["more"] else { return alerts }
    }
}

@Suite(.timeLimit(.minutes(10))) struct IngestTests {
    @Test func acknowledgesOnlyAfterStoringAndAnswersEveryKindOfInput() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var configuration = testConfiguration(directory: scratch.path)
        configuration.maxEventBytes = 4_096
        try await withRunningDaemon(configuration) { daemon in
            let valid = deficientEvent(id: "e-1", patient: "p-1")
            let first = try await send([valid, eventJSON(id: "e-2", patient: "p-2")], to: daemon.endpoints.ingest)
            #expect(first.map(\.status) == ["accepted", "accepted"])
            let again = try await send([valid], to: daemon.endpoints.ingest)
            #expect(again.map(\.status) == ["duplicate"])
            let conflicting = try await send([deficientEvent(id: "e-1", patient: "p-1", value: 19)], to: daemon.endpoints.ingest)
            #expect(conflicting.map(\.code) == [409])
            // The same event written differently (members in the reverse order, other spacing, 18 as 1.8e1) is the
            // same content: a duplicate, not a conflict. The journal compares bytes; ingest compares contents when
            // the bytes differ.
            let members = try object(valid).members.reversed().map { "\n  \($0.key.jsonQuoted) : \($0.value.canonicalText)" }
            let rewritten = "{" + members.joined(separator: " ,") + "\n}"
            #expect(rewritten != valid && rewritten.contains("18"))
            let resent = try await send([rewritten.replacingOccurrences(of: "18", with: "1.8e1")], to: daemon.endpoints.ingest)
            #expect(resent.map(\.status) == ["duplicate"], "\(resent.map(\.reply))")

            // Invalid, oversized and malformed input, each with a precise reason; valid traffic interleaved continues.
            let big = eventJSON(id: "e-big", body: #""diet": "vegan", "padding": "\#(String(repeating: "x", count: 5_000))""#)
            let outcomes = try await send([
                #"{"id": "bad-1", "patient": 7, "clinic": "north", "time": "yesterday", "observations": [{"code": "b12.total"}]}"#,
                eventJSON(id: "e-3", patient: "p-3"),
                big,
                "{not json",
                eventJSON(id: "e-4", patient: "p-4"),
            ], to: daemon.endpoints.ingest)
            #expect(outcomes.map(\.status) == ["rejected", "accepted", "rejected", "rejected", "accepted"])
            #expect(outcomes.map(\.code) == [400, 200, 413, 400, 200])
            let invalid = try object(outcomes[0].reply)
            guard case .array(let errors)? = invalid["errors"] else { Issue.record("no errors"); return }
            let paths = errors.compactMap { error -> String? in
                if case .object(let e) = error { return e["path"]?.stringValue }
                return nil
            }
            #expect(Set(paths) == ["patient", "time", "observations[0].value"])
            #expect(try object(outcomes[3].reply)["reason"]?.stringValue == "malformed JSON")

            // A value that will not be used is accepted, with a warning naming it.
            let unitless = try await send([eventJSON(id: "e-5", patient: "p-5", body: #""observations": [{"code": "b12.total", "value": 160}]"#)], to: daemon.endpoints.ingest)
            #expect(unitless[0].status == "accepted" && unitless[0].reply.contains("unit missing"))

            let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
            guard case .object(let counts)? = status["counts"] else { Issue.record("no counts"); return }
            #expect(counts["journaled"] == .number(5))  // e-1 … e-5
            #expect(counts["duplicate"] == .number(2))
            #expect(counts["rejected"] == .number(4))
        }
    }

    @Test func badFramesGetANackAndTrafficContinues() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let endpoint = daemon.endpoints.ingest
            let replies = try await onThread { () -> [String] in
                let context = try ZMQContext()
                let dealer = try ZMQSocket(context: context, type: .dealer)
                try dealer.connect(endpoint)
                try dealer.send([[]])  // an empty frame
                try dealer.send([Array("\u{0}\u{1}garbage".utf8)])  // binary garbage
                // Frames before the event are a routing envelope (a broker's hops) and come back with the reply.
                try dealer.send([Array("hop".utf8), Array(eventJSON(id: "ok-1").utf8)])
                var replies: [String] = []
                while replies.count < 3, try dealer.waitForInput(timeout: 60_000), let message = try dealer.receive() {
                    replies.append(String(decoding: message.frames.last ?? [], as: UTF8.self))
                }
                return replies
            }
            #expect(replies.count == 3)
            #expect(replies.filter { $0.contains("\"code\":400") }.count == 2)
            #expect(replies.contains { $0.contains("\"id\":\"ok-1\"") && $0.contains("accepted") })
            #expect(replies.contains { $0.contains("malformed JSON") })
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct PublishingTests {
    @Test func alertsArePublishedOnceWithGapFreeSequencesAndReplayed() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let endpoints = daemon.endpoints
            // Subscribe first (slow joiner), then send. The subscriber runs until it has as many alerts as replay
            // holds once everything is evaluated (it used to stop after 3 s without an alert, which a busy machine's
            // evaluation can take: it then had only part of the stream).
            let expected = Mutex<Int?>(nil)
            let subscription = Task {
                try await onThread { () -> [String] in
                    let subscriber = try Subscriber(context: try ZMQContext(), alerts: endpoints.alerts, replay: endpoints.replay, clinic: "north")
                    var received: [String] = []
                    try subscriber.catchUp { received.append($0) }
                    let deadline = ContinuousClock.now + .seconds(90)
                    while ContinuousClock.now < deadline {
                        if let expected = expected.withLock({ $0 }), received.count >= expected { break }
                        try subscriber.poll(timeout: 200) { received.append($0) }
                    }
                    return received
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            _ = try await send([deficientEvent(id: "a-1", patient: "p-1")], to: endpoints.ingest)
            // The same condition again: no new publication.
            _ = try await send([deficientEvent(id: "a-2", patient: "p-1", time: "2026-11-20T10:00:00Z")], to: endpoints.ingest)
            // Another clinic's patient: not seen by this subscriber.
            _ = try await send([deficientEvent(id: "b-1", patient: "p-9", clinic: "south")], to: endpoints.ingest)
            // Treatment resolves the deficiency alert for p-1.
            _ = try await send([deficientEvent(id: "a-3", patient: "p-1", value: 90, time: "2026-11-21T09:00:00Z")], to: endpoints.ingest)
            try await waitForEvaluated(4, control: endpoints.control)

            let replayed = try await replayAll(clinic: "north", replay: endpoints.replay)
            expected.withLock { $0 = replayed.count }
            let live = try await subscription.value.map(object)
            let seqs = replayed.compactMap { alert -> Int? in
                if case .number(let n)? = alert["seq"] { return Int(n) }
                return nil
            }
            #expect(!seqs.isEmpty && seqs == Array(1...max(1, seqs.count)))
            #expect(live.map { $0["seq"] } == replayed.map { $0["seq"] })
            #expect(replayed.allSatisfy { $0["clinic"] == .string("north") && $0["epoch"]?.stringValue != nil })
            let firing = replayed.filter { $0["status"] == .string("firing") }.compactMap { $0["rule"]?.stringValue }
            #expect(Set(firing).count == firing.count, "an alert was published as new twice: \(firing)")
            #expect(firing.contains("b12.deficiency-alert"))
            let resolved = replayed.filter { $0["status"] == .string("resolved") }.compactMap { $0["rule"]?.stringValue }
            #expect(resolved.contains("b12.deficiency-alert"))
            // Every published alert explains itself.
            let deficiency = try #require(replayed.first { $0["rule"] == .string("b12.deficiency-alert") })
            guard case .array(let evidence)? = deficiency["evidence"] else { Issue.record("no evidence"); return }
            #expect(evidence.contains { item in
                if case .object(let e) = item { return e["fact"] == .string("b12.active") && e["event"] == .string("a-1") }
                return false
            })
            #expect(deficiency["ruleset"] != nil && deficiency["decisions"] != nil && deficiency["patient"] == .string("p-1"))
        }
    }

    /// A patient whose events move to another clinic: her open alerts end in the first clinic's stream and start
    /// in the second's, and each stream stays whole — every alert id it shows starts `firing`, changes only as
    /// `updated` and ends `resolved`. (They used to go on as `updated` in the new clinic, which never saw them fire,
    /// and stay open in the old one for ever.)
    @Test func alertsFollowThePatientToAnotherClinicAndEachStreamStaysWhole() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let endpoints = daemon.endpoints
            _ = try await send([deficientEvent(id: "m-1", patient: "p-m", clinic: "north")], to: endpoints.ingest)
            _ = try await send([deficientEvent(id: "m-2", patient: "p-m", clinic: "south", value: 17, time: "2026-11-21T09:00:00Z")], to: endpoints.ingest)
            _ = try await send([deficientEvent(id: "m-3", patient: "p-m", clinic: "south", value: 90, time: "2026-11-22T09:00:00Z")], to: endpoints.ingest)
            try await waitForEvaluated(3, control: endpoints.control)
            let north = try await replayAll(clinic: "north", replay: endpoints.replay)
            let south = try await replayAll(clinic: "south", replay: endpoints.replay)
            /// Each alert id's statuses in a stream, in order.
            func lives(_ stream: [JSONObject]) -> [String: [String]] {
                stream.reduce(into: [:]) { lives, alert in
                    lives[alert["id"]?.stringValue ?? "?", default: []].append(alert["status"]?.stringValue ?? "?")
                }
            }
            let northLives = lives(north), southLives = lives(south)
            // Every alert open in the north moved south; the deficiency alerts then resolved there.
            #expect(!northLives.isEmpty && Set(northLives.keys).isSubset(of: southLives.keys), "\(northLives) \(southLives)")
            for (id, statuses) in northLives {
                #expect(statuses == ["firing", "resolved"], "north \(id): \(statuses)")
            }
            for (id, statuses) in southLives {
                let middle = statuses.last == "resolved" ? statuses.dropFirst().dropLast() : statuses.dropFirst()
                #expect(statuses.first == "firing" && middle.allSatisfy { $0 == "updated" }, "south \(id): \(statuses)")
            }
            let deficiency = south.filter { $0["rule"] == .string("b12.deficiency-alert") }.compactMap { $0["status"]?.stringValue }
            #expect(deficiency.first == "firing" && deficiency.last == "resolved", "\(deficiency)")
            #expect(north.allSatisfy { $0["clinic"] == .string("north") } && south.allSatisfy { $0["clinic"] == .string("south") })
            // The north's resolutions say the alerts moved (not that the condition resolved); the south's do not.
            #expect(north.filter { $0["status"] == .string("resolved") }.allSatisfy { $0["resolution"] == .string("moved") })
            #expect(!south.contains { $0["resolution"] != nil })
        }
    }

    /// A subscriber of a clinic with no alert yet hears its heartbeat even after 999 made-up clinics were
    /// subscribed and dropped (the clinics noted from subscriptions were never forgotten, and the 1,001st was
    /// never heard); a clinic another subscriber still holds stays heard; a subscription naming no valid clinic id
    /// (a control character) gets no heartbeat topic.
    @Test func clinicsSubscribedAndDroppedAreForgotten() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            try await subscriptionsComeAndGo(alerts: daemon.endpoints.alerts, security: nil)
        }
    }

    /// A SUB socket sends every subscription up, a repeated one too, but its unsubscription (or its close) once:
    /// libzmq keeps one subscription per connection. Counted per message, a clinic subscribed twice on one
    /// connection was never forgotten after it left (so 1,000 made-up clinics subscribed twice and dropped
    /// silenced every later clinic's heartbeats, the very bug the counting was to fix).
    @Test func aClinicSubscribedTwiceOnOneConnectionIsForgottenWhenItLeaves() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let alerts = daemon.endpoints.alerts
            let forgotten = try await onThread { () -> Bool in
                let context = try ZMQContext()
                let probe = try subscriber(context, alerts, ["clinic/"])
                // A clinic that stays subscribed: a window that hears it is a window in which heartbeats went out.
                let anchor = try subscriber(context, alerts, ["clinic/anchor/"])
                let twice = try subscriber(context, alerts, ["clinic/twice/", "clinic/twice/"])
                func topics(for duration: Duration) throws -> Set<String> { try topicsHeard(on: probe, for: duration) }
                let deadline = ContinuousClock.now + .seconds(60)
                var seen: Set<String> = []
                while !seen.contains("clinic/twice/heartbeat"), ContinuousClock.now < deadline { seen.formUnion(try topics(for: .milliseconds(200))) }
                guard seen.contains("clinic/twice/heartbeat") else { return false }  // never heard: nothing shown
                twice.close()
                repeat { seen = try topics(for: .milliseconds(600)) }
                while !(seen.contains("clinic/anchor/heartbeat") && !seen.contains("clinic/twice/heartbeat")) && ContinuousClock.now < deadline
                for socket in [anchor, probe] { socket.close() }
                return seen.contains("clinic/anchor/heartbeat") && !seen.contains("clinic/twice/heartbeat")
            }
            #expect(forgotten, "a clinic subscribed twice on one connection was still heard 60 s after the connection closed (or never heard)")
        }
    }

    @Test func subscribersDetectGapsFromHeartbeatsAndRepairThem() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let endpoints = daemon.endpoints
            // Alerts published while nobody listens are missed live; the heartbeat's `last` reveals them.
            _ = try await send([deficientEvent(id: "g-1", patient: "p-1"), deficientEvent(id: "g-2", patient: "p-2")], to: endpoints.ingest)
            try await waitForEvaluated(2, control: endpoints.control)
            let published = try await replayAll(clinic: "north", replay: endpoints.replay).count
            // Polled until the gap is repaired (a heartbeat comes every 200 ms; 2 s of polls was too few for a
            // subscription to be made and a heartbeat heard on a busy machine).
            let (received, gaps) = try await onThread { () -> ([String], Int) in
                let subscriber = try Subscriber(context: try ZMQContext(), alerts: endpoints.alerts, replay: endpoints.replay, clinic: "north")
                var received: [String] = []
                let deadline = ContinuousClock.now + .seconds(60)
                while received.count < published || subscriber.gapsRepaired == 0, ContinuousClock.now < deadline {
                    try subscriber.poll(timeout: 200) { received.append($0) }
                }
                return (received, subscriber.gapsRepaired)
            }
            #expect(gaps >= 1 && received.count == published, "\(gaps) gaps repaired, \(received.count) of \(published) alerts")
            let seqs = try received.map(object).compactMap { alert -> Int? in
                if case .number(let n)? = alert["seq"] { return Int(n) }
                return nil
            }
            #expect(!seqs.isEmpty && seqs == Array(1...max(1, seqs.count)))
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct ControlAndDurabilityTests {
    /// An event journaled before unknown preferences were refused (f51138a) — here the typo the commit names,
    /// `declines-injection`, accepted and acknowledged then — is still the patient's event: read back from the journal
    /// (at start, after an eviction) it must be evaluated and stay in her history with its B12 result. The stricter
    /// preference check applied to journaled rows too, the row no longer decoded, and it was "marked evaluated
    /// without alerts": her deficiency raised nothing.
    @Test func anEventJournaledWithAPreferenceNowRefusedIsStillEvaluated() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = testConfiguration(directory: scratch.path)
        let body = eventJSON(id: "old-1", patient: "old-p1", body: #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "preferences": ["declines-injection"], "observations": [{"code": "b12.active", "value": 18, "unit": "pmol/L"}]"#)
        do {
            // As the daemon before f51138a journaled it: acknowledged, not yet evaluated.
            let store = try SQLiteStore(path: configuration.database)
            let outcome = try store.journal([IncomingEvent(id: "old-1", digest: "d-old-1", patient: "old-p1", clinic: "north", time: 1_795_597_200, body: body)])
            #expect(outcome == [.accepted(seq: 1)])
        }
        try await withRunningDaemon(configuration) { daemon in
            try await waitForEvaluated(1, control: daemon.endpoints.control)
            let alerts = try await replayAll(clinic: "north", replay: daemon.endpoints.replay, pageSize: 100)
            #expect(alerts.contains { $0["patient"] == .string("old-p1") && $0["status"] == .string("firing") },
                "no alert from the journaled event: \(alerts.count) alerts")
        }
    }

    @Test func statusReportsTheRunningState() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
            #expect(status["status"] == .string("ok") && status["version"]?.stringValue != nil)
            guard case .object(let ruleset)? = status["ruleset"] else { Issue.record("no ruleset"); return }
            #expect(ruleset["hash"]?.stringValue?.hasPrefix("sha256:") == true)
            let unknown = try await request(#"{"command": "dance"}"#, to: daemon.endpoints.control)
            #expect(unknown["status"] == .string("error"))
        }
    }

    /// Store trouble on the ingest path (the journal insert fails with a real SQLite error, raised by a trigger
    /// another connection installs): the event is answered 503, not acknowledged, and nothing is stored; the daemon
    /// keeps answering; once the store works, the same event is accepted (not `duplicate`) and evaluated.
    @Test func storeTroubleIsA503AndTheSameEventIsAcceptedOnceTheStoreWorks() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = testConfiguration(directory: scratch.path)
        try await withRunningDaemon(configuration) { daemon in
            try await runSQL(injectedFailure("INSERT", on: "events"), database: configuration.database)
            let event = deficientEvent(id: "store-1", patient: "p-store")
            let refused = try await request(event, to: daemon.endpoints.ingest)
            #expect(refused["code"] == .number(503) && refused["status"] == .string("rejected") && refused["id"] == .string("store-1"), "\(refused)")
            let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
            guard case .object(let counts)? = status["counts"] else { Issue.record("no counts: \(status)"); return }
            #expect(counts["journaled"] == .number(0) && counts["accepted"] == .number(0), "\(counts)")
            try await runSQL(injectedFailureOff, database: configuration.database)
            let outcomes = try await send([event], to: daemon.endpoints.ingest)
            #expect(outcomes.map(\.status) == ["accepted"])
            try await waitForEvaluated(1, control: daemon.endpoints.control)
            #expect(try await replayAll(clinic: "north", replay: daemon.endpoints.replay).contains { $0["rule"] == .string("b12.deficiency-alert") })
        }
    }

    /// A failed evaluation commit (a real SQLite error, raised by a trigger another connection installs) must not
    /// leave acknowledged events waiting for the next sender: once the store works again, the pipeline retries on
    /// its own and the alert is published without any new event.
    @Test func aFailedEvaluationIsRetriedWithoutWaitingForANewEvent() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = testConfiguration(directory: scratch.path)
        func sql(_ statements: String) async throws { try await runSQL(statements, database: configuration.database) }
        try await withRunningDaemon(configuration) { daemon in
            try await sql(injectedFailure("UPDATE", on: "evaluation_progress"))
            let outcomes = try await send([deficientEvent(id: "retry-1", patient: "p-retry")], to: daemon.endpoints.ingest)
            #expect(outcomes.map(\.status) == ["accepted"])
            // The alert-changing commit fails while the trigger is on: nothing is evaluated or published.
            try await Task.sleep(for: .milliseconds(700))
            let failing = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
            guard case .object(let counts)? = failing["counts"] else { Issue.record("no counts: \(failing)"); return }
            #expect(counts["evaluated"] == .number(0) && counts["unevaluated"] == .number(1), "\(counts)")
            #expect(try await replayAll(clinic: "north", replay: daemon.endpoints.replay).isEmpty)
            // The store works again; no event is sent.
            try await sql(injectedFailureOff)
            try await waitForEvaluated(1, control: daemon.endpoints.control)
            let alerts = try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
            #expect(!alerts.isEmpty && alerts.allSatisfy { $0["patient"] == .string("p-retry") && $0["status"] == .string("firing") }, "\(alerts)")
        }
    }

    @Test func reloadIsGatedAndCompareAndSwap() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let rules = scratch.path + "/rules"
        try FileManager.default.copyItem(atPath: Repository.rules, toPath: rules)
        // The operator's reloads only: the watcher would take the same edits too, and its "unchanged" could be the
        // last reload status shows.
        var configuration = testConfiguration(directory: scratch.path, rules: rules)
        configuration.watchRules = false
        try await withRunningDaemon(configuration) { daemon in
            let control = daemon.endpoints.control
            let before = try await request(#"{"command": "status"}"#, to: control)
            guard case .object(let running)? = before["ruleset"], let hash = running["hash"]?.stringValue else { Issue.record("no hash"); return }
            let stale = try await request(#"{"command": "reload", "expect": "sha256:nope"}"#, to: control)
            #expect(stale["status"] == .string("error") && stale["reason"]?.stringValue?.contains("stale") == true)

            // A broken rule file is refused with its diagnostic; the running set stays.
            let file = rules + "/rulesets/10-deficiency.yaml"
            let original = try String(contentsOfFile: file, encoding: .utf8)
            try original.replacingOccurrences(of: "b12.active_result < $active_b12.deficient_below", with: "b12.active_reslt < $active_b12.deficient_below")
                .write(toFile: file, atomically: true, encoding: .utf8)
            let broken = try await request(#"{"command": "reload", "expect": "\#(hash)"}"#, to: control)
            #expect(broken["status"] == .string("error"))
            #expect(broken["errors"]?.canonicalText.contains("unknown name 'b12.active_reslt'") == true)
            // status keeps the last reload's outcome (a watcher's or SIGHUP's reload has no reply to read).
            let refusedStatus = try await request(#"{"command": "status"}"#, to: control)
            guard case .object(let lastRefused)? = refusedStatus["last_reload"] else { Issue.record("no last_reload: \(refusedStatus)"); return }
            #expect(lastRefused["outcome"] == .string("refused") && lastRefused["errors"] == .number(1), "\(lastRefused)")
            #expect(lastRefused["first_error"]?.stringValue?.hasSuffix("10-deficiency.yaml:262:11: error: unknown name 'b12.active_reslt' (did you mean 'b12.active_result'?)") == true, "\(lastRefused)")

            // A rule change that breaks a vignette is refused by the rule tests.
            try original.replacingOccurrences(of: "value: 25 pmol/L", with: "value: 15 pmol/L").write(toFile: file, atomically: true, encoding: .utf8)
            let failing = try await request(#"{"command": "reload"}"#, to: control)
            #expect(failing["status"] == .string("error") && failing["errors"]?.canonicalText.contains("rule test failed") == true)

            // A valid change goes live.
            try original.replacingOccurrences(of: "owner: Maternity haematology clinical lead", with: "owner: Haematology lead").write(toFile: file, atomically: true, encoding: .utf8)
            let ok = try await request(#"{"command": "reload", "expect": "\#(hash)"}"#, to: control)
            #expect(ok["status"] == .string("ok"))
            let after = try await request(#"{"command": "status"}"#, to: control)
            guard case .object(let live)? = after["ruleset"] else { Issue.record("no ruleset"); return }
            #expect(live["hash"]?.stringValue != hash)
            guard case .object(let lastLive)? = after["last_reload"] else { Issue.record("no last_reload: \(after)"); return }
            #expect(lastLive["outcome"] == .string("live") && lastLive["hash"] == live["hash"] && lastLive["at"]?.stringValue != nil)
        }
    }

    @Test func stateSurvivesARestart() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = testConfiguration(directory: scratch.path)
        let firstRun = try await withRunningDaemon(configuration) { daemon -> [JSONObject] in
            _ = try await send([deficientEvent(id: "r-1", patient: "p-1")], to: daemon.endpoints.ingest)
            try await waitForEvaluated(1, control: daemon.endpoints.control)
            return try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
        }
        #expect(!firstRun.isEmpty)
        try await withRunningDaemon(configuration) { daemon in
            #expect(try await replayAll(clinic: "north", replay: daemon.endpoints.replay).map { $0["seq"] } == firstRun.map { $0["seq"] })
            #expect(try await send([deficientEvent(id: "r-1", patient: "p-1")], to: daemon.endpoints.ingest).map(\.status) == ["duplicate"])
            // The same condition after the restart is not published again as new; a change continues the sequence.
            _ = try await send([deficientEvent(id: "r-2", patient: "p-1", value: 90, time: "2026-11-21T09:00:00Z")], to: daemon.endpoints.ingest)
            try await waitForEvaluated(1, control: daemon.endpoints.control)
            let all = try await replayAll(clinic: "north", replay: daemon.endpoints.replay)
            let seqs = all.compactMap { alert -> Int? in
                if case .number(let n)? = alert["seq"] { return Int(n) }
                return nil
            }
            #expect(seqs.count > firstRun.count && seqs == Array(1...max(1, seqs.count)))
            #expect(all.dropFirst(firstRun.count).allSatisfy { $0["status"] != .string("firing") || $0["rule"] != .string("b12.deficiency-alert") })
        }
    }
}

@Suite(.timeLimit(.minutes(10))) struct SubscriberCursorTests {
    /// A cursor saved while delivering includes the alert being delivered: a restarted subscriber resumes after it.
    @Test func aSavedCursorResumesWithoutRepeats() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let e = daemon.endpoints
            _ = try await send([deficientEvent(id: "c-1", patient: "p-1")], to: e.ingest)
            try await waitForEvaluated(1, control: e.control)
            let (firstCount, saved) = try await onThread { () -> (Int, Subscriber.Cursor) in
                let subscriber = try Subscriber(context: try ZMQContext(), alerts: e.alerts, replay: e.replay, clinic: "north")
                var saved = Subscriber.Cursor()
                var count = 0
                try subscriber.catchUp { _ in
                    count += 1
                    saved = subscriber.cursor  // what `cobalt subscribe --cursor` writes at this moment
                }
                return (count, saved)
            }
            #expect(firstCount > 0 && saved.last == Int64(firstCount))
            let again = try await onThread { () -> Int in
                let subscriber = try Subscriber(context: try ZMQContext(), alerts: e.alerts, replay: e.replay, clinic: "north", cursor: saved)
                var count = 0
                try subscriber.catchUp { _ in count += 1 }
                return count
            }
            #expect(again == 0)
            // A cursor ahead of the stream (a database restored from a backup keeps its epoch): refused, not taken
            // as having seen the alerts that will be numbered up to its `last`.
            let ahead = Subscriber.Cursor(epoch: saved.epoch, last: saved.last + 50, clinic: "north")
            let refused = try await onThread { () -> String in
                let subscriber = try Subscriber(context: try ZMQContext(), alerts: e.alerts, replay: e.replay, clinic: "north", cursor: ahead)
                do {
                    try subscriber.catchUp { _ in }
                    return "caught up"
                } catch {
                    return "\(error)"
                }
            }
            #expect(refused.contains("ends at \(saved.last)"), "\(refused)")
        }
    }
}

/// Subscribes to 999 made-up clinics and one invalid clinic id on one connection, and to one of the same topics
/// on a second; closes the first, then subscribes to a real clinic, then closes the second. Expects: every made-up
/// clinic heard while subscribed, the invalid one never, the made-up clinics forgotten once dropped except the one
/// still held (until it is dropped too), and the real clinic heard. `security`: CURVE for every socket (a subscriber key allowed every clinic).
func subscriptionsComeAndGo(alerts: String, security: ClientSecurity?) async throws {
    let heard = try await onThread { () -> [String] in
        let context = try ZMQContext()
        func subscriber(_ topics: [String]) throws -> ZMQSocket { try CobaltDaemonTests.subscriber(context, alerts, security: security, topics) }
        // The invalid id first (999 more fill the 1,000 clinics noted, so the last is heard only if it was not noted).
        let passing = try subscriber(["clinic/bad\u{1}id/"] + (0..<999).map { "clinic/made-up-\($0)/" })
        let holder = try subscriber(["clinic/made-up-5/"])  // the same topic: counted per connection
        let probe = try subscriber(["clinic/"])
        func topics(for duration: Duration) throws -> Set<String> { try topicsHeard(on: probe, for: duration) }
        let deadline = ContinuousClock.now + .seconds(60)
        var seen: Set<String> = []
        while !seen.contains("clinic/made-up-998/heartbeat"), ContinuousClock.now < deadline { seen.formUnion(try topics(for: .milliseconds(200))) }
        seen.formUnion(try topics(for: .milliseconds(600)))  // three more rounds of heartbeats, whole
        #expect(seen.contains("clinic/made-up-998/heartbeat"))
        #expect(!seen.contains { $0.contains("bad") }, "\(seen.filter { $0.contains("bad") })")
        passing.close()
        // Until its clinics are forgotten (their unsubscriptions come up as its connection closes), but for the one
        // the holder keeps: a subscription made while 1,000 clinics are noted is not noted, by design (the bound).
        while seen != ["clinic/made-up-5/heartbeat"], ContinuousClock.now < deadline { seen = try topics(for: .milliseconds(600)) }
        let real = try subscriber(["clinic/real-clinic/"])
        // Both in one window (a busy machine may delay a round of heartbeats past a window: then the next one).
        while !seen.isSuperset(of: ["clinic/made-up-5/heartbeat", "clinic/real-clinic/heartbeat"]), ContinuousClock.now < deadline {
            seen = try topics(for: .milliseconds(600))
        }
        #expect(seen == ["clinic/made-up-5/heartbeat", "clinic/real-clinic/heartbeat"], "\(seen.sorted().prefix(5))")
        // The holder leaves too: its clinic is forgotten (each connection's unsubscription comes up, not only the last).
        holder.close()
        while seen != ["clinic/real-clinic/heartbeat"], ContinuousClock.now < deadline { seen = try topics(for: .milliseconds(600)) }
        for socket in [real, probe] { socket.close() }
        return seen.sorted()
    }
    #expect(heard == ["clinic/real-clinic/heartbeat"], "\(heard.prefix(5))")
}

/// A SUB socket on `alerts` (with CURVE when `security` is given) subscribed to `topics`, reading with a 200 ms
/// timeout: for the heartbeat tests.
func subscriber(_ context: ZMQContext, _ alerts: String, security: ClientSecurity? = nil, _ topics: [String]) throws -> ZMQSocket {
    let socket = try ZMQSocket(context: context, type: .sub)
    try security?.apply(to: socket)
    try socket.set(.receiveTimeout, 200)
    try socket.connect(alerts)
    for topic in topics { try socket.set(.subscribe, Array(topic.utf8)) }
    return socket
}

/// The topics `probe` hears within `duration`.
func topicsHeard(on probe: ZMQSocket, for duration: Duration) throws -> Set<String> {
    var seen: Set<String> = []
    let end = ContinuousClock.now + duration
    while ContinuousClock.now < end {
        if let message = try probe.receive(dontWait: false) { seen.insert(String(decoding: message.frames[0], as: UTF8.self)) }
    }
    return seen
}
