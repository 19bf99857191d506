import CobaltStore
import Crypto
import Foundation
import RuleEngine
import ZeroMQ

/// Turns a batch of ingest messages into journal writes and replies (INTERFACES §3).
///
/// The last frame is the event; the frames before it are the routing envelope, returned unchanged with the reply
/// (a REQ's empty delimiter, or the hops of a broker in between).
///
/// Each message is checked on its own — framing, size (413), JSON and schema (400, every error with its path) —
/// then the valid ones are journaled in **one** durable transaction (group commit). Only after that commit does
/// any reply say `accepted` or `duplicate`; a store failure answers 503 so the sender retries with the same id.
struct IngestProcessor {
    /// A reply to send: the envelope the request came with, then one JSON frame.
    struct Reply: Equatable {
        var envelope: [[UInt8]]
        /// The JSON, as sent.
        var payload: [UInt8]

        var json: String { String(decoding: payload, as: UTF8.self) }
        var frames: [[UInt8]] { envelope + [payload] }
    }

    /// Outcome counts for metrics and status.
    struct Counts: Equatable {
        var accepted = 0
        var duplicate = 0
        var invalid = 0
        var conflict = 0
        var tooLarge = 0
        var unavailable = 0
    }

    let maxEventBytes: Int
    /// Parts a large batch is checked in at once, at most (see ``prepare(_:bundle:)``).
    var parallelism = ProcessInfo.processInfo.activeProcessorCount
    /// Whether the authenticated sender (ZAP User-Id) may send events for a clinic.
    var authorize: @Sendable (String?, String) -> Bool = { _, _ in true }
    /// How far ahead of the daemon's clock an event's `time` may be, in seconds (`limits.future_tolerance_ms`).
    /// A patient is evaluated as of her latest event's time, so one event dated years ahead (a wrong year, a wrong
    /// clock) would have every later evaluation of her made as of that future: a pregnancy long over, every
    /// result old. Refused instead, with the reason, so the sender can correct it.
    var futureTolerance: Double = DaemonConfiguration().futureToleranceSeconds
    /// The daemon's clock (seconds since 1970); tests set it.
    var now: @Sendable () -> Double = { Date().timeIntervalSince1970 }

    /// A message after the checks that need no store.
    enum Prepared {
        case valid(CheckedEvent)
        case invalid(Reply, quarantine: QuarantinedEvent)
    }

    /// A valid event, checked and normalised, with everything its acknowledgement needs.
    ///
    /// A class, so that moving it between threads and batches costs one reference count: as a struct, each copy
    /// retained every string and array of the normalised event, on the journal thread, which every event passes
    /// through one at a time.
    final class CheckedEvent: Sendable {
        let envelope: [[UInt8]]
        let event: NormalisedEvent
        let incoming: IncomingEvent
        /// The acknowledgement's `warnings` array, written while checking (in parallel, off the journal thread).
        let warnings: String
        /// The `accepted` acknowledgement (the usual one), written while checking too: the journal thread, which
        /// every event passes through one at a time, then only sends it.
        let accepted: [UInt8]

        init(envelope: [[UInt8]], event: NormalisedEvent, incoming: IncomingEvent) {
            self.envelope = envelope
            self.event = event
            self.incoming = incoming
            warnings = IngestProcessor.warningsJSON(event)
            accepted = Array(IngestProcessor.acknowledgement(id: event.event.id, status: "accepted", warnings: warnings).utf8)
        }

        /// The event's id as its sender wrote it, for replies and quarantine. (`incoming.id` is the journal's key:
        /// with CURVE it carries the sender too, ``IngestProcessor/idempotencyKey(sender:id:)``.)
        var id: String { event.event.id }

        var acceptedReply: Reply { Reply(envelope: envelope, payload: accepted) }

        var duplicateReply: Reply {
            Reply(envelope: envelope, json: IngestProcessor.acknowledgement(id: id, status: "duplicate", warnings: warnings))
        }
    }

    /// `[{"path": …, "message": …}, …]`: the errors and warnings of replies and quarantine records.
    static func fieldErrorsJSON(_ errors: [FieldError]) -> String {
        "[" + errors.map { "{\"path\":\($0.path.jsonQuoted),\"message\":\($0.message.jsonQuoted)}" }.joined(separator: ",") + "]"
    }

