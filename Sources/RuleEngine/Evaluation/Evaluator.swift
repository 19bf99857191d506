internal import Crypto

/// Evaluates a patient timeline against a compiled ``RuleBundle``: deterministic, synchronous and `Sendable`.
///
/// Rules run in dependency order. Rules that set the same derived fact form a decision table: the first whose
/// condition is *true* sets the fact and raises its alert; the rest are skipped. Rules that set nothing raise
/// their alert whenever their condition is true. Unknown never fires a rule.
package struct Evaluator: Sendable {
    package let bundle: RuleBundle

    package init(bundle: RuleBundle) {
        self.bundle = bundle
    }

    /// Evaluates as of `now` (default: the time of the latest event applied to the timeline), building every
    /// alert's text and evidence.
    package func evaluate(_ timeline: PatientTimeline, at now: Double? = nil) -> EvaluationResult {
        evaluateLazily(timeline, at: now).result()
    }

    /// Evaluates, recording for each fired alert only its placeholder values and where its evidence lies. Texts
    /// and evidence are built on demand (``LazyEvaluation/alert(_:)``): the daemon builds them only for alerts
    /// it publishes, and detects changes from ``LazyEvaluation/digest(_:)``.
    ///
    /// The evaluation keeps its own copy of the timeline (alerts are built from it later); taking it `consuming`
    /// lets a caller's copy move into the state instead of being copied twice.
    ///
    /// `scratch` lends the evaluation its buffers (see ``Scratch``); the result holds them until
    /// ``LazyEvaluation/recycle()`` gives them back.
    package func evaluateLazily(
        _ timeline: consuming PatientTimeline, at now: Double? = nil, reusing scratch: consuming Scratch = Scratch()
    ) -> LazyEvaluation {
        let now = now ?? timeline.lastEventTime
        var fired: [LazyEvaluation.Fired] = []
        swap(&fired, &scratch.fired)
        fired.removeAll(keepingCapacity: true)
        var state = State(timeline: timeline, now: now, bundle: bundle, reusing: scratch)
        let steps = bundle.steps
        // By index, reading each step in place: `for step in steps` copied every step (three retains and releases).
        for index in steps.indices {
            // `setBy` is set with `derived`; reading it does not copy the fact's value (`derived[slot] != nil` did).
            if steps[index].sets.contains(where: { state.setBy[$0.slot] != nil }) { continue }
            let mark = state.evidence.count
            guard case .bool(true) = steps[index].condition.run(&state) else {
                // What a rule that did not fire read is forgotten (removeLast: cheaper than a generic removeSubrange).
                if state.evidence.count > mark { state.evidence.removeLast(state.evidence.count - mark) }
                continue
            }
            for assignment in steps[index].sets {
                state.derived[assignment.slot] = assignment.value.run(&state)
                state.setBy[assignment.slot] = index
            }
            // What a derived fact was concluded from stays recorded, for the alerts of rules that read it.
            for assignment in steps[index].sets { state.basis[assignment.slot] = mark..<state.evidence.count }
            guard steps[index].hasAlert else { continue }
            var values: [Value] = []
            values.reserveCapacity(steps[index].placeholders.count)
            for code in steps[index].placeholders { values.append(code.run(&state)) }
            fired.append(LazyEvaluation.Fired(rule: index, evidence: mark..<state.evidence.count, values: values))
        }
        // Moved, not copied (a copy retained and released every reference the state holds).
        return LazyEvaluation(state: consume state, fired: consume fired)
    }

    /// A stable alert identity per patient × rule that does not reveal the patient identifier.
    package static func alertID(patient: String, rule: String) -> String {
        SHA256.hash(data: Array("\(patient)\u{0}\(rule)".utf8)).hexDigits(limit: 10)
    }

    static func limit(_ text: String, to count: Int) -> String {
        guard text.count > count else { return text }
        return String(text.prefix(count - 1)) + "…"
    }

    // MARK: - Pure operations (also used for constant folding)

    /// Arithmetic on values; unknown when either is, and when the result is not a finite number or a time that
    /// can be written (``Timestamp/representable``): a rule's arithmetic may run away (`1e308 * 10`, `now + 1e14
    /// wk`), and infinities and NaN are not JSON numbers, nor such times RFC 3339 times.
    package static func arithmetic(_ op: ArithmeticOperator, _ a: Value, _ b: Value) -> Value {
        switch unchecked(op, a, b) {
        case .number(let x) where !x.isFinite, .quantity(let x, _) where !x.isFinite: .unknown
        case .time(let t) where !Timestamp.representable.contains(t): .unknown
        case let result: result
        }
    }

    private static func unchecked(_ op: ArithmeticOperator, _ a: Value, _ b: Value) -> Value {
        switch (op, a, b) {
        case (_, .unknown, _), (_, _, .unknown):
            return .unknown
        case (.add, .number(let x), .number(let y)): return .number(x + y)
        case (.subtract, .number(let x), .number(let y)): return .number(x - y)
        case (.multiply, .number(let x), .number(let y)): return .number(x * y)
        case (.divide, .number(let x), .number(let y)): return y == 0 ? .unknown : .number(x / y)
        case (.add, .quantity(let x, let u), .quantity(let y, let v)):
            return v.convert(y, to: u).map { .quantity(x + $0, u) } ?? .unknown
        case (.subtract, .quantity(let x, let u), .quantity(let y, let v)):
            return v.convert(y, to: u).map { .quantity(x - $0, u) } ?? .unknown
        case (.subtract, .time(let x), .time(let y)):
            return .quantity((x - y) / 86_400, .day)
        case (.add, .time(let t), .quantity(let d, let u)), (.add, .quantity(let d, let u), .time(let t)):
            return u.convert(d, to: .second).map { .time(t + $0) } ?? .unknown
        case (.subtract, .time(let t), .quantity(let d, let u)):
            return u.convert(d, to: .second).map { .time(t - $0) } ?? .unknown
        case (.multiply, .number(let n), .quantity(let x, let u)), (.multiply, .quantity(let x, let u), .number(let n)):
            return .quantity(x * n, u)
        case (.divide, .quantity(let x, let u), .number(let n)):
            return n == 0 ? .unknown : .quantity(x / n, u)
        case (.multiply, .quantity(let x, let u), .quantity(let y, let v)):
            return product(x * y, u * v)
        case (.divide, .quantity(let x, let u), .quantity(let y, let v)):
            if y == 0 { return .unknown }
            if u.dimension == v.dimension, let converted = v.convert(y, to: u) { return .number(x / converted) }
            return product(x / y, u / v)
        default:
            return .unknown
        }
    }

    private static func product(_ value: Double, _ unit: Unit) -> Value {
        guard unit.dimension == .none else { return .quantity(value, unit) }
        return Unit.one.dimension == unit.dimension ? .number(unit.convert(value, to: .one) ?? value) : .quantity(value, unit)
    }

    package static func negate(_ a: Value) -> Value {
        switch a {
        case .number(let x): return .number(-x)
        case .quantity(let x, let u): return .quantity(-x, u)
        default: return .unknown
        }
    }

    /// Three-valued comparison: unknown when either side is unknown.
    package static func compare(_ op: ComparisonOperator, _ a: Value, _ b: Value) -> Value {
        let order: Int?
        switch (a, b) {
        case (.unknown, _), (_, .unknown): return .unknown
        case (.number(let x), .number(let y)): order = x < y ? -1 : x > y ? 1 : 0
        case (.time(let x), .time(let y)): order = x < y ? -1 : x > y ? 1 : 0
        case (.quantity(let x, let u), .quantity(let y, let v)):
            let z = u.isSameScale(as: v) ? y : v.convert(y, to: u)
            guard let z else { return .unknown }
            order = x < z ? -1 : x > z ? 1 : 0
        case (.text(let x), .text(let y)): order = x == y ? 0 : nil
        case (.bool(let x), .bool(let y)): order = x == y ? 0 : nil
        case (.textSet(let x), .textSet(let y)): order = x == y ? 0 : nil
        default: return .unknown
        }
        switch op {
        case .equal: return .bool(order == 0)
        case .notEqual: return .bool(order != 0)
        case .less: return order.map { .bool($0 < 0) } ?? .unknown
        case .lessEqual: return order.map { .bool($0 <= 0) } ?? .unknown
        case .greater: return order.map { .bool($0 > 0) } ?? .unknown
        case .greaterEqual: return order.map { .bool($0 >= 0) } ?? .unknown
        }
    }
}
