/// An event offered to the journal: its idempotency key, body and the body's digest. A class: a batch of
/// them is handed from the checks to the journal thread, and a reference costs one count where the struct's
/// strings cost one each.
package final class IncomingEvent: Sendable {
    package let id: String
    package let digest: String
    package let patient: String
    package let clinic: String
    package let time: Double
    package let body: String

    package init(id: String, digest: String, patient: String, clinic: String, time: Double, body: String) {
        self.id = id
        self.digest = digest
        self.patient = patient
        self.clinic = clinic
        self.time = time
        self.body = body
    }
}

/// What the journal did with an offered event.
package enum JournalOutcome: Sendable, Equatable {
    /// Stored durably with this journal sequence number.
    case accepted(seq: Int64)
    /// The same id was stored before with the same body, byte for byte (the same digest).
    case duplicate(seq: Int64)
    /// The same id was stored before with a body of other bytes: a different event, or the same one written
    /// differently (keys in another order, other spacing). The caller compares contents; the store only compares
    /// bytes.
    case sameID(seq: Int64, storedBody: String)
}

/// A journaled event.
package struct StoredEvent: Sendable, Equatable {
    package var seq: Int64
    package var id: String
    package var patient: String
    package var clinic: String
    package var body: String
}

/// The stored state of one patient × rule alert (for the alert lifecycle).
package struct AlertState: Sendable, Equatable {
    package var patient: String
    package var rule: String
    package var clinic: String
    package var alertID: String
    /// Digest of the alert's clinical content; a change means "updated".
    package var digest: String
    /// The alert JSON last published for it, without `seq`, `epoch`, `status` and `time` (the store keeps it once,
    /// in that alert's row of the alert log).
    package var body: String
    /// The alert's severity (also in `body`), for the metrics of its resolution.
    package var severity: String

    package init(patient: String, rule: String, clinic: String, alertID: String, digest: String, body: String, severity: String) {
        self.patient = patient
        self.rule = rule
        self.clinic = clinic
        self.alertID = alertID
        self.digest = digest
        self.body = body
        self.severity = severity
    }
}

/// A change to publish, decided by the alert lifecycle.
package struct AlertChange: Sendable, Equatable {
    package enum Status: String, Sendable { case firing, updated, resolved }

    package var patient: String
    package var rule: String
    package var clinic: String
    package var alertID: String
    package var status: Status
    package var digest: String
    /// The alert JSON *without* `seq`, `epoch`, `status` and `time`; the store adds them.
    package var body: String
    /// For metrics only.
    package var severity: String = ""

    package init(patient: String, rule: String, clinic: String, alertID: String, status: Status, digest: String, body: String) {
        self.patient = patient
        self.rule = rule
        self.clinic = clinic
        self.alertID = alertID
        self.status = status
        self.digest = digest
        self.body = body
    }
}

/// An alert as logged and published, with its per-clinic sequence number.
package struct PublishedAlert: Sendable, Equatable {
    package var clinic: String
    package var seq: Int64
    package var alertID: String
    package var status: AlertChange.Status
    /// The full alert JSON, including `seq`, `epoch`, `status` and `time`.
    package var json: String
}

/// Counts for `status`.
package struct StoreCounts: Sendable, Equatable {
    package var events: Int64
    package var unevaluated: Int64
    package var alerts: Int64

    package init(events: Int64, unevaluated: Int64, alerts: Int64) {
        self.events = events
        self.unevaluated = unevaluated
        self.alerts = alerts
    }
}

/// One evaluation commit (the arguments of ``EvaluationCommitting/commitEvaluations(_:through:at:)``), to be
/// written in a journal batch's transaction (``CobaltStore/journal(_:with:)``).
package struct EvaluationCommit: Sendable {
    package var evaluations: [(eventSeq: Int64, changes: [AlertChange])]
    package var through: Int64
    package var time: String

    package init(_ evaluations: [(eventSeq: Int64, changes: [AlertChange])], through: Int64, at time: String) {
        self.evaluations = evaluations
        self.through = through
        self.time = time
    }
}

