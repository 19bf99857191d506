/// The built-in functions of the condition language. Each entry checks its arguments and lowers to ``Code``.
extension ExpressionCompiler {
    /// Every built-in function with a one-line signature, for documentation and "did you mean".
    package static let functions: [(name: String, signature: String)] = [
        ("latest", "latest(observation, [since:, before:, within:]) → its latest valid value"),
        ("at", "at(observation or context fact, time) → its value as of that time"),
        ("exists", "exists(fact, …, [since:, before:, within:, route:, min_dose:]) → true when any is present/active/recorded"),
        ("absent", "absent(fact, …, [filters]) → not exists(…); never unknown"),
        ("count", "count(fact, …, [filters]) → number of matching records"),
        ("first_time", "first_time(fact, …, [filters]) → time of the earliest matching record (medication start, onset, sample time)"),
        ("last_time", "last_time(fact, …, [filters]) → time of the latest matching record"),
        ("daily_dose", "daily_dose(medication, …, [filters]) → summed daily dose of the active items"),
        ("rejected", "rejected([fact, …], [filters]) → a value of these facts (any, when none named) was rejected as unusable"),
        ("flagged", "flagged([fact, …], [filters]) → a value was accepted but flagged (e.g. likely unit error)"),
        ("findings", "findings([fact, …], [filters]) → text describing the data-quality findings"),
        ("time_of", "time_of(latest(…)) → when that result was taken"),
        ("age", "age(latest(…)) → how long ago that result was taken"),
        ("reported", "reported(latest(…)) → the value and unit as the laboratory sent them"),
        ("known", "known(x) → true when x is not unknown"),
        ("is_unknown", "is_unknown(x) → true when x is unknown"),
        ("coalesce", "coalesce(a, b, …) → the first known argument"),
        ("earliest", "earliest(time, …) → the earliest of the known times; unknown only if all are unknown"),
        ("min", "min(a, b, …) → the smallest; unknown if any is unknown"),
        ("max", "max(a, b, …) → the largest; unknown if any is unknown"),
    ]