    /// The quarantine record of a rejected message.
    static func quarantined(_ message: Message, id: String?, code: Int, reason: String, errors: [FieldError]) -> QuarantinedEvent {
        let list = fieldErrorsJSON(errors)
        // An oversized message keeps only its routing id: there is no payload to keep.
        let payload = QuarantinedEvent.payload(message.oversized == nil ? message.frames.last ?? [] : [])
        return QuarantinedEvent(
            time: Date().timeIntervalSince1970, id: id, code: code, reason: reason, errors: list, sender: message.userID, payload: payload)
    }

    /// The reply and the quarantine record of a refused message.
    private static func refusal(
        _ message: Message, _ envelope: [[UInt8]], id: String?, code: Int, reason: String, errors: [FieldError]
    ) -> (reply: Reply, record: QuarantinedEvent) {
        (Reply(envelope: envelope, json: rejection(id: id, code: code, reason: reason, errors: errors)),
         quarantined(message, id: id, code: code, reason: reason, errors: errors))
    }

    private static func reject(_ message: Message, _ envelope: [[UInt8]], id: String?, code: Int, reason: String, errors: [FieldError]) -> Prepared {
        let (reply, record) = refusal(message, envelope, id: id, code: code, reason: reason, errors: errors)
        return .invalid(reply, quarantine: record)
    }

    /// Checks one message; a valid event is normalised here, once: for the warnings of its ACK and for evaluation.
    func prepare(_ message: Message, vocabulary: Vocabulary) -> Prepared {
        if let size = message.oversized {
            return Self.reject(
                message, message.frames, id: nil, code: 413,
                reason: "\(Daemon.asSent(size, message)); a request is one JSON frame of at most \(maxEventBytes) bytes", errors: [])
        }
        let frames = message.frames
        let envelope = Array(frames.dropLast())
        guard frames.count >= 2, let payload = frames.last else {
            return Self.reject(message, envelope, id: nil, code: 400, reason: "expected one frame holding the event JSON", errors: [])
        }
        guard payload.count <= maxEventBytes else {
            // Still name the event, so the sender can match the answer (the socket's hard limit bounds the work).
            var id: String?
            if case .object(let object)? = try? JSONValue.parse(payload) { id = object["id"]?.stringValue }
            return Self.reject(message, envelope, id: id, code: 413, reason: "event is \(payload.count) bytes; the limit is \(maxEventBytes)", errors: [])
        }
        let event: PatientEvent
        if let usual = EventDecoder.decodeUsual(payload) {
            event = usual
        } else {
            // Anything else goes through the JSON tree and the decoder, which name every error.
            let json: JSONValue
            do { json = try JSONValue.parse(payload) } catch {
                return Self.reject(message, envelope, id: nil, code: 400, reason: "malformed JSON", errors: error.errors)
            }
            var id: String?
            if case .object(let object) = json { id = object["id"]?.stringValue }
            do { event = try EventDecoder.decode(json) } catch {
                let reason = "invalid event: \(error.errors.count) error\(error.errors.count == 1 ? "" : "s")"
                return Self.reject(message, envelope, id: id, code: 400, reason: reason, errors: error.errors)
            }
        }
        guard authorize(message.userID, event.clinic) else {
            return Self.reject(message, envelope, id: event.id, code: 403, reason: "this key may not send events for clinic \(event.clinic)", errors: [])
        }
        let received = now()
        if event.time > received + futureTolerance {
            return Self.reject(
                message, envelope, id: event.id, code: 400, reason: "invalid event: 1 error",
                errors: [FieldError(path: "time", message: Self.futureTime(event.time, received: received, tolerance: futureTolerance))])
        }
        // Journaled as received: the digest covers these bytes, so the usual resend (the same bytes again) is found
        // by comparing digests. An event written differently (another key order, other spacing) is compared by
        // content only when its id is found taken (``sameContent(_:_:)``). Writing every event's canonical form
        // here cost about 3 % of the daemon's CPU, for a case that comes up on retries alone.
        let digest = SHA256.hash(data: payload).hexDigits()
        let body = String(decoding: payload, as: UTF8.self)
        return .valid(CheckedEvent(
            envelope: envelope, event: NormalisedEvent(event, vocabulary: vocabulary),
            incoming: IncomingEvent(
                id: Self.idempotencyKey(sender: message.userID, id: event.id), digest: digest, patient: event.patient,
                clinic: event.clinic, time: event.time, body: body)))
    }