/// Where the evaluation pipeline commits what it concluded: the store itself, or the daemon's journal thread,
/// which writes it in the transaction of the next journal batch.
package protocol EvaluationCommitting: Sendable {
    /// Records evaluations in one transaction: appends the changes to the alert log with gap-free per-clinic
    /// sequence numbers, updates alert states, and records every event up to `through` as evaluated (events are
    /// evaluated in journal order, and the watermark never moves back; a re-evaluation after a rule change has no
    /// event: `eventSeq` 0, and passes the pipeline's watermark). `time` (RFC 3339) is the evaluation time stamped
    /// on the alerts. Returns what to publish.
    func commitEvaluations(
        _ evaluations: [(eventSeq: Int64, changes: [AlertChange])], through: Int64, at time: String
    ) async throws -> [PublishedAlert]
}

/// Persistence behind the pipeline. SQLite (``SQLiteStore``) is the embedded default; the protocol is the seam
/// for a shared PostgreSQL backend when daemons are sharded by patient.
package protocol CobaltStore: EvaluationCommitting {
    /// The alert stream's epoch: fixed when the store is created, so sequence numbers are comparable within it.
    var epoch: String { get }

    /// Journals a batch in one durable transaction; one outcome per event, in order. **Blocks** the calling
    /// thread until the transaction is durable: ingest calls it from a thread of its own, never from the
    /// concurrency pool (an acknowledgement then waits for no task scheduling, and no task waits for the disk).
    func journal(_ events: [IncomingEvent]) throws -> [JournalOutcome]

    /// Journals a batch (possibly empty) and writes evaluation commits (each as
    /// ``EvaluationCommitting/commitEvaluations(_:through:at:)`` would, in order, before the batch) in one durable
    /// transaction: one fsync for all. A failure fails every part (nothing is written). Blocks like ``journal(_:)``.
    func journal(_ events: [IncomingEvent], with evaluations: [EvaluationCommit]) throws
        -> (outcomes: [JournalOutcome], published: [[PublishedAlert]])

    /// Events not yet evaluated, in journal order, after `seq`.
    func unevaluated(after seq: Int64, limit: Int) async throws -> [StoredEvent]

    /// The journaled events of some patients up to and including `seq`, in journal order (one query for a whole
    /// evaluation chunk of patients not in memory).
    func events(patients: [String], through seq: Int64) async throws -> [StoredEvent]

    /// The stored alert states of some patients, by patient then rule.
    func alertStates(patients: [String]) async throws -> [AlertState]

    /// The journal sequence number through which every event has been evaluated.
    func evaluatedThrough() async throws -> Int64

    /// Patients with at least one open (firing or updated) alert, in order of their ids: the first `limit`
    /// after `patient` (from the start when nil), so that a caller can page through any number of them.
    func patientsWithOpenAlerts(after patient: String?, limit: Int) async throws -> [(patient: String, clinic: String)]

    /// Journaled events after `seq` in journal order, at most `limit` (for replaying the journal).
    func events(after seq: Int64, limit: Int) async throws -> [StoredEvent]

    /// The latest journal sequence number (0 when empty).
    func lastJournalSequence() async throws -> Int64

    /// Alerts of a clinic after `seq`, at most `limit`, and whether more follow.
    func alerts(clinic: String, after seq: Int64, limit: Int) async throws -> (alerts: [PublishedAlert], more: Bool)

    /// The last sequence number per clinic.
    func lastSequences() async throws -> [String: Int64]

    /// Events journaled, events after `evaluatedThrough` (default: the stored watermark), alerts logged.
    func counts(evaluatedThrough: Int64?) async throws -> StoreCounts

    /// Records that a rule set went live (version and hash), for the audit trail.
    func recordRuleSet(version: String, hash: String, at time: Double) async throws

    /// The rule set (hash) under which every open alert was last re-evaluated: nil in a store that never recorded
    /// one. When it is not the running set, open alerts may still say what older rules concluded.
    func reevaluatedRuleSet() async throws -> String?

    /// Records that every open alert has been re-evaluated under the rule set `hash`, if `stillCurrent` (asked
    /// inside the record's transaction, after every write submitted before it) says so; returns whether it did.
    /// A ``forgetReevaluated()`` submitted after the question was answered yes lands after the record.
    @discardableResult
    func recordReevaluated(ruleSet hash: String, if stillCurrent: @escaping @Sendable () -> Bool) async throws -> Bool

    /// Forgets the rule set recorded by ``recordReevaluated(ruleSet:)``, before alert states may start to change
    /// under another one (a reload's swap, a start on other rules). Until a re-evaluation under the new set
    /// finishes and records it, no rule set is recorded, so a start on any rules re-evaluates open alerts: one
    /// on the previous set (a rollback after a crash) must not take alerts concluded by the new set for its own.
    func forgetReevaluated() async throws

    /// Keeps rejected events for the integration engineer to inspect: id (when readable), code, reason, every
    /// error, who sent it, and the payload (truncated). Patient data stays in the store, never in logs. Only the
    /// most recent `keeping` are kept (older ones are deleted in the same transaction): a sender of garbage must not
    /// fill the disk the journal needs. Blocks like ``journal(_:)``; ingest calls it from the same thread.
    func quarantine(_ items: [QuarantinedEvent], keeping: Int) throws

    /// The most recent quarantined events.
    func quarantined(limit: Int) async throws -> [QuarantinedEvent]

    /// Appends to the audit trail: who did what, when (control commands, reloads, authentication failures,
    /// quarantined events) — without patient payloads.
    func audit(_ entries: [AuditEntry]) async throws

    func auditTrail(limit: Int) async throws -> [AuditEntry]
}

