import RuleEngine
import Synchronization

/// The current rule snapshot. Readers take the whole snapshot once per event, so an event is evaluated entirely
/// under one rule set; a reload swaps the reference atomically.
///
/// Each swap starts a new generation, and a reload announces its swap before telling the store (``beginChange()``):
/// a re-evaluation may record that open alerts agree with the running rules only while its generation is current
/// and no change is announced (``isCurrent(_:)``, checked inside the record's transaction).
final class RulesHolder: Sendable {
    private struct State {
        var bundle: RuleBundle
        var generation: UInt64 = 0
        var changing = false
    }

    private let current: Mutex<State>

    init(_ bundle: RuleBundle) {
        current = Mutex(State(bundle: bundle))
    }

    var snapshot: RuleBundle { current.withLock { $0.bundle } }

    /// The running rules and their generation, read together.
    var versioned: (bundle: RuleBundle, generation: UInt64) { current.withLock { ($0.bundle, $0.generation) } }

    /// Announces a swap to come: from now until it happens (or is called off), no generation is current.
    func beginChange() {
        current.withLock { $0.changing = true }
    }

    /// Calls off the swap announced by ``beginChange()``: the running generation is current again.
    func cancelChange() {
        current.withLock { $0.changing = false }
    }

    /// Makes `bundle` the running rules, in a new generation.
    func swap(_ bundle: RuleBundle) {
        current.withLock {
            $0.bundle = bundle
            $0.generation &+= 1
            $0.changing = false
        }
    }

    /// Whether `generation` is still the running one, with no swap announced.
    func isCurrent(_ generation: UInt64) -> Bool {
        current.withLock { $0.generation == generation && !$0.changing }
    }
}
