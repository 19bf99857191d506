import RuleEngine
import Synchronization

/// A journaled event on its way to evaluation: its journal sequence number and the event as ingest decoded and
/// normalised it, so that the pipeline neither reads the journal back nor decodes the JSON a second time.
struct JournaledEvent: Sendable {
    var seq: Int64
    var patient: String
    var clinic: String
    /// `nil` for a journaled body that no longer decodes (only possible for rows written by another version).
    var event: NormalisedEvent?
    /// The vocabulary `event` was normalised with; the pipeline normalises again if the live one differs.
    var vocabularyHash: String
}

/// Events journaled by ingest and not yet taken by the evaluation pipeline, in journal order.
///
/// The journal stays the queue of record: this is a bounded shortcut in memory. When the pipeline falls more than
/// `capacity` events behind, further events are not buffered and the hand-off is marked as overflowed; the
/// pipeline evaluates what was buffered (the events before the first one left out), then reads the journal after
/// the last event it evaluated, as it does after a restart, and skips anything it is handed later that it has
/// already evaluated (by sequence number). Memory is bounded by `capacity`, never by backlog.
final class HandOff: Sendable {
    private struct State {
        var events: [JournaledEvent] = []
        var overflowed = false
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Adds the events of one journal commit (in sequence order).
    func push(_ events: [JournaledEvent]) {
        guard !events.isEmpty else { return }
        state.withLock { state in
            // Once an event is left out, every later one is too: the buffer stays a gap-free prefix.
            guard !state.overflowed else { return }
            if state.events.count + events.count > capacity {
                state.overflowed = true
            } else {
                state.events += events
            }
        }
    }

    /// Takes everything buffered. `overflowed` says that events after these were left out since the last call:
    /// the journal must be read to find them.
    func take() -> (events: [JournaledEvent], overflowed: Bool) {
        state.withLock { state in
            defer { state = State() }
            return (state.events, state.overflowed)
        }
    }
}
