/// ``Code`` lowered once more, when a rule is compiled, into a tree of closures that evaluation calls directly.
///
/// Why it exists: interpreting ``Code`` switched over an indirect enum at every node of every rule for every
/// event, and binding a case's payload copied it (child codes, filters, fact lists), a retain and a release per
/// copy. In the daemon that interpreter was a tenth of all CPU. A closure captures exactly what its node needs,
/// decided once (a filter with no bounds, a comparison with a constant side), so evaluating a node is one call.
/// ``Code`` stays the form the compiler folds and checks and that tooling reads; this is evaluation's form only,
/// and each closure does what the same ``Code`` case always did, in the same order, so results, evidence and its
/// order are unchanged.
struct CompiledCode: Sendable {
    typealias Run = @Sendable (inout Evaluator.State) -> Value

    let run: Run

    init(_ code: Code) {
        run = Self.lower(code)
    }

    /// Child codes are kept as `CompiledCode`, never as bare closures in an array or an optional: there a closure
    /// is stored at its most general calling convention, and every call then goes through a conversion thunk.
    private static func child(_ code: Code) -> CompiledCode { CompiledCode(code) }

    private static func lower(_ code: Code) -> Run {
        switch code {
        case .constant(let value):
            return { _ in value }
        case .derived(let slot):
            return { state in
                state.evidence.append(.derived(slot))
                return state.derived[slot] ?? state.bundle.derived[slot].defaultValue
            }
        case .context(let fact, let at):
            guard let at = at.map(child) else { return { state in state.context(fact, at: state.now) } }
            return { state in
                guard case .time(let t) = at.run(&state) else { return .unknown }
                return state.context(fact, at: t)
            }
        case .latest(let fact, let filter, let at, let attribute):
            let filter = CompiledFilter(filter)
            guard let at = at.map(child) else {
                return { state in state.latest(fact, filter, asOf: state.now, attribute) }
            }
            return { state in
                guard case .time(let t) = at.run(&state) else { return .unknown }
                return state.latest(fact, filter, asOf: min(t, state.now), attribute)
            }
        case .exists(let facts, let filter):
            let filter = CompiledFilter(filter)
            if facts.count == 1 {
                let fact = facts[0]
                return { state in
                    let bounds = state.bounds(filter)
                    return .bool(state.matchCount(fact, filter, bounds, stopAtFirst: true) > 0)
                }
            }
            return { state in
                let bounds = state.bounds(filter)
                for fact in facts where state.matchCount(fact, filter, bounds, stopAtFirst: true) > 0 { return .bool(true) }
                return .bool(false)
            }
        case .count(let facts, let filter):
            let filter = CompiledFilter(filter)
            return { state in
                let bounds = state.bounds(filter)
                var count = 0
                for fact in facts { count += state.matchCount(fact, filter, bounds, stopAtFirst: false) }
                return .number(Double(count))
            }
        case .firstTime(let facts, let filter):
            let filter = CompiledFilter(filter)
            return { state in state.recordTime(facts, filter, first: true) }
        case .lastTime(let facts, let filter):
            let filter = CompiledFilter(filter)
            return { state in state.recordTime(facts, filter, first: false) }
        case .dailyDose(let facts, let filter, let unit):
            let filter = CompiledFilter(filter)
            return { state in state.dailyDose(facts, filter, unit) }
        case .findings(let facts, let filter, let severity, let asText):
            let filter = CompiledFilter(filter)
            return { state in state.findings(facts, filter, severity, asText) }
        case .known(let inner):
            let inner = lower(inner)
            return { state in .bool(!inner(&state).isUnknown) }
        case .isUnknown(let inner):
            let inner = lower(inner)
            return { state in .bool(inner(&state).isUnknown) }
        case .coalesce(let codes):
            let codes = codes.map(child)
            return { state in
                for code in codes {
                    let value = code.run(&state)
                    if !value.isUnknown { return value }
                }
                return .unknown
            }
        case .earliest(let codes):
            let codes = codes.map(child)
            return { state in
                var best: Double?
                for code in codes {
                    if case .time(let t) = code.run(&state), best.map({ t < $0 }) ?? true { best = t }
                }
                return best.map { .time($0) } ?? .unknown
            }
        case .minimum(let codes):
            return extreme(codes.map(child), wanting: .less)
        case .maximum(let codes):
            return extreme(codes.map(child), wanting: .greater)
        case .not(let inner):
            let inner = lower(inner)
            return { state in
                guard case .bool(let b) = inner(&state) else { return .unknown }
                return .bool(!b)
            }
        case .and(let terms):
            return kleene(terms.map(child), decisive: false)
        case .or(let terms):
            return kleene(terms.map(child), decisive: true)
        case .compare(let op, let lhs, .constant(let rhs)):
            // The usual shape (`latest(x) < $threshold`): the constant is captured, not called.
            let lhs = lower(lhs)
            return { state in Evaluator.compare(op, lhs(&state), rhs) }
        case .compare(let op, let lhs, let rhs):
            let lhs = lower(lhs)
            let rhs = lower(rhs)
            return { state in
                let a = lhs(&state)
                return Evaluator.compare(op, a, rhs(&state))
            }
        case .arithmetic(let op, let lhs, let rhs):
            let lhs = lower(lhs)
            let rhs = lower(rhs)
            return { state in
                let a = lhs(&state)
                return Evaluator.arithmetic(op, a, rhs(&state))
            }
        case .negate(let inner):
            let inner = lower(inner)
            return { state in Evaluator.negate(inner(&state)) }
        case .template(let template):
            let template = CompiledTemplate(template)
            return { state in .text(template.render(&state)) }
        case .member(let element, let collection, let negated):
            let element = lower(element)
            let collection = lower(collection)
            return { state in
                guard case .text(let text) = element(&state), case .textSet(let set) = collection(&state) else { return .unknown }
                return .bool(set.contains(text) != negated)
            }
        }
    }

