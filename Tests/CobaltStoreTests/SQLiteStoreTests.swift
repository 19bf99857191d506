import CobaltStore
import Foundation
import GRDB
import Synchronization
import Testing

/// A store in a fresh temporary directory, removed afterwards.
struct TemporaryStore {
    let directory: URL
    var path: String { directory.appendingPathComponent("cobalt.db").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cobalt-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func open() throws -> SQLiteStore { try SQLiteStore(path: path) }

    /// Creates the database as it was after `migration` and writes rows into it, as an older Cobalt would have.
    func createOlder(upTo migration: String, _ rows: @Sendable @escaping (Database) throws -> Void) async throws {
        try SQLiteStore.createDatabase(at: path, upTo: migration)
        try await DatabaseQueue(path: path).write(rows)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

func incoming(_ id: String, patient: String = "p1", clinic: String = "north", digest: String? = nil) -> IncomingEvent {
    IncomingEvent(id: id, digest: digest ?? "d-\(id)", patient: patient, clinic: clinic, time: 0, body: "{\"id\":\"\(id)\"}")
}

func change(_ rule: String, _ status: AlertChange.Status, patient: String = "p1", clinic: String = "north", digest: String = "x") -> AlertChange {
    AlertChange(patient: patient, rule: rule, clinic: clinic, alertID: "a-\(patient)-\(rule)", status: status, digest: digest, body: "{\"rule\":\"\(rule)\"}")
}

@Suite struct SQLiteStoreTests {
    /// An acknowledgement promises durability: every commit must be fsynced (GRDB's WAL default is NORMAL).
    @Test func commitsAreDurableAgainstPowerLoss() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        #expect(try await store.writerSynchronousMode() == 2)
        _ = try store.journal([incoming("e1")])
        #expect(try await store.writerSynchronousMode() == 2)
    }

    @Test func journalIsIdempotentByIDAndHandsBackTheBodyOfATakenID() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        let first = try store.journal([incoming("e1"), incoming("e2")])
        #expect(first == [.accepted(seq: 1), .accepted(seq: 2)])
        let again = try store.journal([incoming("e1"), incoming("e2", digest: "other"), incoming("e3")])
        #expect(again == [.duplicate(seq: 1), .sameID(seq: 2, storedBody: #"{"id":"e2"}"#), .accepted(seq: 3)])
        // Twice in one transaction, then after duplicates and conflicts: seqs stay gap-free.
        #expect(try store.journal([incoming("e4"), incoming("e4"), incoming("e4", digest: "other"), incoming("e5")])
            == [.accepted(seq: 4), .duplicate(seq: 4), .sameID(seq: 4, storedBody: #"{"id":"e4"}"#), .accepted(seq: 5)])
        #expect(try await store.counts() == StoreCounts(events: 5, unevaluated: 5, alerts: 0))
        // A duplicate or a conflict joins no patient's events, whichever patient it names.
        _ = try store.journal([incoming("e1"), incoming("e2", patient: "p2", digest: "other"), incoming("e6")])
        #expect(try await store.events(patients: ["p1"], through: 10).map(\.id) == ["e1", "e2", "e3", "e4", "e5", "e6"])
        #expect(try await store.events(patients: ["p2"], through: 10).isEmpty)
    }

    /// An id is matched whole, bytes and length: one holding a NUL (ingest refuses them now) was stored whole but
    /// looked up cut short at the NUL, so its resend failed the whole batch it came in.
    @Test func anIDIsFoundByAllOfItsBytes() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        #expect(try store.journal([incoming("n"), incoming("n\u{0}x", digest: "dx")]) == [.accepted(seq: 1), .accepted(seq: 2)])
        let again = try store.journal([incoming("n\u{0}x", digest: "dx"), incoming("n\u{0}x", digest: "other"), incoming("ok")])
        #expect(again.count == 3 && again[0] == .duplicate(seq: 2) && again[2] == .accepted(seq: 3), "\(again)")
        guard case .sameID(seq: 2, _)? = again.dropFirst().first else { Issue.record("\(again)"); return }
    }

    /// Quarantine and audit texts keep what follows a NUL: GRDB's string binding ended them at the first one (a
    /// rejected message's payload, an id, an audit detail were cut short without a sign). A NUL is stored as ␀.
    @Test func quarantineAndAuditKeepTextAfterANUL() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        try store.quarantine(
            [QuarantinedEvent(time: 1, id: "q\u{0}tail", code: 400, reason: "r\u{0}r", errors: "[]", sender: "s\u{0}s", payload: "{\"a\":\u{0}1} and more")],
            keeping: 10)
        let kept = try #require(try await store.quarantined(limit: 10).first)
        #expect(kept.id == "q\u{2400}tail" && kept.reason == "r\u{2400}r" && kept.sender == "s\u{2400}s")
        #expect(kept.payload == "{\"a\":\u{2400}1} and more")
        try await store.audit([AuditEntry(time: 1, actor: "a\u{0}b", action: "control.unknown", detail: "command=status\u{0}-x")])
        let entry = try #require(try await store.auditTrail(limit: 10).first)
        #expect(entry.actor == "a\u{2400}b" && entry.detail == "command=status\u{2400}-x")
    }

    /// The quarantine keeps the most recent `keeping` messages, across writes: a sender of garbage cannot fill the
    /// disk the journal needs (1,000 messages of 200 KB grew a database by 73 MB in 2.6 s).
    @Test func theQuarantineKeepsTheMostRecentMessages() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        func rejected(_ n: Int) -> QuarantinedEvent {
            QuarantinedEvent(time: Double(n), id: "q\(n)", code: 400, reason: "r", errors: "[]", sender: nil, payload: "p")
        }
        try store.quarantine((1...4).map(rejected), keeping: 3)
        #expect(try await store.quarantined(limit: 10).map(\.id) == ["q4", "q3", "q2"])
        try store.quarantine([rejected(5)], keeping: 3)
        try store.quarantine((6...7).map(rejected), keeping: 3)
        #expect(try await store.quarantined(limit: 10).map(\.id) == ["q7", "q6", "q5"])
        try store.quarantine([rejected(8)], keeping: 5)
        #expect(try await store.quarantined(limit: 10).map(\.id) == ["q8", "q7", "q6", "q5"])
    }

