/// The compiled form of an expression: names resolved to fact indices and slots, parameters folded to
/// constants, types checked. Evaluated by ``Evaluator``.
package indirect enum Code: Sendable {
    case constant(Value)
    /// A built-in context fact at the evaluation time, or at another time.
    case context(ContextFact, at: Code?)
    /// The latest valid observation of a fact (optionally as of another time), or an attribute of it.
    case latest(fact: Int, filter: Filter, at: Code?, attribute: ObservationAttribute)
    /// A derived fact set by an earlier rule.
    case derived(slot: Int)
    case exists(facts: [Int], filter: Filter)
    case count(facts: [Int], filter: Filter)
    case firstTime(facts: [Int], filter: Filter)
    case lastTime(facts: [Int], filter: Filter)
    case dailyDose(facts: [Int], filter: Filter, unit: Unit)
    /// Whether data-quality findings exist for these facts (any fact when `nil`).
    case findings(facts: [Int]?, filter: Filter, severity: DataQualityFinding.Severity?, asText: Bool)
    case known(Code)
    case isUnknown(Code)
    case coalesce([Code])
    /// The earliest of the known times; unknown only when all are unknown.
    case earliest([Code])
    case minimum([Code])
    case maximum([Code])
    case not(Code)
    case and([Code])
    case or([Code])
    case compare(ComparisonOperator, Code, Code)
    case arithmetic(ArithmeticOperator, Code, Code)
    case negate(Code)
    case member(Code, Code, negated: Bool)
    /// Text rendered from a template (`set:` values of text facts).
    case template(Template)

    /// A constant's value, when the code is constant.
    package var constantValue: Value? {
        if case .constant(let value) = self { return value }
        return nil
    }
}

/// What to read from the latest observation.
package enum ObservationAttribute: Sendable {
    case value, time, age, reported
}

/// Record filters shared by the fact functions. A bound whose value is unknown does not restrict.
package struct Filter: Sendable {
    /// Record time ≥ since.
    package var since: Code?
    /// Record time < before.
    package var before: Code?
    /// Record time ≥ now − within.
    package var within: Code?
    /// Route of a medication or administration (`IM`, `oral`).
    package var route: String?
    /// Minimum daily dose of a medication, in the fact's canonical unit.
    package var minDose: Double?
    /// What a reaction followed (`b12-injection`).
    package var after: String?

    package init() {}

    package var isEmpty: Bool {
        since == nil && before == nil && within == nil && route == nil && minDose == nil && after == nil
    }
}

/// Alert text with `{{ expression }}` placeholders, compiled.
package struct Template: Sendable {
    package enum Part: Sendable {
        case text(String)
        case code(Code)
    }

    package var parts: [Part]

    package init(parts: [Part]) {
        self.parts = parts
    }

    /// The text without its placeholders (for static length checks).
    package var literalText: String {
        parts.map { if case .text(let t) = $0 { return t } else { return "" } }.joined()
    }
}
