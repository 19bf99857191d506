import RuleEngine
import Synchronization

/// The current rule snapshot. Readers take the whole snapshot once per event, so an event is evaluated entirely
/// under one rule set; a reload swaps the reference atomically.
final class RulesHolder: Sendable {
    private let current: Mutex<RuleBundle>

    init(_ bundle: RuleBundle) {
        current = Mutex(bundle)
    }

    var snapshot: RuleBundle { current.withLock { $0 } }

    func swap(_ bundle: RuleBundle) {
        current.withLock { $0 = bundle }
    }
}
