/// Resolves names, checks types and units, and lowers an ``Expression`` to ``Code``.
///
/// Errors are ``ExpressionError``s at an offset in the expression text; the loader turns them into
/// `file:line:column` diagnostics. The compiler records which derived facts and parameters an expression reads,
/// for dependency ordering and the unused-parameter check.
package struct ExpressionCompiler {
    package let vocabulary: Vocabulary
    package let derived: [String: DerivedFact]
    package let parameters: [String: Parameter]

    /// Derived-fact slots read so far.
    package private(set) var readsDerived: Set<Int> = []
    /// Parameter names used so far.
    package private(set) var usedParameters: Set<String> = []
    /// Parameter names used since the last ``resetReads()``, in order of first use.
    package private(set) var recentParameters: [String] = []

    package init(vocabulary: Vocabulary, derived: [String: DerivedFact], parameters: [String: Parameter]) {
        self.vocabulary = vocabulary
        self.derived = derived
        self.parameters = parameters
    }

    package mutating func resetReads() {
        readsDerived = []
        recentParameters = []
    }

    /// Compiles a condition, which must be boolean.
    package mutating func condition(_ text: String) throws(ExpressionError) -> Code {
        let expression = try Parser.parse(text)
        let (code, type) = try compile(expression)
        guard type == .bool else {
            throw ExpressionError(0, "a condition must be true or false, but this expression is \(type)")
        }
        return code
    }

    /// Compiles a value expression and checks it against the expected type.
    package mutating func value(_ text: String, expecting expected: ValueType) throws(ExpressionError) -> Code {
        let expression = try Parser.parse(text)
        let (code, type) = try compile(expression)
        guard Self.assignable(type, to: expected) else {
            throw ExpressionError(0, "expected \(expected), but this expression is \(type)")
        }
        if case .text(let values?) = expected, case .constant(.text(let t)) = code, !values.contains(t) {
            throw ExpressionError(0, "'\(t)' is not one of \(values.joined(separator: ", "))")
        }
        return code
    }

    /// Compiles a `{{ … }}` template; offsets in errors are offsets in the template text.
    package mutating func template(_ text: String) throws(ExpressionError) -> Template {
        var parts: [Template.Part] = []
        let scalars = Array(text.unicodeScalars)
        var literal = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "{", i + 1 < scalars.count, scalars[i + 1] == "{" {
                var j = i + 2
                while j + 1 < scalars.count, !(scalars[j] == "}" && scalars[j + 1] == "}") { j += 1 }
                guard j + 1 < scalars.count else { throw ExpressionError(i, "'{{' without a closing '}}'") }
                if !literal.isEmpty {
                    parts.append(.text(String(literal)))
                    literal = String.UnicodeScalarView()
                }
                let inner = String(String.UnicodeScalarView(scalars[(i + 2)..<j]))
                do {
                    let (code, _) = try compile(try Parser.parse(inner))
                    parts.append(.code(code))
                } catch {
                    throw ExpressionError(i + 2 + error.offset, error.message)
                }
                i = j + 2
            } else {
                literal.append(scalars[i])
                i += 1
            }
        }
        if !literal.isEmpty { parts.append(.text(String(literal))) }
        return Template(parts: parts)
    }

    package static func assignable(_ type: ValueType, to expected: ValueType) -> Bool {
        switch (type, expected) {
        case (.text, .text): return true
        default: return type == expected
        }
    }

    // MARK: - Expressions

    mutating func compile(_ expression: Expression) throws(ExpressionError) -> (Code, ValueType) {
        switch expression {
        case .number(let n, _):
            return (.constant(.number(n)), .number)
        case .quantity(let v, let unit, _):
            return (.constant(.quantity(v, unit)), .quantity(unit.dimension))
        case .string(let s, _):
            return (.constant(.text(s)), .text(values: nil))
        case .bool(let b, _):
            return (.constant(.bool(b)), .bool)
        case .parameter(let name, let at):
            guard let parameter = parameters[name] else {
                let hint = Spelling.suggestion(for: name, among: parameters.keys).map { " (did you mean '$\($0)'?)" } ?? ""
                throw ExpressionError(at, "unknown parameter '$\(name)'\(hint)")
            }
            usedParameters.insert(name)
            if !recentParameters.contains(name) { recentParameters.append(name) }
            return (.constant(parameter.value), parameter.type)
        case .name(let name, let at):
            return try resolveName(name, at)
        case .call(let name, let arguments, let at):
            return try call(name, arguments, at)
        case .negate(let inner, let at):
            let (code, type) = try compile(inner)
            switch type {
            case .number, .quantity: return (fold(.negate(code)), type)
            default: throw ExpressionError(at, "cannot negate \(type)")
            }
        case .not(let inner, let at):
            let (code, type) = try compile(inner)
            guard type == .bool else { throw ExpressionError(at, "'not' needs true/false, found \(type)") }
            return (.not(code), .bool)
        case .and(let terms, _), .or(let terms, _):
            var codes: [Code] = []
            for term in terms {
                let (code, type) = try compile(term)
                guard type == .bool else {
                    throw ExpressionError(term.offset, "'\(expression.isAnd ? "and" : "or")' needs true/false on both sides, found \(type)")
                }
                codes.append(code)
            }
            return (expression.isAnd ? .and(codes) : .or(codes), .bool)
        case .arithmetic(let op, let lhs, let rhs, let at):
            return try arithmetic(op, lhs, rhs, at)
        case .compare(let operands, let operators, _):
            var compiled: [(Code, ValueType)] = []
            for operand in operands { compiled.append(try compile(operand)) }
            var comparisons: [Code] = []
            for (i, op) in operators.enumerated() {
                try checkComparison(op, compiled[i].1, compiled[i + 1].1, operands[i], operands[i + 1])
                comparisons.append(.compare(op, compiled[i].0, compiled[i + 1].0))
            }
            return (comparisons.count == 1 ? comparisons[0] : .and(comparisons), .bool)
        case .membership(let element, let collection, let negated, let at):
            let (elementCode, elementType) = try compile(element)
            let (collectionCode, collectionType) = try compile(collection)
            guard case .text(let allowed) = elementType, collectionType == .textSet else {
                throw ExpressionError(at, "'in' tests text against a set of text, found \(elementType) in \(collectionType)")
            }
            if let allowed, case .constant(.textSet(let members)) = collectionCode {
                for member in members.sorted() where !allowed.contains(member) {
                    throw ExpressionError(collection.offset, "'\(member)' is never a value here; expected one of \(allowed.joined(separator: ", "))")
                }
            }
            if case .constant(.text(let t)) = elementCode, case .context(.preferences, _) = collectionCode, t.isEmpty {
                throw ExpressionError(at, "empty preference")
            }
            return (.member(elementCode, collectionCode, negated: negated), .bool)
        case .set(let elements, let at):
            var members: Set<String> = []
            for element in elements {
                guard case .string(let s, _) = element else {
                    throw ExpressionError(element.offset, "set elements must be quoted text, e.g. {\"vegan\", \"vegetarian\"}")
                }
                members.insert(s)
            }
            if members.isEmpty { throw ExpressionError(at, "empty set") }
            return (.constant(.textSet(members)), .textSet)
        }
    }

    private mutating func resolveName(_ name: String, _ at: Int) throws(ExpressionError) -> (Code, ValueType) {
        if let context = ContextFact(rawValue: name) {
            return (.context(context, at: nil), context.type)
        }
        if let slot = derived[name] {
            readsDerived.insert(slot.slot)
            return (.derived(slot: slot.slot), slot.type)
        }
        if let fact = vocabulary.fact(identifier: name) {
            switch fact.kind {
            case .observation:
                return (.latest(fact: fact.index, filter: Filter(), at: nil, attribute: .value), observationType(fact))
            case .condition, .symptom, .medication, .administration, .reaction:
                return (.exists(facts: [fact.index], filter: Filter()), .bool)
            }
        }
        throw ExpressionError(at, "unknown name '\(name)'\(suggestion(name))")
    }

    func suggestion(_ name: String) -> String {
        let candidates = vocabulary.identifiers + Array(derived.keys) + ContextFact.allCases.map(\.rawValue)
        if let hint = Spelling.suggestion(for: name, among: candidates) { return " (did you mean '\(hint)'?)" }
        if name.contains("-") { return " (write '-' as '_' in names)" }
        return ""
    }

    func observationType(_ fact: FactDefinition) -> ValueType {
        if let unit = fact.unit { return .quantity(unit.dimension) }
        return .text(values: fact.values)
    }

    private func checkComparison(
        _ op: ComparisonOperator, _ lhs: ValueType, _ rhs: ValueType, _ left: Expression, _ right: Expression
    ) throws(ExpressionError) {
        switch (lhs, rhs) {
        case (.quantity(let a), .quantity(let b)) where a != b:
            throw ExpressionError(right.offset, "unit mismatch: cannot compare \(lhs) with \(rhs)")
        case (.quantity, .number), (.number, .quantity):
            throw ExpressionError(right.offset, "cannot compare \(lhs) with a plain number; write the unit (e.g. 180 ng/L)")
        default:
            break
        }
        guard lhs.comparable(with: rhs) else {
            throw ExpressionError(right.offset, "cannot compare \(lhs) with \(rhs)")
        }
        if op.isOrdering {
            switch lhs {
            case .number, .quantity, .time: break
            default: throw ExpressionError(left.offset, "'\(op.rawValue)' needs numbers, quantities or times, found \(lhs)")
            }
        }
        for (type, expression) in [(lhs, right), (rhs, left)] {
            if case .text(let values?) = type, case .string(let literal, let at) = expression, !values.contains(literal) {
                let hint = Spelling.suggestion(for: literal, among: values).map { " (did you mean '\($0)'?)" } ?? ""
                throw ExpressionError(at, "'\(literal)' is never a value here\(hint); expected one of \(values.joined(separator: ", "))")
            }
        }
    }

    private mutating func arithmetic(
        _ op: ArithmeticOperator, _ lhs: Expression, _ rhs: Expression, _ at: Int
    ) throws(ExpressionError) -> (Code, ValueType) {
        let (l, lt) = try compile(lhs)
        let (r, rt) = try compile(rhs)
        let result: ValueType? =
            switch (op, lt, rt) {
            case (.add, .number, .number), (.subtract, .number, .number), (.multiply, .number, .number),
                (.divide, .number, .number):
                .number
            case (.add, .quantity(let a), .quantity(let b)) where a == b, (.subtract, .quantity(let a), .quantity(let b)) where a == b:
                .quantity(a)
            case (.subtract, .time, .time):
                .quantity(.duration)
            case (.add, .time, .quantity(.duration)), (.subtract, .time, .quantity(.duration)), (.add, .quantity(.duration), .time):
                .time
            case (.multiply, .number, .quantity(let d)), (.multiply, .quantity(let d), .number), (.divide, .quantity(let d), .number):
                .quantity(d)
            case (.multiply, .quantity(let a), .quantity(let b)), (.divide, .quantity(let a), .quantity(let b)):
                if let product = Dimension.combining(a, b, dividing: op == .divide) {
                    product == .none ? .number : .quantity(product)
                } else {
                    throw ExpressionError(
                        at, "the unit of this \(op == .divide ? "quotient" : "product") would have an exponent beyond ±\(Dimension.exponentLimit) (\(lt) \(op.rawValue) \(rt)): not a quantity a rule can compare")
                }
            default:
                nil
            }
        guard let result else {
            throw ExpressionError(at, "cannot apply '\(op.rawValue)' to \(lt) and \(rt)")
        }
        return (fold(.arithmetic(op, l, r)), result)
    }

    /// Evaluates constant sub-expressions at load time.
    private func fold(_ code: Code) -> Code {
        switch code {
        case .arithmetic(let op, .constant(let a), .constant(let b)):
            return .constant(Evaluator.arithmetic(op, a, b))
        case .negate(.constant(let a)):
            return .constant(Evaluator.negate(a))
        default:
            return code
        }
    }
}

extension Expression {
    fileprivate var isAnd: Bool {
        if case .and = self { return true }
        return false
    }
}