    mutating func call(_ name: String, _ arguments: [CallArgument], _ at: Int) throws(ExpressionError) -> (Code, ValueType) {
        switch name {
        case "latest":
            let (fact, filter) = try factsAndFilter(name, arguments, at, kinds: [.observation], single: true)
            let definition = vocabulary.facts[fact[0]]
            return (.latest(fact: fact[0], filter: filter, at: nil, attribute: .value), observationType(definition))
        case "at":
            return try atCall(arguments, at)
        case "exists", "absent":
            let (facts, filter) = try factsAndFilter(name, arguments, at, kinds: FactKind.allCases, single: false)
            let code = Code.exists(facts: facts, filter: filter)
            return (name == "exists" ? code : .not(code), .bool)
        case "count":
            let (facts, filter) = try factsAndFilter(name, arguments, at, kinds: FactKind.allCases, single: false)
            return (.count(facts: facts, filter: filter), .number)
        case "first_time", "last_time":
            let (facts, filter) = try factsAndFilter(name, arguments, at, kinds: FactKind.allCases, single: false)
            return (name == "first_time" ? .firstTime(facts: facts, filter: filter) : .lastTime(facts: facts, filter: filter), .time)
        case "daily_dose":
            let (facts, filter) = try factsAndFilter(name, arguments, at, kinds: [.medication], single: false)
            let units = Set(facts.compactMap { vocabulary.facts[$0].unit?.symbol })
            guard units.count == 1, let unit = vocabulary.facts[facts[0]].unit else {
                throw ExpressionError(at, "daily_dose needs medications with one canonical unit, found \(units.sorted())")
            }
            return (.dailyDose(facts: facts, filter: filter, unit: unit), .quantity(unit.dimension))
        case "rejected", "flagged", "findings":
            let (facts, filter) = try factsAndFilter(name, arguments, at, kinds: FactKind.allCases, single: false, allowNone: true)
            let severity: DataQualityFinding.Severity? = name == "rejected" ? .rejected : name == "flagged" ? .flagged : nil
            let code = Code.findings(facts: facts.isEmpty ? nil : facts, filter: filter, severity: severity, asText: name == "findings")
            return (code, name == "findings" ? .text(values: nil) : .bool)
        case "time_of", "age", "reported":
            guard arguments.count == 1, arguments[0].label == nil else {
                throw ExpressionError(at, "\(name) takes one argument: latest(…), at(…) or an observation")
            }
            let (code, _) = try compile(arguments[0].value)
            guard case .latest(let fact, let filter, let when, .value) = code else {
                throw ExpressionError(arguments[0].offset, "\(name) needs a result: latest(…), at(observation, time) or an observation name")
            }
            let attribute: ObservationAttribute = name == "time_of" ? .time : name == "age" ? .age : .reported
            let type: ValueType = name == "time_of" ? .time : name == "age" ? .quantity(.duration) : .text(values: nil)
            return (.latest(fact: fact, filter: filter, at: when, attribute: attribute), type)
        case "earliest":
            guard arguments.count >= 2, arguments.allSatisfy({ $0.label == nil }) else {
                throw ExpressionError(at, "earliest takes two or more times")
            }
            var codes: [Code] = []
            for argument in arguments {
                let (code, type) = try compile(argument.value)
                guard type == .time else { throw ExpressionError(argument.offset, "earliest needs times, found \(type)") }
                codes.append(code)
            }
            return (.earliest(codes), .time)
        case "known", "is_unknown":
            guard arguments.count == 1, arguments[0].label == nil else {
                throw ExpressionError(at, "\(name) takes one argument")
            }
            let (code, _) = try compile(arguments[0].value)
            return (name == "known" ? .known(code) : .isUnknown(code), .bool)
        case "coalesce", "min", "max":
            guard arguments.count >= 2, arguments.allSatisfy({ $0.label == nil }) else {
                throw ExpressionError(at, "\(name) takes two or more arguments")
            }
            var codes: [Code] = []
            var type: ValueType?
            for argument in arguments {
                let (code, t) = try compile(argument.value)
                if let type, !(type == t || (ExpressionCompiler.assignable(t, to: type))) {
                    throw ExpressionError(argument.offset, "\(name) needs arguments of one type: \(type) and \(t)")
                }
                if name != "coalesce" {
                    switch t {
                    case .number, .quantity, .time: break
                    default: throw ExpressionError(argument.offset, "\(name) needs numbers, quantities or times, found \(t)")
                    }
                }
                type = type ?? t
                codes.append(code)
            }
            let code: Code = name == "coalesce" ? .coalesce(codes) : name == "min" ? .minimum(codes) : .maximum(codes)
            return (code, type!)
        default:
            let hint = Spelling.suggestion(for: name, among: Self.functions.map(\.name)).map { " (did you mean '\($0)'?)" } ?? ""
            throw ExpressionError(at, "unknown function '\(name)'\(hint)")
        }
    }

    private mutating func atCall(_ arguments: [CallArgument], _ at: Int) throws(ExpressionError) -> (Code, ValueType) {
        guard arguments.count == 2, arguments.allSatisfy({ $0.label == nil }), case .name(let name, let nameAt) = arguments[0].value else {
            throw ExpressionError(at, "at takes a fact name and a time: at(pregnancy.status, time_of(latest(hb)))")
        }
        let (time, timeType) = try compile(arguments[1].value)
        guard timeType == .time else {
            throw ExpressionError(arguments[1].offset, "the second argument of at must be a time, found \(timeType)")
        }
        if let context = ContextFact(rawValue: name) {
            guard context != .now else { throw ExpressionError(nameAt, "at(now, …) is just the time itself") }
            return (.context(context, at: time), context.type)
        }
        if let fact = vocabulary.fact(identifier: name), fact.kind == .observation {
            return (.latest(fact: fact.index, filter: Filter(), at: time, attribute: .value), observationType(fact))
        }
        throw ExpressionError(nameAt, "at needs an observation or a context fact such as pregnancy.status, found '\(name)'\(suggestion(name))")
    }

