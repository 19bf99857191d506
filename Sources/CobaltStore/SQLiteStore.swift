import Foundation
import GRDB
import Synchronization
#if canImport(GRDBSQLite)
import GRDBSQLite
#else
import SQLite3
#endif

/// The embedded store: SQLite through GRDB, WAL mode, `synchronous=FULL` so that a committed transaction
/// survives power loss. Writes are batched by the callers (group commit).
package final class SQLiteStore: CobaltStore {
    private let pool: DatabasePool
    private let checkpointer: Checkpointer
    package let epoch: String

    /// Opens (creating and migrating if needed) the database at `path`.
    package init(path: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets `synchronous = NORMAL` when it enables WAL on the writer connection (after prepareDatabase):
        // durable against a process crash but not a power loss. An ACK promises durability, so set FULL again on
        // the one writer connection, outside any transaction.
        //
        // Checkpoints: a thread of their own copies the log into the database soon after commits (``Checkpointer``);
        // the writer's automatic checkpoint is only the backstop that lets the log start over.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.checkpointPages)")
        }
        try Self.migrator.migrate(pool)
        try pool.write(Self.repairChains)
        epoch = try pool.write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'") { return existing }
            let fresh = UUID().uuidString.lowercased()
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('epoch', ?)", arguments: [fresh])
            return fresh
        }
        checkpointer = try Checkpointer(path: path)
    }

    deinit {
        checkpointer.stop()
    }

    /// A write transaction; once it has committed, the checkpoint thread is told (every write goes through here
    /// or its `async` twin, so that no commit's pages wait for the writer's backstop checkpoint).
    ///
    /// Before it commits, the transaction checks that the database file it writes is still the one at `path`
    /// (``ensureInPlace(_:)``): if it was deleted or replaced while the daemon ran, a commit would land in a file
    /// that no start will ever open again, and an acknowledgement would promise what a restart loses.
    private func write<T>(_ updates: (Database) throws -> T) throws -> T {
        let result = try pool.writeWithoutTransaction { db in try Self.transaction(db, updates) }
        checkpointer.committed()
        return result
    }

    private func write<T: Sendable>(_ updates: @Sendable @escaping (Database) throws -> T) async throws -> T {
        let result = try await pool.writeWithoutTransaction { db in try Self.transaction(db, updates) }
        checkpointer.committed()
        return result
    }

    /// One transaction, as `DatabasePool.write` runs it, checked with ``ensureInPlace(_:)`` before it commits. An
    /// I/O error says which system error caused it: SQLite's own message is "disk I/O error" for a read-only file
    /// system, a failed fsync and a vanished device alike.
    private static func transaction<T>(_ db: Database, _ updates: (Database) throws -> T) throws -> T {
        do {
            var result: T?
            try db.inTransaction {
                result = try updates(db)
                try ensureInPlace(db)
                return .commit
            }
            return result!
        } catch let error as DatabaseError where error.resultCode == .SQLITE_IOERR || error.resultCode == .SQLITE_CANTOPEN {
            // Best effort: SQLite reads errno when it reports the error, and a COMMIT's may have been overwritten.
            let code = sqlite3_system_errno(db.sqliteConnection)
            let system = code == 0 ? "" : "; the system said: \(String(cString: strerror(code))), errno \(code)"
            throw StoreSystemError("\(error) (extended code \(error.extendedResultCode.rawValue)\(system))")
        }
    }

    /// Throws when the database file this connection writes is no longer at its path — deleted (the file or its
    /// directory), or replaced (a backup moved over it): SQLite goes on writing the open file, whose name is gone.
    /// One `stat` of the path per transaction (SQLite's `SQLITE_FCNTL_HAS_MOVED`).
    static func ensureInPlace(_ db: Database) throws {
        var moved: Int32 = 0
        let code = sqlite3_file_control(db.sqliteConnection, "main", SQLITE_FCNTL_HAS_MOVED, &moved)
        guard code == SQLITE_OK, moved != 0 else { return }
        throw DatabaseFileGone(
            "the database file \(String(cString: sqlite3_db_filename(db.sqliteConnection, "main"))) was deleted or "
                + "replaced while the daemon ran: nothing more is committed to it, since a start would not find what was; move it "
                + "back if it was moved, otherwise stop the daemon and restore the database")
    }

    /// The last failed system call SQLite reported through its error log (`os_unix.c:LINE: (ERRNO) CALL(FILE) - TEXT`),
    /// once ``installErrorLog(_:)`` has run: what an open that failed with "disk I/O error" could not say.
    package static var lastSystemCallFailure: String? {
        get { systemCallFailure.withLock { $0 } }
        set { systemCallFailure.withLock { $0 = newValue } }
    }

    private static let systemCallFailure = Mutex<String?>(nil)

    /// Routes SQLite's error log to `report` — only failed system calls, which name the call, the file and the
    /// errno (no statement, no value) — and keeps the last one (``lastSystemCallFailure``). Must run before any
    /// connection is opened (SQLite's rule); a process does it once, at the start of `cobalt serve`.
    package static func installErrorLog(_ report: @escaping @Sendable (String) -> Void) {
        Database.logError = { _, message in
            guard message.hasPrefix("os_unix.c:") else { return }
            let described = describingErrno(message)
            lastSystemCallFailure = described
            report(described)
        }
    }

    /// SQLite's `os_unix.c:4812: (28) write(FILE) - ` with the errno's text at the end when SQLite left it out (as
    /// the SQLite of Debian 12 does): `… - No space left on device`.
    package static func describingErrno(_ message: String) -> String {
        let trimmed = message.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasSuffix(" -") || trimmed.hasSuffix(")"),
            let open = message.firstIndex(of: "("), let close = message[open...].firstIndex(of: ")"),
            let code = Int32(message[message.index(after: open)..<close])
        else { return message }
        return (trimmed.hasSuffix(" -") ? trimmed : trimmed + " -") + " " + String(cString: strerror(code))
    }

    /// Creates a database at `path` with the schema as it was after `migration`, to test upgrades from it.
    package static func createDatabase(at path: String, upTo migration: String) throws {
        try migrator.migrate(DatabaseQueue(path: path), upTo: migration)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    digest TEXT NOT NULL,
                    patient TEXT NOT NULL,
                    clinic TEXT NOT NULL,
                    time REAL NOT NULL,
                    body TEXT NOT NULL,
                    received_at REAL NOT NULL,
                    evaluated INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX events_by_patient ON events (patient, seq);
                CREATE INDEX events_unevaluated ON events (seq) WHERE evaluated = 0;
                CREATE TABLE alert_state (
                    patient TEXT NOT NULL,
                    rule TEXT NOT NULL,
                    clinic TEXT NOT NULL,
                    alert_id TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    body TEXT NOT NULL,
                    PRIMARY KEY (patient, rule)
                );
                CREATE TABLE alert_log (
                    clinic TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    alert_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    event_seq INTEGER NOT NULL,
                    body TEXT NOT NULL,
                    PRIMARY KEY (clinic, seq)
                );
                CREATE TABLE clinic_sequence (clinic TEXT PRIMARY KEY, last INTEGER NOT NULL);
                CREATE TABLE rulesets (hash TEXT NOT NULL, version TEXT NOT NULL, live_at REAL NOT NULL);
                """)
        }
        migrator.registerMigration("v2-quarantine-audit") { db in
            try db.execute(sql: """
                CREATE TABLE quarantine (
                    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
                    time REAL NOT NULL, event_id TEXT, code INTEGER NOT NULL, reason TEXT NOT NULL,
                    errors TEXT NOT NULL, sender TEXT, payload TEXT NOT NULL
                );
                CREATE TABLE audit (
                    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
                    time REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v3-evaluation-watermark") { db in
            // Events are evaluated strictly in journal order, so one number says which are done: every event with
            // `seq <= through`. It replaces a per-event flag (an UPDATE and an index entry per event).
            try db.execute(sql: """
                CREATE TABLE evaluation_progress (id INTEGER PRIMARY KEY CHECK (id = 1), through INTEGER NOT NULL);
                INSERT INTO evaluation_progress (id, through) VALUES (1, coalesce(
                    (SELECT min(seq) - 1 FROM events WHERE evaluated = 0), (SELECT max(seq) FROM events), 0));
                DROP INDEX events_unevaluated;
                ALTER TABLE events DROP COLUMN evaluated;
                """)
        }
        migrator.registerMigration("v4-alert-severity") { db in
            // Kept beside the body so that resolving an alert needs no JSON parsing for its metric label.
            try db.execute(sql: """
                ALTER TABLE alert_state ADD COLUMN severity TEXT NOT NULL DEFAULT '';
                UPDATE alert_state SET severity = coalesce(json_extract(body, '$.severity'), '');
                """)
        }
        migrator.registerMigration("v5-alert-state-references-log") { db in
            // An open alert's last published JSON is already in `alert_log` (written in the same transaction); the
            // state now says where it is (its clinic and seq) instead of holding a second copy of the body, about
            // 2 KB written again on every firing and update. Without a rowid, the rows live in the key's own
            // B-tree: an upsert or delete changes one page, not a page of the table and one of its key's index.
            try db.execute(sql: """
                CREATE TABLE alert_state_v5 (
                    patient TEXT NOT NULL,
                    rule TEXT NOT NULL,
                    clinic TEXT NOT NULL,
                    alert_id TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    severity TEXT NOT NULL,
                    log_seq INTEGER NOT NULL,
                    PRIMARY KEY (patient, rule)
                ) WITHOUT ROWID;
                INSERT INTO alert_state_v5 (patient, rule, clinic, alert_id, digest, severity, log_seq)
                    SELECT s.patient, s.rule, s.clinic, s.alert_id, s.digest, s.severity, latest.seq
                    FROM alert_state s JOIN (
                        SELECT clinic, alert_id, max(seq) AS seq FROM alert_log WHERE status != 'resolved' GROUP BY clinic, alert_id
                    ) latest ON latest.clinic = s.clinic AND latest.alert_id = s.alert_id;
                """)
            let unmatched = try Int.fetchOne(
                db, sql: "SELECT (SELECT count(*) FROM alert_state) - (SELECT count(*) FROM alert_state_v5)") ?? 0
            guard unmatched == 0 else {
                throw StoreInconsistency(
                    "\(unmatched) open alert(s) in alert_state have no published row in alert_log; the database was changed outside Cobalt")
            }
            try db.execute(sql: "DROP TABLE alert_state; ALTER TABLE alert_state_v5 RENAME TO alert_state")
        }
        migrator.registerMigration("v6-events-chained-by-patient") { db in
            // A patient's events are found from the patient's last one, each naming the one before (`prev_seq`),
            // instead of through an index of (patient, seq). That index had an entry per event, on its patient's
            // page: a group commit of 500 events rewrote up to 500 index pages, and the index grew with the
            // journal. `patient_last_event` has a row per patient, so it stays small and its pages stay cached.
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN prev_seq INTEGER;
                CREATE TABLE patient_last_event (patient TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
                """)
            try chainEvents(db)
            try db.execute(sql: "DROP INDEX IF EXISTS events_by_patient")
        }
        return migrator
    }

    /// Links every event to its patient's previous one and records each patient's last event (migration v6).
    private static func chainEvents(_ db: Database) throws {
        try db.execute(sql: """
            UPDATE events SET prev_seq = chained.prev FROM (
                SELECT seq, lag(seq) OVER (PARTITION BY patient ORDER BY seq) AS prev FROM events
            ) AS chained WHERE chained.seq = events.seq AND events.prev_seq IS NOT chained.prev;
            DELETE FROM patient_last_event;
            INSERT INTO patient_last_event (patient, seq) SELECT patient, max(seq) FROM events GROUP BY patient;
            """)
    }

    /// Events journaled without their chain — by an older Cobalt opened on this database after the upgrade, or
    /// by hand — would be missing from their patients' histories, silently. Every event Cobalt journals becomes
    /// its patient's last, so the newest event must be some patient's last one; if it is not, the chains are
    /// rebuilt before anything reads them.
    private static func repairChains(_ db: Database) throws {
        let newest = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM events")
        let newestChained = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM patient_last_event")
        if newest != newestChained { try chainEvents(db) }
    }

    /// Log pages after which a commit checkpoints, finishing what ``Checkpointer`` has not copied yet, so that the
    /// next transaction starts the log from the beginning (4 MiB with 4 KiB pages). In session 3, with the
    /// writer doing all the copying, this was 100: at SQLite's default of 1,000, 1.5 % of commits at 5,000
    /// events/s took 3–31 ms. With the copying moved off the writer, the threshold only bounds the log's size.
    static let checkpointPages = 1_000

    package func quarantine(_ items: [QuarantinedEvent], keeping: Int) throws {
        guard !items.isEmpty else { return }
        try write { db in
            for item in items {
                try db.execute(
                    sql: "INSERT INTO quarantine (time, event_id, code, reason, errors, sender, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    arguments: [
                        item.time, item.id.map(Self.storable), item.code, Self.storable(item.reason), Self.storable(item.errors),
                        item.sender.map(Self.storable), Self.storable(item.payload),
                    ])
            }
            // Rows are appended with increasing rowids (none is ever updated): the newest `keeping` stay.
            try db.execute(
                sql: "DELETE FROM quarantine WHERE rowid <= (SELECT max(rowid) FROM quarantine) - ?", arguments: [max(1, keeping)])
        }
    }

    /// Text as it can be stored through GRDB's string binding, which ends a text at its first NUL (the rest of a
    /// quarantined payload, or of an audit detail, was silently cut off): each NUL is written as U+2400 (␀), which
    /// shows where it was. Only the quarantine and the audit trail can hold one; the journal's texts are JSON
    /// without raw control characters and checked ids.
    static func storable(_ text: String) -> String {
        text.utf8.contains(0) ? text.replacingOccurrences(of: "\u{0}", with: "\u{2400}") : text
    }

    package func quarantined(limit: Int) async throws -> [QuarantinedEvent] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM quarantine ORDER BY rowid DESC LIMIT ?", arguments: [limit]).map { row in
                QuarantinedEvent(
                    time: row["time"], id: row["event_id"], code: row["code"], reason: row["reason"], errors: row["errors"],
                    sender: row["sender"], payload: row["payload"])
            }
        }
    }

    package func audit(_ entries: [AuditEntry]) async throws {
        guard !entries.isEmpty else { return }
        try await write { db in
            for entry in entries {
                try db.execute(
                    sql: "INSERT INTO audit (time, actor, action, detail) VALUES (?, ?, ?, ?)",
                    arguments: [entry.time, Self.storable(entry.actor), Self.storable(entry.action), Self.storable(entry.detail)])
            }
        }
    }

    package func auditTrail(limit: Int) async throws -> [AuditEntry] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY rowid DESC LIMIT ?", arguments: [limit]).map { row in
                AuditEntry(time: row["time"], actor: row["actor"], action: row["action"], detail: row["detail"])
            }
        }
    }

    package func journal(_ events: [IncomingEvent]) throws -> [JournalOutcome] {
        try write { db in try Self.journal(events, in: db) }
    }

    package func journal(_ events: [IncomingEvent], with evaluations: [EvaluationCommit]) throws
        -> (outcomes: [JournalOutcome], published: [[PublishedAlert]])
    {
        let epoch = self.epoch
        return try write { db in
            // The evaluations first: their events were journaled before this batch.
            let published = try evaluations.map { try Self.commit($0, epoch: epoch, in: db) }
            return (events.isEmpty ? [] : try Self.journal(events, in: db), published)
        }
    }

    /// The journal's statements for one batch, in the caller's transaction.
    private static func journal(_ events: [IncomingEvent], in db: Database) throws -> [JournalOutcome] {
        let now = Date().timeIntervalSince1970
        var outcomes: [JournalOutcome] = []
        outcomes.reserveCapacity(events.count)
        // Insert first and look the id up only when it was there already: a new event (the usual case) needs
        // no lookup by id (the insert searches the unique index anyway), only the insert and the move of its
        // patient's last event. The seq is given, not left to AUTOINCREMENT, which would spend one on an
        // insert that did nothing: seqs must stay gap-free (``counts(evaluatedThrough:)``).
        var next = (try Int64.fetchOne(db, sql: "SELECT max(seq) FROM events") ?? 0) + 1
        // Each event names its patient's previous one, which `patient_last_event` holds (see migration v6).
        // (`WHERE true` tells the parser that `ON CONFLICT` belongs to the insert, not to a join.)
        let insert = try db.cachedStatement(sql: """
            INSERT INTO events (seq, id, digest, patient, clinic, time, body, received_at, prev_seq)
            SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT seq FROM patient_last_event WHERE patient = ?4) WHERE true
            ON CONFLICT (id) DO NOTHING
            """)
        let moveLast = try db.cachedStatement(sql: """
            INSERT INTO patient_last_event (patient, seq) VALUES (?, ?) ON CONFLICT (patient) DO UPDATE SET seq = excluded.seq
            """)
        // The id goes in as bytes with their length (a blob read as text): GRDB binds a String as a C string,
        // which a NUL would cut short — the insert binds it whole (ingest refuses control characters anyway).
        let find = try db.cachedStatement(sql: "SELECT seq, digest, body FROM events WHERE id = CAST(? AS TEXT)")
        for event in events {
            try Self.insert(event, seq: next, receivedAt: now, with: insert, in: db)
            if db.changesCount == 1 {
                try Self.moveLast(patient: event.patient, seq: next, with: moveLast, in: db)
                outcomes.append(.accepted(seq: next))
                next += 1
                continue
            }
            guard let row = try Row.fetchOne(find, arguments: [Data(event.id.utf8)]) else {
                throw StoreInconsistency("an event was neither inserted nor found by its id")
            }
            let digest: String = row["digest"]
            outcomes.append(digest == event.digest ? .duplicate(seq: row["seq"]) : .sameID(seq: row["seq"], storedBody: row["body"]))
        }
        return outcomes
    }

    /// Runs the journal's insert for one event. The journal's two statements bind their values where they are
    /// (``step(_:in:_:)``), not through `StatementArguments`. Every text is bound in place, hence the nesting:
    /// SQLite allocates for each text it copies (``bindCopy(_:_:_:)``), five more allocations per event when the
    /// short texts were copied (counted in session 15).
    private static func insert(_ event: IncomingEvent, seq: Int64, receivedAt: Double, with statement: Statement, in db: Database) throws {
        var (id, digest, patient, clinic, body) = (event.id, event.digest, event.patient, event.clinic, event.body)
        try step(statement, in: db) { handle in
            sqlite3_bind_int64(handle, 1, seq)
            sqlite3_bind_double(handle, 6, event.time)
            sqlite3_bind_double(handle, 8, receivedAt)
            return id.withUTF8 { id in
                digest.withUTF8 { digest in
                    patient.withUTF8 { patient in
                        clinic.withUTF8 { clinic in
                            body.withUTF8 { body in
                                bindText(handle, 2, id)
                                bindText(handle, 3, digest)
                                bindText(handle, 4, patient)
                                bindText(handle, 5, clinic)
                                bindText(handle, 7, body)
                                return sqlite3_step(handle)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Makes `patient`'s last event `seq` (the journal's second statement).
    private static func moveLast(patient: String, seq: Int64, with statement: Statement, in db: Database) throws {
        var patient = patient
        try step(statement, in: db) { handle in
            sqlite3_bind_int64(handle, 2, seq)
            return patient.withUTF8 { patient in
                bindText(handle, 1, patient)
                return sqlite3_step(handle)
            }
        }
    }

    /// Runs one of GRDB's statements through SQLite's own interface: `bindAndStep` binds every parameter and steps
    /// it once, while the texts it binds are alive (bound as static, not copied); the statement is then reset and
    /// its bindings cleared. Through `StatementArguments`, GRDB copied each value into an argument array (a retain
    /// per value and an allocation per statement) and SQLite copied each text again, the ~700-byte body among
    /// them: for every event, on the journal thread that every event passes through one at a time (session 15:
    /// 113 → 26 `swift_retain` per event on that thread). GRDB's statement object is used as it would use it
    /// (reset before binding, reset after stepping), so its cache and the transaction see nothing unusual. A raw
    /// step bypasses GRDB's transaction observers and authorizer: the store registers neither (docs/decisions.md,
    /// session 15).
    private static func step(_ statement: Statement, in db: Database, _ bindAndStep: (SQLiteStatement) -> Int32) throws {
        let handle = statement.sqliteStatement
        sqlite3_reset(handle)
        let code = bindAndStep(handle)
        let message = code == SQLITE_DONE ? nil : String(cString: sqlite3_errmsg(db.sqliteConnection))
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)  // no pointer into the texts outlives them
        guard code == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
    }

    /// Binds a text parameter as a copy: SQLite allocates a buffer for it, freed when the bindings are cleared.
    private static func bindCopy(_ handle: SQLiteStatement, _ index: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bind(handle, index, $0, destructor: transient) }
    }

    /// Binds UTF-8 bytes as a text parameter without copying them (a null destructor is SQLITE_STATIC): they must
    /// stay where they are until the statement is reset.
    private static func bindText(_ handle: SQLiteStatement, _ index: Int32, _ text: UnsafeBufferPointer<UInt8>) {
        bind(handle, index, text, destructor: nil)
    }

    private static func bind(_ handle: SQLiteStatement, _ index: Int32, _ text: UnsafeBufferPointer<UInt8>, destructor: sqlite3_destructor_type?) {
        sqlite3_bind_text(
            handle, index, text.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) } ?? emptyText,
            Int32(text.count), destructor)
    }

    /// SQLITE_TRANSIENT (SQLite copies the bytes before the call returns), which the C header defines as a cast.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    /// Where an empty text points (an empty buffer may have no address).
    nonisolated(unsafe) private static let emptyText: UnsafePointer<CChar> = {
        let empty = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        empty.initialize(to: 0)
        return UnsafePointer(empty)
    }()

    package func unevaluated(after seq: Int64, limit: Int) async throws -> [StoredEvent] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: """
                    SELECT seq, id, patient, clinic, body FROM events
                    WHERE seq > max(?, (SELECT through FROM evaluation_progress)) ORDER BY seq LIMIT ?
                    """,
                arguments: [seq, limit]
            ).map(Self.event)
        }
    }

    package func evaluatedThrough() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT through FROM evaluation_progress") ?? 0 }
    }

    package func events(patients: [String], through seq: Int64) async throws -> [StoredEvent] {
        guard !patients.isEmpty else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(
                db, sql: Self.eventsOfPatientsSQL(patients.count),
                arguments: StatementArguments(patients.map { $0 as any DatabaseValueConvertible } + [seq])
            ).map(Self.event)
        }
    }

    /// The events of `count` patients (the `?`s of an IN list) up to a seq (the last `?`), in journal order: each
    /// patient's chain walked back from its last event, one lookup by seq per event. The journal may be ahead of
    /// the seq asked for, so the newest links can lie beyond it. A link must go back and stay with its patient,
    /// so a damaged chain ends instead of looping or wandering into another patient's events.
    package static func eventsOfPatientsSQL(_ count: Int) -> String {
        """
        WITH RECURSIVE chain (seq, prev, id, patient, clinic, body) AS (
            SELECT e.seq, e.prev_seq, e.id, e.patient, e.clinic, e.body FROM patient_last_event l JOIN events e ON e.seq = l.seq
            WHERE l.patient IN \(placeholders(count))
            UNION ALL
            SELECT e.seq, e.prev_seq, e.id, e.patient, e.clinic, e.body FROM chain c
            JOIN events e ON e.seq = c.prev AND e.seq < c.seq AND e.patient = c.patient
        )
        SELECT seq, id, patient, clinic, body FROM chain WHERE seq <= ? ORDER BY seq
        """
    }

    /// `(?, ?, …)` for an IN list.
    private static func placeholders(_ count: Int) -> String {
        "(" + Array(repeating: "?", count: count).joined(separator: ",") + ")"
    }

    private static func event(_ row: Row) -> StoredEvent {
        StoredEvent(seq: row["seq"], id: row["id"], patient: row["patient"], clinic: row["clinic"], body: row["body"])
    }

    package func alertStates(patients: [String]) async throws -> [AlertState] {
        guard !patients.isEmpty else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(
                db, sql: """
                    SELECT s.patient, s.rule, s.clinic, s.alert_id, s.digest, s.severity, s.log_seq, l.body FROM alert_state s
                    LEFT JOIN alert_log l ON l.clinic = s.clinic AND l.seq = s.log_seq
                    WHERE s.patient IN \(Self.placeholders(patients.count)) ORDER BY s.patient, s.rule
                    """,
                arguments: StatementArguments(patients)
            ).map { row in
                // By position, in the SELECT's order (by name, GRDB compares lower-cased names for every value).
                let published: String? = row[7]
                guard let body = published.flatMap(Self.alertBody(published:)) else {
                    let clinic: String = row[2], seq: Int64 = row[6]
                    throw StoreInconsistency("an open alert's published row \(clinic)#\(seq) is missing from alert_log or unreadable")
                }
                return AlertState(
                    patient: row[0], rule: row[1], clinic: row[2], alertID: row[3], digest: row[4], body: body,
                    severity: row[5])
            }
        }
    }

    package func commitEvaluations(
        _ evaluations: [(eventSeq: Int64, changes: [AlertChange])], through: Int64, at time: String
    ) async throws -> [PublishedAlert] {
        let epoch = self.epoch
        let commit = EvaluationCommit(evaluations, through: through, at: time)
        return try await write { db in try Self.commit(commit, epoch: epoch, in: db) }
    }

    /// The statements of one evaluation commit, in the caller's transaction.
    private static func commit(_ commit: EvaluationCommit, epoch: String, in db: Database) throws -> [PublishedAlert] {
        var published: [PublishedAlert] = []
        var last: [String: Int64] = [:]
        // Cached statements: compiled once per connection, not once per alert.
        let lastSequence = try db.cachedStatement(sql: "SELECT last FROM clinic_sequence WHERE clinic = ?")
        let log = try db.cachedStatement(
            sql: "INSERT INTO alert_log (clinic, seq, alert_id, status, event_seq, body) VALUES (?, ?, ?, ?, ?, ?)")
        let upsertState = try db.cachedStatement(sql: """
            INSERT INTO alert_state (patient, rule, clinic, alert_id, digest, severity, log_seq) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (patient, rule) DO UPDATE SET clinic = excluded.clinic, alert_id = excluded.alert_id,
                digest = excluded.digest, severity = excluded.severity, log_seq = excluded.log_seq
            """)
        let deleteState = try db.cachedStatement(sql: "DELETE FROM alert_state WHERE patient = ? AND rule = ?")
        let saveSequence = try db.cachedStatement(
            sql: "INSERT INTO clinic_sequence (clinic, last) VALUES (?, ?) ON CONFLICT (clinic) DO UPDATE SET last = excluded.last")
        for (eventSeq, changes) in commit.evaluations {
            for change in changes {
                var seq: Int64
                if let known = last[change.clinic] {
                    seq = known
                } else {
                    seq = try Int64.fetchOne(lastSequence, arguments: [change.clinic]) ?? 0
                }
                seq += 1
                last[change.clinic] = seq
                var json = Self.publishedJSON(change.body, seq: seq, epoch: epoch, status: change.status, time: commit.time)
                // Bound through SQLite's interface, like the journal's statements (see ``step(_:in:_:)``).
                try Self.step(log, in: db) { handle in
                    Self.bindCopy(handle, 1, change.clinic)
                    sqlite3_bind_int64(handle, 2, seq)
                    Self.bindCopy(handle, 3, change.alertID)
                    Self.bindCopy(handle, 4, change.status.rawValue)
                    sqlite3_bind_int64(handle, 5, eventSeq)
                    return json.withUTF8 { json in
                        Self.bindText(handle, 6, json)  // about 2 KB: not copied
                        return sqlite3_step(handle)
                    }
                }
                switch change.status {
                case .firing, .updated:
                    try Self.step(upsertState, in: db) { handle in
                        Self.bindCopy(handle, 1, change.patient)
                        Self.bindCopy(handle, 2, change.rule)
                        Self.bindCopy(handle, 3, change.clinic)
                        Self.bindCopy(handle, 4, change.alertID)
                        Self.bindCopy(handle, 5, change.digest)
                        Self.bindCopy(handle, 6, change.severity)
                        sqlite3_bind_int64(handle, 7, seq)
                        return sqlite3_step(handle)
                    }
                case .resolved:
                    try Self.step(deleteState, in: db) { handle in
                        Self.bindCopy(handle, 1, change.patient)
                        Self.bindCopy(handle, 2, change.rule)
                        return sqlite3_step(handle)
                    }
                }
                published.append(PublishedAlert(clinic: change.clinic, seq: seq, alertID: change.alertID, status: change.status, json: json))
            }
        }
        for (clinic, seq) in last {
            try saveSequence.execute(arguments: [clinic, seq])
        }
        try db.execute(sql: "UPDATE evaluation_progress SET through = max(through, ?)", arguments: [commit.through])
        return published
    }

    /// Inserts `seq`, `epoch`, `status` and `time` at the front of an alert JSON object.
    package static func publishedJSON(_ body: String, seq: Int64, epoch: String, status: AlertChange.Status, time: String) -> String {
        let fields = "\"seq\":\(seq),\"epoch\":\"\(epoch)\",\"status\":\"\(status.rawValue)\",\"time\":\"\(time)\""
        guard body.hasPrefix("{") else { return "{\(fields)}" }
        return body == "{}" ? "{\(fields)}" : "{\(fields)," + body.dropFirst()
    }

    /// The alert JSON that ``publishedJSON(_:seq:epoch:status:time:)`` was given, or nil when `published` does not
    /// start as it writes (none of the four fields it inserts can hold a quote: a number, a UUID, a status and a
    /// timestamp).
    package static func alertBody(published: String) -> String? {
        // On the UTF-8 bytes: Foundation's `range(of:)` and Substring's character indexing were most of a patient's
        // load when it had open alerts (a patient is loaded on each event once the cache is too small).
        var published = published
        return published.withUTF8 { bytes -> String? in
            let prefix = Array(#"{"seq":"#.utf8), timeKey = Array(#","time":""#.utf8)
            guard bytes.starts(with: prefix) else { return nil }
            var i = prefix.count
            while i + timeKey.count <= bytes.count, !bytes[i..<(i + timeKey.count)].elementsEqual(timeKey) { i += 1 }
            i += timeKey.count
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += 1 }
            // `i` is the time's closing quote; after it comes `}` (the body was `{}`) or `,` and the body's members.
            guard i + 1 < bytes.count else { return nil }
            let rest = UnsafeBufferPointer(rebasing: bytes[(i + 1)...])
            if rest.count == 1, rest[0] == UInt8(ascii: "}") { return "{}" }
            guard rest[0] == UInt8(ascii: ",") else { return nil }
            return String(unsafeUninitializedCapacity: rest.count) { out in
                out[0] = UInt8(ascii: "{")
                _ = UnsafeMutableBufferPointer(rebasing: out[1...]).initialize(from: rest.dropFirst())
                return rest.count
            }
        }
    }

    package func alerts(clinic: String, after seq: Int64, limit: Int) async throws -> (alerts: [PublishedAlert], more: Bool) {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT clinic, seq, alert_id, status, body FROM alert_log WHERE clinic = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [clinic, seq, limit + 1])
            let alerts = rows.prefix(limit).map { row in
                PublishedAlert(
                    clinic: row["clinic"], seq: row["seq"], alertID: row["alert_id"],
                    status: AlertChange.Status(rawValue: row["status"]) ?? .firing, json: row["body"])
            }
            return (Array(alerts), rows.count > limit)
        }
    }

    package func lastSequences() async throws -> [String: Int64] {
        try await pool.read { db in
            var result: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT clinic, last FROM clinic_sequence") {
                result[row["clinic"]] = row["last"]
            }
            return result
        }
    }

    /// Counted without scanning, so that `status` costs the same on a journal of ten events or ten million (a
    /// `count(*)` read every page of the journal, and under load each poll re-read them from the file). Exact
    /// because of two invariants, both tested: events are only ever appended and a journal transaction keeps all
    /// of its inserts or none, so seqs run from 1 without gaps and `max(seq)` is the number journaled; each
    /// clinic's alert seqs run from 1 without gaps, so the clinics' last seqs add up to the alerts logged.
    package func counts(evaluatedThrough: Int64?) async throws -> StoreCounts {
        try await pool.read { db in
            let journaled = try Int64.fetchOne(db, sql: "SELECT coalesce(max(seq), 0) FROM events") ?? 0
            let through = try evaluatedThrough ?? Int64.fetchOne(db, sql: "SELECT through FROM evaluation_progress") ?? 0
            let alerts = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(last), 0) FROM clinic_sequence") ?? 0
            return StoreCounts(events: journaled, unevaluated: max(0, journaled - through), alerts: alerts)
        }
    }

    package func events(after seq: Int64, limit: Int) async throws -> [StoredEvent] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT seq, id, patient, clinic, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [seq, limit]
            ).map(Self.event)
        }
    }

    package func patientsWithOpenAlerts(after patient: String?, limit: Int) async throws -> [(patient: String, clinic: String)] {
        try await pool.read { db in
            // `alert_state` is keyed by (patient, rule): a range of its B-tree, whatever the number of patients.
            // Patient ids are never empty, so "" comes before every one.
            try Row.fetchAll(
                db,
                sql: "SELECT patient, max(clinic) AS clinic FROM alert_state WHERE patient > ? GROUP BY patient ORDER BY patient LIMIT ?",
                arguments: [patient ?? "", limit]
            ).map { ($0["patient"], $0["clinic"]) }
        }
    }

    package func lastJournalSequence() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT max(seq) FROM events") ?? 0 }
    }

    /// The writer connection's `PRAGMA synchronous` (2 is FULL).
    package func writerSynchronousMode() async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    package func recordRuleSet(version: String, hash: String, at time: Double) async throws {
        try await write { db in
            try db.execute(sql: "INSERT INTO rulesets (hash, version, live_at) VALUES (?, ?, ?)", arguments: [hash, version, time])
        }
    }

    package func reevaluatedRuleSet() async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'reevaluated_ruleset'") }
    }

    package func forgetReevaluated() async throws {
        try await write { db in try db.execute(sql: "DELETE FROM meta WHERE key = 'reevaluated_ruleset'") }
    }

    @discardableResult
    package func recordReevaluated(ruleSet hash: String, if stillCurrent: @escaping @Sendable () -> Bool) async throws -> Bool {
        try await write { db in
            guard stillCurrent() else { return false }
            try db.execute(
                sql: "INSERT INTO meta (key, value) VALUES ('reevaluated_ruleset', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                arguments: [hash])
            return true
        }
    }
}