    /// `status` counts without scanning (max seq, the clinics' last seqs); they must equal what a scan counts after
    /// duplicates, conflicts, alerts in two clinics and a watermark that trails.
    @Test func countsWithoutScanningEqualCountsByScanning() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        #expect(try await store.counts() == StoreCounts(events: 0, unevaluated: 0, alerts: 0))
        _ = try store.journal([incoming("e1"), incoming("e2", patient: "p2", clinic: "south"), incoming("e3")])
        _ = try store.journal([incoming("e1"), incoming("e2", digest: "other"), incoming("e4"), incoming("e5", patient: "p2")])
        _ = try await store.commitEvaluations(
            [(1, [change("r1", .firing)]), (2, [change("r1", .firing, patient: "p2", clinic: "south")]),
             (3, [change("r1", .updated, digest: "y"), change("r2", .firing)])],
            through: 3, at: "2026-11-20T09:00:00.000Z")
        let counted = try await store.counts()
        let scanned = try await DatabaseQueue(path: temp.path).read { db in
            StoreCounts(
                events: try Int64.fetchOne(db, sql: "SELECT count(*) FROM events") ?? -1,
                unevaluated: try Int64.fetchOne(db, sql: "SELECT count(*) FROM events WHERE seq > (SELECT through FROM evaluation_progress)") ?? -1,
                alerts: try Int64.fetchOne(db, sql: "SELECT count(*) FROM alert_log") ?? -1)
        }
        #expect(scanned == StoreCounts(events: 5, unevaluated: 2, alerts: 4))
        #expect(counted == scanned)
        // What the pipeline has evaluated may be ahead of the stored watermark.
        #expect(try await store.counts(evaluatedThrough: 5).unevaluated == 0)
    }

    @Test func everythingSurvivesReopeningAndTheEpochIsStable() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let epoch: String
        do {
            let store = try temp.open()
            epoch = store.epoch
            _ = try store.journal([incoming("e1"), incoming("e2", patient: "p2")])
            _ = try await store.commitEvaluations([(1, [change("r1", .firing)])], through: 1, at: "2026-11-20T09:00:00.000Z")
        }
        let reopened = try temp.open()
        #expect(reopened.epoch == epoch)
        #expect(try await reopened.unevaluated(after: 0, limit: 10).map(\.id) == ["e2"])
        #expect(try await reopened.lastSequences() == ["north": 1])
        #expect(try await reopened.events(patient: "p1", through: 10).map(\.seq) == [1])
    }

    @Test func sequencesArePerClinicAndGapFree() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        _ = try store.journal((1...4).map { incoming("e\($0)") })
        let published = try await store.commitEvaluations([
            (1, [change("r1", .firing), change("r1", .firing, patient: "p9", clinic: "south")]),
            (2, [change("r2", .firing)]),
            (3, []),
        ], through: 3, at: "2026-11-20T09:00:00.000Z")
        #expect(published.map { "\($0.clinic)#\($0.seq)" } == ["north#1", "south#1", "north#2"])
        let more = try await store.commitEvaluations([(4, [change("r1", .resolved)])], through: 4, at: "2026-11-20T09:00:00.000Z")
        #expect(more.map(\.seq) == [3])
        #expect(try await store.unevaluated(after: 0, limit: 10).isEmpty)
        let json = try #require(published.first?.json)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        #expect(object["seq"] as? Int == 1 && object["epoch"] as? String == store.epoch && object["status"] as? String == "firing")
        #expect(object["rule"] as? String == "r1" && object["time"] is String)
    }

    @Test func alertStateFollowsTheLifecycle() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        _ = try store.journal((1...3).map { incoming("e\($0)") })
        _ = try await store.commitEvaluations([(1, [change("r1", .firing, digest: "v1"), change("r2", .firing)])], through: 1, at: "2026-11-20T09:00:00.000Z")
        var update = change("r1", .updated, digest: "v2")
        update.body = "{\"rule\":\"r1\",\"summary\":\"changed\"}"
        _ = try await store.commitEvaluations([(2, [update])], through: 2, at: "2026-11-20T09:00:00.000Z")
        #expect(try await store.alertStates(patient: "p1").map { "\($0.rule)=\($0.digest)" } == ["r1=v2", "r2=x"])
        #expect(try await store.alertStates(patient: "p1").map(\.body) == [update.body, "{\"rule\":\"r2\"}"])
        _ = try await store.commitEvaluations([(3, [change("r2", .resolved)])], through: 3, at: "2026-11-20T09:00:00.000Z")
        #expect(try await store.alertStates(patient: "p1").map(\.rule) == ["r1"])
        // The log keeps every change with the event that caused it, for whoever audits an alert.
        let log = try await DatabaseQueue(path: temp.path).read { db in
            try Row.fetchAll(db, sql: "SELECT seq, alert_id, status, event_seq FROM alert_log ORDER BY seq").map {
                "\($0["seq"] as Int64) \($0["alert_id"] as String) \($0["status"] as String) \($0["event_seq"] as Int64)"
            }
        }
        #expect(log == ["1 a-p1-r1 firing 1", "2 a-p1-r2 firing 1", "3 a-p1-r1 updated 2", "4 a-p1-r2 resolved 3"])
    }

    @Test func replayPagesAfterASequence() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        _ = try store.journal([incoming("e1")])
        _ = try await store.commitEvaluations([(1, (1...5).map { change("r\($0)", .firing) })], through: 1, at: "2026-11-20T09:00:00.000Z")
        let page = try await store.alerts(clinic: "north", after: 1, limit: 2)
        #expect(page.alerts.map(\.seq) == [2, 3] && page.more)
        let last = try await store.alerts(clinic: "north", after: 3, limit: 2)
        #expect(last.alerts.map(\.seq) == [4, 5] && !last.more)
        #expect(try await store.alerts(clinic: "nobody", after: 0, limit: 2).alerts.isEmpty)
    }

    /// A database written before the evaluation watermark (a flag per event) opens with the watermark just below
    /// its first unevaluated event, so nothing is evaluated twice or skipped.
    @Test func theEvaluatedFlagsOfAnOlderDatabaseBecomeTheWatermark() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        try await temp.createOlder(upTo: "v2-quarantine-audit") { db in
            for (seq, evaluated) in [(1, 1), (2, 1), (3, 0), (4, 0)] {
                try db.execute(
                    sql: "INSERT INTO events (seq, id, digest, patient, clinic, time, body, received_at, evaluated) VALUES (?, ?, 'd', 'p1', 'north', 0, '{}', 0, ?)",
                    arguments: [seq, "e\(seq)", evaluated])
            }
        }
        let store = try temp.open()
        #expect(try await store.evaluatedThrough() == 2)
        #expect(try await store.unevaluated(after: 0, limit: 10).map(\.id) == ["e3", "e4"])
        #expect(try await store.counts().unevaluated == 2)
        _ = try await store.commitEvaluations([(3, [])], through: 3, at: "2026-11-20T09:00:00.000Z")
        #expect(try await store.unevaluated(after: 0, limit: 10).map(\.id) == ["e4"])
        // The watermark never moves back.
        _ = try await store.commitEvaluations([], through: 1, at: "2026-11-20T09:00:00.000Z")
        #expect(try await store.evaluatedThrough() == 3)
    }

    /// Open alerts written before severity had its own column get it from their JSON body.
    @Test func openAlertsOfAnOlderDatabaseGetTheirSeverity() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        try await temp.createOlder(upTo: "v3-evaluation-watermark") { db in
            try db.execute(sql: """
                INSERT INTO alert_state (patient, rule, clinic, alert_id, digest, body)
                VALUES ('p1', 'r1', 'north', 'a1', 'd', '{"rule":"r1","severity":"critical"}'), ('p1', 'r2', 'north', 'a2', 'd', '{}');
                INSERT INTO alert_log (clinic, seq, alert_id, status, event_seq, body) VALUES
                    ('north', 1, 'a1', 'firing', 1, '{"seq":1,"epoch":"e","status":"firing","time":"t","rule":"r1","severity":"critical"}'),
                    ('north', 2, 'a2', 'firing', 1, '{"seq":2,"epoch":"e","status":"firing","time":"t"}');
                INSERT INTO clinic_sequence (clinic, last) VALUES ('north', 2);
                """)
        }
        let store = try temp.open()
        #expect(try await store.alertStates(patient: "p1").map(\.severity) == ["critical", ""])
        var fresh = change("r3", .firing)
        fresh.severity = "warning"
        _ = try await store.commitEvaluations([(0, [fresh])], through: 0, at: "2026-11-20T09:00:00.000Z")
        #expect(try await store.alertStates(patient: "p1").map(\.severity) == ["critical", "", "warning"])
    }

    /// Open alerts written when the state held a second copy of the body get it from their latest firing or
    /// update in the log, in the clinic they were last published to (a patient can move); a state whose row is not in the log stops the upgrade instead of being guessed.
    @Test func openAlertsOfAnOlderDatabaseFindTheirBodyInTheLog() async throws {
        func olderDatabase(withLogRows: Bool) async throws -> TemporaryStore {
            let temp = try TemporaryStore()
            try await temp.createOlder(upTo: "v4-alert-severity") { db in
                try db.execute(sql: """
                    INSERT INTO alert_state (patient, rule, clinic, alert_id, digest, body, severity) VALUES
                        ('p1', 'r1', 'south', 'a1', 'd3', '{"rule":"r1","v":3}', 'warning'),
                        ('p1', 'r2', 'north', 'a2', 'd', '{}', 'info')
                    """)
                guard withLogRows else { return }
                try db.execute(sql: """
                    INSERT INTO alert_log (clinic, seq, alert_id, status, event_seq, body) VALUES
                        ('north', 1, 'a1', 'firing', 1, '{"seq":1,"epoch":"e","status":"firing","time":"t","rule":"r1","v":1}'),
                        ('south', 1, 'a1', 'updated', 2, '{"seq":1,"epoch":"e","status":"updated","time":"t","rule":"r1","v":2}'),
                        ('south', 2, 'a1', 'updated', 3, '{"seq":2,"epoch":"e","status":"updated","time":"t","rule":"r1","v":3}'),
                        ('north', 2, 'a2', 'firing', 2, '{"seq":2,"epoch":"e","status":"firing","time":"t"}'),
                        ('north', 3, 'a0', 'resolved', 2, '{"seq":3,"epoch":"e","status":"resolved","time":"t","rule":"r0"}');
                    INSERT INTO clinic_sequence (clinic, last) VALUES ('north', 3), ('south', 2);
                    """)
            }
            return temp
        }
        let temp = try await olderDatabase(withLogRows: true)
        defer { temp.remove() }
        let store = try temp.open()
        let states = try await store.alertStates(patient: "p1")
        #expect(states.map { "\($0.rule) \($0.clinic) \($0.digest) \($0.severity) \($0.body)" } == [
            "r1 south d3 warning {\"rule\":\"r1\",\"v\":3}", "r2 north d info {}",
        ])
        _ = try await store.commitEvaluations([(0, [change("r1", .resolved, clinic: "south")])], through: 0, at: "2026-11-20T09:00:00.000Z")
        #expect(try await store.alertStates(patient: "p1").map(\.rule) == ["r2"])

        let broken = try await olderDatabase(withLogRows: false)
        defer { broken.remove() }
        #expect(throws: StoreInconsistency.self) { _ = try broken.open() }
    }

    /// A journal written with an index of (patient, seq) gets each event's link to its patient's previous one and
    /// each patient's last event; events journaled afterwards continue the chains.
    @Test func eventsOfAnOlderJournalAreChainedByPatient() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        try await temp.createOlder(upTo: "v5-alert-state-references-log") { db in
            for (seq, patient) in ["p1", "p2", "p1", "p3", "p1", "p2"].enumerated() {
                try db.execute(
                    sql: "INSERT INTO events (seq, id, digest, patient, clinic, time, body, received_at) VALUES (?, ?, 'd', ?, 'north', 0, '{}', 0)",
                    arguments: [seq + 1, "e\(seq + 1)", patient])
            }
        }
        let store = try temp.open()
        #expect(try await store.events(patients: ["p1"], through: 6).map(\.id) == ["e1", "e3", "e5"])
        #expect(try await store.events(patients: ["p2", "p3"], through: 6).map(\.id) == ["e2", "e4", "e6"])
        #expect(try await store.events(patients: ["p1", "p2"], through: 4).map(\.id) == ["e1", "e2", "e3"])
        #expect(try store.journal([incoming("e7", patient: "p3"), incoming("e8", patient: "p1"), incoming("e9", patient: "p4")])
            == [.accepted(seq: 7), .accepted(seq: 8), .accepted(seq: 9)])
        #expect(try await store.events(patients: ["p1"], through: 9).map(\.id) == ["e1", "e3", "e5", "e8"])
        #expect(try await store.events(patients: ["p3", "p4"], through: 9).map(\.id) == ["e4", "e7", "e9"])
        #expect(try await store.events(patients: ["p1", "p3"], through: 7).map(\.id) == ["e1", "e3", "e4", "e5", "e7"])
    }

    /// Events journaled without their chain (an older Cobalt opened on the upgraded database, or a hand edit) must
    /// not go missing from their patients' histories: the chains are rebuilt when the store opens.
    @Test func eventsJournaledWithoutTheirChainAreChainedWhenTheStoreOpens() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        do {
            let store = try temp.open()
            _ = try store.journal([incoming("e1"), incoming("e2", patient: "p2"), incoming("e3")])
        }
        try await DatabaseQueue(path: temp.path).write { db in
            try db.execute(sql: """
                INSERT INTO events (seq, id, digest, patient, clinic, time, body, received_at) VALUES
                    (4, 'e4', 'd', 'p1', 'north', 0, '{}', 0), (5, 'e5', 'd', 'p3', 'north', 0, '{}', 0)
                """)
        }
        let store = try temp.open()
        #expect(try await store.events(patients: ["p1"], through: 10).map(\.id) == ["e1", "e3", "e4"])
        #expect(try await store.events(patients: ["p3", "p2"], through: 10).map(\.id) == ["e2", "e5"])
        _ = try store.journal([incoming("e6"), incoming("e7", patient: "p3")])
        #expect(try await store.events(patients: ["p1", "p3"], through: 10).map(\.id) == ["e1", "e3", "e4", "e5", "e6", "e7"])
        // A link damaged by hand to point at another patient's event ends the walk there: never another patient's data.
        try await DatabaseQueue(path: temp.path).write { db in try db.execute(sql: "UPDATE events SET prev_seq = 2 WHERE id = 'e3'") }
        #expect(try await store.events(patients: ["p1"], through: 10).map(\.id) == ["e3", "e4", "e6"])
    }

    /// A cold load finds each event by its seq: no step of the query may scan the journal (it grows without bound).
    @Test func patientsLoadWithoutScanningTheJournal() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        _ = try store.journal((1...50).map { incoming("e\($0)", patient: "p\($0 % 7)") })
        let plan = try await DatabaseQueue(path: temp.path).read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN \(SQLiteStore.eventsOfPatientsSQL(3))", arguments: ["p1", "p2", "p3", 40])
                .map { $0["detail"] as String }
        }
        #expect(plan.filter { $0.hasPrefix("SCAN") }.allSatisfy { $0 == "SCAN c" || $0 == "SCAN chain" }, "\(plan)")
        #expect(plan.filter { $0.hasPrefix("SEARCH e USING INTEGER PRIMARY KEY") }.count == 2, "\(plan)")
        #expect(try await store.events(patients: ["p1", "p2", "p3"], through: 40).count == 18)
    }

    /// The store keeps an open alert's body only in the log, with the published fields in front; taking them off
    /// gives back exactly the body that was published.
    @Test func anAlertBodyComesBackFromItsPublishedJSON() {
        for body in ["{}", "{\"rule\":\"r1\",\"summary\":\"a \\\"quoted\\\" ,\\\"time\\\":\\\" text\"}", "{\"summary\":\"B12 18 µmol/L — día\"}"] {
            let published = SQLiteStore.publishedJSON(body, seq: 42, epoch: "0f6c", status: .updated, time: "2026-11-20T09:00:00.000Z")
            #expect(SQLiteStore.alertBody(published: published) == body)
        }
        #expect(SQLiteStore.alertBody(published: "{\"rule\":\"r1\"}") == nil)
        #expect(SQLiteStore.alertBody(published: "{\"seq\":1,\"epoch\":\"e\",\"status\":\"firing\",\"time\":\"t\"]") == nil)
        #expect(SQLiteStore.alertBody(published: "{\"seq\":1,\"epoch\":\"e\",\"status\":\"firing\",\"time\":\"t\"") == nil)
        #expect(SQLiteStore.alertBody(published: "{\"seq\":1,\"epoch\":\"e\",\"status\":\"firing\"}") == nil)
    }

    /// Patients not in memory are loaded a chunk at a time: events of several patients in journal order, and
    /// their alert states by patient and rule.
    @Test func severalPatientsLoadInOneQuery() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        _ = try store.journal([
            incoming("a1", patient: "pa"), incoming("b1", patient: "pb"), incoming("c1", patient: "pc"), incoming("a2", patient: "pa"),
            incoming("b2", patient: "pb"),
        ])
        #expect(try await store.events(patients: ["pb", "pa", "nobody"], through: 4).map(\.id) == ["a1", "b1", "a2"])
        #expect(try await store.events(patients: [], through: 10).isEmpty)
        _ = try await store.commitEvaluations(
            [(1, [change("r2", .firing, patient: "pb"), change("r1", .firing, patient: "pb"), change("r1", .firing, patient: "pc")])],
            through: 1, at: "2026-11-20T09:00:00.000Z")
        #expect(try await store.alertStates(patients: ["pc", "pb", "pa"]).map { "\($0.patient)/\($0.rule)" } == ["pb/r1", "pb/r2", "pc/r1"])
        #expect(try await store.alertStates(patient: "pa").isEmpty)
    }

    /// Events of about 1 KiB each, `count` of them from `first`.
    private func bulky(_ first: Int, _ count: Int) -> [IncomingEvent] {
        (first..<first + count).map { i in
            IncomingEvent(id: "e\(i)", digest: "d\(i)", patient: "p\(i % 7)", clinic: "north", time: 0, body: String(repeating: "x", count: 1_000))
        }
    }

    private func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// Commits are copied into the database file by the checkpoint thread, well before the writer's own
    /// checkpoint threshold (1,000 pages) is reached: without that thread, these 300 KiB would stay in the log.
    @Test func committedPagesReachTheDatabaseFileWithoutWaitingForTheWriter() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        let before = fileSize(temp.path)
        for batch in 0..<10 { _ = try store.journal(bulky(batch * 30, 30)) }
        let deadline = ContinuousClock.now + .seconds(60)  // the checkpoint thread may be descheduled for a while
        while fileSize(temp.path) < before + 300_000, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(fileSize(temp.path) >= before + 300_000, "database file \(fileSize(temp.path)) bytes, \(before) before")
        #expect(fileSize(temp.path + "-wal") < 4_096 * 1_000)
        _ = store
    }

    /// The log does not grow with the data written: the writer's backstop checkpoint lets it start over.
    @Test func theLogStaysBoundedUnderContinuousCommits() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        var largest = 0
        for batch in 0..<100 {  // 100 transactions of 200 KiB, back to back: 20 MiB in all
            _ = try store.journal(bulky(batch * 200, 200))
            largest = max(largest, fileSize(temp.path + "-wal"))
        }
        #expect(try await store.lastJournalSequence() == 20_000)
        #expect(largest < 10_000_000, "the log reached \(largest) bytes")
        #expect(fileSize(temp.path) > 20_000_000)
    }

    /// A re-evaluation records its rule set only if the rules are still the ones it ran under when the record's
    /// transaction runs (a reload may have announced a swap since the pipeline last looked); a forgetting after it
    /// wins.
    @Test func theReevaluatedRuleSetIsRecordedOnlyIfStillCurrentInsideTheTransaction() async throws {
        let temp = try TemporaryStore()
        defer { temp.remove() }
        let store = try temp.open()
        let asked = Mutex(0)
        #expect(try await store.recordReevaluated(ruleSet: "sha256:old") { asked.withLock { $0 += 1 }; return false } == false)
        #expect(asked.withLock { $0 } == 1)
        #expect(try await store.reevaluatedRuleSet() == nil)
        #expect(try await store.recordReevaluated(ruleSet: "sha256:new") { true })
        #expect(try await store.reevaluatedRuleSet() == "sha256:new")
        #expect(try await store.recordReevaluated(ruleSet: "sha256:newer") { false } == false)
        #expect(try await store.reevaluatedRuleSet() == "sha256:new", "a declined record leaves the last one")
        try await store.forgetReevaluated()
        #expect(try await store.reevaluatedRuleSet() == nil)
    }

    /// SQLite goes on writing a database file whose name was deleted, or replaced by another file (a backup moved
    /// over it): every commit would land where no start will look, and an acknowledgement would promise what a
    /// restart loses. The store refuses to commit instead.
    @Test func aDatabaseFileDeletedOrReplacedUnderTheStoreIsNotCommittedTo() async throws {
        for replaced in [false, true] {
            let temp = try TemporaryStore()
            defer { temp.remove() }
            let store = try temp.open()
            #expect(try store.journal([incoming("e1")]) == [.accepted(seq: 1)])
            if replaced {
                let copy = temp.path + ".copy"
                try FileManager.default.copyItem(atPath: temp.path, toPath: copy)
                #expect(rename(copy, temp.path) == 0)
            } else {
                try FileManager.default.removeItem(atPath: temp.path)
            }
            #expect(throws: DatabaseFileGone.self, replaced ? "replaced" : "deleted") { try store.journal([incoming("e2")]) }
            await #expect(throws: DatabaseFileGone.self) { try await store.forgetReevaluated() }
        }
    }

    /// SQLite's log of a failed system call names the call, the file and the errno; Debian's SQLite leaves the
    /// errno's text out, which the daemon's log adds.
    @Test func aFailedSystemCallIsDescribedWithItsErrno() {
        #expect(SQLiteStore.describingErrno("os_unix.c:4812: (28) write(/var/lib/cobalt/cobalt.db-shm) - ")
            == "os_unix.c:4812: (28) write(/var/lib/cobalt/cobalt.db-shm) - No space left on device")
        #expect(SQLiteStore.describingErrno("os_unix.c:44: (30) open(/x/cobalt.db-wal)")
            == "os_unix.c:44: (30) open(/x/cobalt.db-wal) - Read-only file system")
        #expect(SQLiteStore.describingErrno("os_unix.c:1: (2) open(/x) - No such file or directory")
            == "os_unix.c:1: (2) open(/x) - No such file or directory", "already described")
        #expect(SQLiteStore.describingErrno("os_unix.c: something else") == "os_unix.c: something else")
    }
}