    /// Why an event dated after the time it was received (beyond the tolerance) is refused.
    static func futureTime(_ time: Double, received: Double, tolerance: Double) -> String {
        func span(_ seconds: Double) -> String {
            let days = seconds / 86_400
            if days >= 2 { return "\(Int(days).formatted()) days" }
            let hours = seconds / 3_600
            if hours >= 2 { return "\(Int(hours)) hours" }
            let minutes = Int(seconds / 60)
            return minutes == 1 ? "1 minute" : "\(minutes) minutes"
        }
        return "is \(span(time - received)) after the time the event was received (at most \(span(tolerance)) ahead is "
            + "accepted): a clock or a date is wrong, and the patient would be evaluated as of that time from now on"
    }

    /// What the journal keeps an event's id under. INTERFACES §1: an id is unique *per sender*. With CURVE a sender
    /// is its ingest key's name (the ZAP User-Id, which a key rotation keeps), so two EHR engines may both send
    /// `lab-1`; without CURVE (loopback only) there is no sender to tell apart, and ids share one space, as they
    /// always did (so an existing journal keeps its meaning). A unit separator cannot occur in an id: control
    /// characters are refused.
    static func idempotencyKey(sender: String?, id: String) -> String {
        guard let sender, !sender.isEmpty else { return id }
        return sender + "\u{1F}" + id
    }

    /// A batch checked and normalised, ready to journal.
    struct PreparedBatch: Sendable {
        var messages: [Message]
        var items: [Prepared]
        /// The vocabulary the events were normalised with.
        var vocabularyHash: String

        /// Consecutive batches joined into as few as possible, in order: one transaction for all that were
        /// normalised with the same vocabulary (a reload in between starts a new one).
        static func merged(_ batches: [PreparedBatch]) -> [PreparedBatch] {
            var joined: [PreparedBatch] = []
            for batch in batches {
                if let last = joined.indices.last, joined[last].vocabularyHash == batch.vocabularyHash {
                    joined[last].messages += batch.messages
                    joined[last].items += batch.items
                } else {
                    joined.append(batch)
                }
            }
            return joined
        }
    }