    /// Kleene `and` (`decisive` false) and `or` (`decisive` true): the decisive value wins, then unknown. Every
    /// term up to the first decisive one is evaluated (and its evidence recorded), as before. More than two terms
    /// nest to the right, `a and (b and c)`: the same order, the same result, and no loop over an array of
    /// closures (which retained and released each closure it called).
    private static func kleene(_ terms: [CompiledCode], decisive: Bool) -> Run {
        if terms.count >= 2 {
            let first = terms[0].run
            let second = terms.count == 2 ? terms[1].run : kleene(Array(terms.dropFirst()), decisive: decisive)
            return { state in
                let a = first(&state)
                if case .bool(decisive) = a { return .bool(decisive) }
                let b = second(&state)
                if case .bool(decisive) = b { return .bool(decisive) }
                if case .bool(!decisive) = a, case .bool(!decisive) = b { return .bool(!decisive) }
                return .unknown
            }
        }
        return { state in
            var sawUnknown = false
            for term in terms {
                switch term.run(&state) {
                case .bool(decisive): return .bool(decisive)
                case .bool: continue
                default: sawUnknown = true
                }
            }
            return sawUnknown ? .unknown : .bool(!decisive)
        }
    }

    /// `min` or `max`: unknown as soon as any argument is.
    private static func extreme(_ codes: [CompiledCode], wanting order: ComparisonOperator) -> Run {
        { state in
            var best: Value?
            for code in codes {
                let value = code.run(&state)
                if value.isUnknown { return .unknown }
                if let current = best {
                    if case .bool(true) = Evaluator.compare(order, value, current) { best = value }
                } else {
                    best = value
                }
            }
            return best ?? .unknown
        }
    }
}

/// A ``Filter`` whose bounds are compiled.
struct CompiledFilter: Sendable {
    let since: CompiledCode?
    let before: CompiledCode?
    let within: CompiledCode?
    let route: String?
    let minDose: Double?
    let after: String?
    /// Whether any time bound is set: most filters have none, and then reading them costs nothing.
    let hasBounds: Bool

    init(_ filter: Filter) {
        since = filter.since.map(CompiledCode.init)
        before = filter.before.map(CompiledCode.init)
        within = filter.within.map(CompiledCode.init)
        route = filter.route
        minDose = filter.minDose
        after = filter.after
        hasBounds = since != nil || before != nil || within != nil
    }
}

/// A ``Template`` whose placeholders are compiled.
struct CompiledTemplate: Sendable {
    private enum Part: Sendable {
        case text(String)
        case code(CompiledCode)
    }

    private let parts: [Part]

    init(_ template: Template) {
        parts = template.parts.map {
            switch $0 {
            case .text(let text): .text(text)
            case .code(let code): .code(CompiledCode(code))
            }
        }
    }

    /// The text; the facts its placeholders read count as evidence.
    func render(_ state: inout Evaluator.State) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .text(let text): out += text
            case .code(let code): out += code.run(&state).display
            }
        }
        return out
    }
}