    /// Reads leading positional fact names and trailing named filters.
    private mutating func factsAndFilter(
        _ function: String, _ arguments: [CallArgument], _ at: Int, kinds: [FactKind], single: Bool, allowNone: Bool = false
    ) throws(ExpressionError) -> ([Int], Filter) {
        var facts: [Int] = []
        var filter = Filter()
        for argument in arguments {
            guard let label = argument.label else {
                guard filter.isEmpty else {
                    throw ExpressionError(argument.offset, "facts come before named filters in \(function)(…)")
                }
                guard case .name(let name, let nameAt) = argument.value else {
                    throw ExpressionError(argument.offset, "\(function) needs fact names as arguments")
                }
                guard let fact = vocabulary.fact(identifier: name) else {
                    if derived[name] != nil || ContextFact(rawValue: name) != nil {
                        throw ExpressionError(nameAt, "\(function) reads recorded facts; '\(name)' is \(derived[name] != nil ? "derived by rules" : "built in") — use it directly")
                    }
                    throw ExpressionError(nameAt, "unknown fact '\(name)'\(suggestion(name))")
                }
                guard kinds.contains(fact.kind) else {
                    throw ExpressionError(nameAt, "\(function) needs \(kinds.map(\.rawValue).joined(separator: " or ")) facts; '\(name)' is a \(fact.kind.rawValue)")
                }
                facts.append(fact.index)
                continue
            }
            switch label {
            case "since", "before":
                let (code, type) = try compile(argument.value)
                guard type == .time else { throw ExpressionError(argument.offset, "\(label): needs a time, found \(type)") }
                if label == "since" { filter.since = code } else { filter.before = code }
            case "within":
                let (code, type) = try compile(argument.value)
                guard type == .quantity(.duration) else {
                    throw ExpressionError(argument.offset, "within: needs a duration such as 90 d, found \(type)")
                }
                filter.within = code
            case "route":
                guard case .string(let route, _) = argument.value else {
                    throw ExpressionError(argument.offset, "route: needs quoted text such as \"IM\"")
                }
                filter.route = route.uppercased()
            case "after":
                guard case .string(let after, _) = argument.value else {
                    throw ExpressionError(argument.offset, "after: needs quoted text such as \"b12-injection\"")
                }
                filter.after = after
            case "min_dose":
                let (code, type) = try compile(argument.value)
                guard case .constant(.quantity(let v, let unit)) = code, type == .quantity(.doseRate),
                    let dose = unit.convert(v, to: UnitTable.unit("mg/d")!)
                else {
                    throw ExpressionError(argument.offset, "min_dose: needs a constant daily dose such as 1 mg/d")
                }
                filter.minDose = dose
            default:
                let hint = Spelling.suggestion(for: label, among: ["since", "before", "within", "route", "min_dose", "after"]).map { " (did you mean '\($0)'?)" } ?? ""
                throw ExpressionError(argument.offset, "unknown filter '\(label):'\(hint); filters are since, before, within, route, min_dose, after")
            }
        }
        if facts.isEmpty, !allowNone { throw ExpressionError(at, "\(function) needs at least one fact") }
        if single, facts.count > 1 { throw ExpressionError(at, "\(function) takes one fact") }
        if filter.minDose != nil, facts.contains(where: { vocabulary.facts[$0].kind != .medication }) {
            throw ExpressionError(at, "min_dose: applies to medications only")
        }
        if filter.after != nil, facts.contains(where: { vocabulary.facts[$0].kind != .reaction }) {
            throw ExpressionError(at, "after: applies to reactions only")
        }
        return (facts, filter)
    }
}
