import CobaltStore
import Foundation
import RuleEngine

/// A journaled event on its way to evaluation: its journal sequence number and the event as ingest decoded and
/// normalised it, so that the pipeline neither reads the journal back nor decodes the JSON a second time.
///
/// A class, so that passing it along (commit, hand-off, chunk, shard) costs one reference count, not one for each
/// string and array of the normalised event.
final class JournaledEvent: Sendable {
    let seq: Int64
    let patient: String
    let clinic: String
    /// `nil` for a journaled body that no longer decodes (only possible for rows written by another version).
    let event: NormalisedEvent?
    /// The vocabulary `event` was normalised with; the pipeline normalises again if the live one differs.
    let vocabularyHash: String

    init(seq: Int64, patient: String, clinic: String, event: NormalisedEvent?, vocabularyHash: String) {
        self.seq = seq
        self.patient = patient
        self.clinic = clinic
        self.event = event
        self.vocabularyHash = vocabularyHash
    }
}

/// Events journaled by ingest and not yet taken by the evaluation pipeline, in journal order.
///
/// The journal stays the queue of record: this is a bounded shortcut in memory, and it is how ingest keeps pace
/// with evaluation. Before checking a batch, ingest reserves room for it (``reserve(_:)``), waiting (at most
/// `patience`) while the events waiting and the batches already reserved leave none: it reads nothing more
/// meanwhile, so senders feel the backpressure as they do when `limits.max_in_flight` is reached. Ingest therefore
/// runs at most about two hand-offs ahead of evaluation, and no event is decoded twice. The journal thread never
/// waits here (``push(_:reserved:)`` fills the room reserved): it also writes the pipeline's commits
/// (``JournalQueue``), which the pipeline may be waiting for.
///
/// If the pipeline takes nothing for `patience` (it is stopped, or retrying after a store failure), further
/// events are left out and the hand-off is marked as overflowed: ingest goes on journaling and acknowledging,
/// and the pipeline evaluates what was buffered (the events before the first one left out), then reads the
/// journal after the last event it evaluated, as it does after a restart, and skips anything it is handed later
/// that it has already evaluated (by sequence number). Memory is bounded by `capacity`, never by backlog.
final class HandOff: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var events: [JournaledEvent] = []
    /// Room promised to batches being checked or journaled (messages, an upper bound on their events).
    private var reserved = 0
    private var overflowed = false
    private var waited: Duration = .zero

    let capacity: Int
    let patience: Duration

    init(capacity: Int, patience: Duration = .seconds(1)) {
        self.capacity = max(1, capacity)
        self.patience = max(.zero, patience)
    }

    /// Reserves room for a batch of `count` messages, waiting (at most ``patience``) while the events waiting and
    /// the room already reserved leave too little; if there is still too little (or the batch is larger than
    /// `capacity`), marks the hand-off overflowed: what is pushed next is left out, for the pipeline to read from
    /// the journal. Every reservation is given back by ``push(_:reserved:)``.
    func reserve(_ count: Int) {
        condition.lock()
        defer { condition.unlock() }
        defer { reserved += count }
        guard !overflowed, events.count + reserved + count > capacity else { return }
        if patience > .zero {
            let started = ContinuousClock.now
            let deadline = Date(timeIntervalSinceNow: patience.timeInterval)
            while events.count + reserved + count > capacity, events.count + reserved > 0, condition.wait(until: deadline) {}
            waited += ContinuousClock.now - started
        }
        if events.count + reserved + count > capacity { overflowed = true }
    }

    /// Adds the events of one journal commit (in sequence order), unless events were left out since the last
    /// ``take()``, and gives back the room reserved for its messages. Never waits.
    func push(_ more: [JournaledEvent], reserved count: Int) {
        condition.lock()
        defer { condition.unlock() }
        reserved -= count
        condition.broadcast()
        // Once an event is left out, every later one is too: the buffer stays a gap-free prefix.
        guard !overflowed else { return }
        events += more
    }

    /// Takes everything buffered. `overflowed` says that events after these were left out since the last call:
    /// the journal must be read to find them. `waited` is how long ingest waited for room since the last call.
    func take() -> (events: [JournaledEvent], overflowed: Bool, waited: Duration) {
        condition.lock()
        defer { condition.unlock() }
        let taken = (events, overflowed, waited)
        events = []
        overflowed = false
        waited = .zero
        condition.broadcast()
        return taken
    }
}