/// A rejected event, kept for inspection.
package struct QuarantinedEvent: Sendable, Equatable {
    package var time: Double
    package var id: String?
    package var code: Int
    package var reason: String
    /// The errors, as JSON.
    package var errors: String
    package var sender: String?
    package var payload: String

    package init(time: Double, id: String?, code: Int, reason: String, errors: String, sender: String?, payload: String) {
        self.time = time
        self.id = id
        self.code = code
        self.reason = reason
        self.errors = errors
        self.sender = sender
        self.payload = payload
    }

    /// Most bytes of a rejected message kept: it can be as large as the socket's limit, and its start is what an
    /// integration engineer needs to find the fault.
    package static let payloadLimit = 65_536

    /// The first ``payloadLimit`` bytes of a rejected message as text; invalid UTF-8, including a character cut at
    /// the limit, becomes U+FFFD.
    package static func payload(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(payloadLimit), as: UTF8.self)
    }
}

/// One line of the audit trail.
package struct AuditEntry: Sendable, Equatable {
    package var time: Double
    /// Who: an authenticated identity (`operator:ops-1`), a peer address, or `local` (signal, file watcher).
    package var actor: String
    /// What: `control.status`, `control.reload`, `reload.live`, `reload.refused`, `auth.refused`, `event.quarantined`.
    package var action: String
    package var detail: String

    package init(time: Double, actor: String, action: String, detail: String) {
        self.time = time
        self.actor = actor
        self.action = action
        self.detail = detail
    }
}

extension CobaltStore {
    package func counts() async throws -> StoreCounts { try await counts(evaluatedThrough: nil) }

    /// A patient's journaled events up to and including `seq`, in journal order.
    package func events(patient: String, through seq: Int64) async throws -> [StoredEvent] {
        try await events(patients: [patient], through: seq)
    }

    /// The stored alert states of a patient, by rule.
    package func alertStates(patient: String) async throws -> [AlertState] {
        try await alertStates(patients: [patient])
    }
}

/// The database holds something Cobalt never writes (it was changed by hand, or damaged): the store refuses to
/// guess.
package struct StoreInconsistency: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }
}

/// The database file was deleted or replaced under the running store: nothing more is committed to it.
package struct DatabaseFileGone: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }
}

/// A store operation failed with an I/O error; the description adds the system's reason (errno) to SQLite's.
package struct StoreSystemError: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }
}