    /// Checks and normalises every message of a batch (no I/O: this can run while the previous batch commits).
    /// A large batch is split into parts checked in parallel: decoding is most of ingest's work, and one thread
    /// decoding alone held the acknowledged rate to what a single core decodes. The calling thread takes parts
    /// itself and idle pool threads help (`concurrentPerform`): with the pool busy, the caller decodes them all.
    func prepare(_ batch: [Message], bundle: RuleBundle) -> PreparedBatch {
        let vocabulary = bundle.vocabulary
        let parts = min(parallelism, batch.count / Self.smallestPart)
        guard parts > 1 else {
            return PreparedBatch(messages: batch, items: batch.map { prepare($0, vocabulary: vocabulary) }, vocabularyHash: bundle.vocabularyHash)
        }
        let size = (batch.count + parts - 1) / parts
        // Each part writes only its own element.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<[Prepared]>.allocate(capacity: parts)
        results.initialize(repeating: [])
        defer { results.deinitialize().deallocate() }
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let range = (part * size)..<min((part + 1) * size, batch.count)
            results[part] = batch[range].map { prepare($0, vocabulary: vocabulary) }
        }
        return PreparedBatch(messages: batch, items: Array(results.joined()), vocabularyHash: bundle.vocabularyHash)
    }

    /// Fewest messages worth a part of their own.
    static let smallestPart = 64

    /// Journals the valid messages of a prepared batch with `journal` (one transaction; not called when none is
    /// valid) and builds every reply, in the batch's order. `accepted` are the newly journaled events, in journal
    /// order, for the evaluation pipeline.
    func commit(
        _ prepared: PreparedBatch, journal: ([IncomingEvent]) throws -> [JournalOutcome]
    ) -> (replies: [Reply], accepted: [JournaledEvent], counts: Counts, quarantine: [QuarantinedEvent]) {
        let batch = prepared.messages
        var counts = Counts()
        var quarantine: [QuarantinedEvent] = []
        var valid: [(index: Int, checked: CheckedEvent)] = []
        valid.reserveCapacity(prepared.items.count)
        var replies = [Reply?](repeating: nil, count: batch.count)
        for (index, item) in prepared.items.enumerated() {
            switch item {
            case .valid(let checked): valid.append((index, checked))
            case .invalid(let reply, let record):
                replies[index] = reply
                quarantine.append(record)
                if record.code == 413 { counts.tooLarge += 1 } else { counts.invalid += 1 }
            }
        }
        var accepted: [JournaledEvent] = []
        if !valid.isEmpty {
            do {
                let outcomes = try journal(valid.map(\.checked.incoming))
                accepted.reserveCapacity(outcomes.count)
                for ((index, checked), outcome) in zip(valid, outcomes) {
                    switch outcome {
                    case .accepted(let seq):
                        counts.accepted += 1
                        accepted.append(JournaledEvent(
                            seq: seq, patient: checked.incoming.patient, clinic: checked.incoming.clinic, event: checked.event,
                            vocabularyHash: prepared.vocabularyHash))
                        replies[index] = checked.acceptedReply
                    case .duplicate:
                        counts.duplicate += 1
                        replies[index] = checked.duplicateReply
                    case .sameID(_, let storedBody) where Self.sameContent(storedBody, checked.incoming.body):
                        counts.duplicate += 1
                        replies[index] = checked.duplicateReply
                    case .sameID:
                        counts.conflict += 1
                        let (reply, record) = Self.refusal(
                            batch[index], checked.envelope, id: checked.id, code: 409,
                            reason: "this id was already used for an event with different content", errors: [])
                        replies[index] = reply
                        quarantine.append(record)
                    }
                }
            } catch {
                for (index, checked) in valid {
                    counts.unavailable += 1
                    replies[index] = Reply(envelope: checked.envelope, json: Self.rejection(
                        id: checked.id, code: 503, reason: "the store is unavailable; retry with the same id", errors: []))
                }
            }
        }
        return (replies.map { $0! }, accepted, counts, quarantine)
    }

    /// Whether two journal bodies hold the same event — the "same content" of INTERFACES §3, which answers 409
    /// only when it differs: equal canonical forms (keys sorted, no spacing, numbers in shortest form). A body that
    /// does not parse (never journaled by Cobalt) matches nothing.
    static func sameContent(_ stored: String, _ offered: String) -> Bool {
        guard let a = try? JSONValue.parse(Array(stored.utf8)), let b = try? JSONValue.parse(Array(offered.utf8)) else { return false }
        return a.canonicalBytes == b.canonicalBytes
    }

    static func rejection(id: String?, code: Int, reason: String, errors: [FieldError]) -> String {
        "{\"id\":\(id.map(\.jsonQuoted) ?? "null"),\"status\":\"rejected\",\"code\":\(code),\"reason\":\(reason.jsonQuoted),\"errors\":\(fieldErrorsJSON(errors))}"
    }

    /// `accepted`/`duplicate`, with warnings (see ``warningsJSON(_:)``).
    static func acknowledgement(id: String, status: String, warnings: String) -> String {
        "{\"id\":\(id.jsonQuoted),\"status\":\"\(status)\",\"code\":200,\"reason\":null,\"errors\":[],\"warnings\":\(warnings)}"
    }

    /// An acknowledgement's warnings: unknown fields and values that will not be used (data quality).
    static func warningsJSON(_ normalised: NormalisedEvent) -> String {
        var warnings = normalised.event.warnings
        for finding in normalised.findings {
            warnings.append(FieldError(path: finding.path, message: finding.reason))
        }
        return fieldErrorsJSON(warnings)
    }
}

extension IngestProcessor.Reply {
    init(envelope: [[UInt8]], json: String) {
        self.init(envelope: envelope, payload: Array(json.utf8))
    }
}
