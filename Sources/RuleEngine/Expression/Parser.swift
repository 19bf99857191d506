/// A recursive-descent parser for the condition language.
///
/// Precedence, loosest first: `or`, `and`, `not`, comparison (chains allowed, plus `in` / `not in`),
/// `+ -`, `* /`, unary `-`, then primaries (literals, `$parameters`, names, calls, parentheses, `{sets}`).
/// Nesting is limited to ``maximumDepth`` so that no input can exhaust the stack; so are the `+ - * /` operators of
/// an expression, whose chains parse flat but build a tree as deep as they are long (``maximumArithmetic``: a chain
/// of about 1,070 terms overflowed the compiler's stack in a debug build).
package struct Parser {
    package static let maximumDepth = 64
    package static let maximumArithmetic = 256

    private let tokens: [Token]
    private var position = 0
    private var depth = 0
    /// `+ - * /` operators so far (see ``maximumArithmetic``).
    private var arithmetic = 0

    private init(tokens: [Token]) {
        self.tokens = tokens
    }

    /// Parses a whole expression; any trailing token is an error.
    package static func parse(_ text: String) throws(ExpressionError) -> Expression {
        var parser = Parser(tokens: try Lexer.tokenize(text))
        guard parser.current.kind != .end else { throw ExpressionError(0, "empty expression") }
        let expression = try parser.parseOr()
        guard parser.current.kind == .end else {
            throw ExpressionError(parser.current.offset, "unexpected \(parser.current.display) after a complete expression")
        }
        return expression
    }

    private var current: Token { tokens[position] }

    private mutating func advance() -> Token {
        let token = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return token
    }

    private mutating func accept(_ symbol: Token.Symbol) -> Bool {
        guard current.kind == .symbol(symbol) else { return false }
        _ = advance()
        return true
    }

    private mutating func accept(_ keyword: Token.Keyword) -> Bool {
        guard current.kind == .keyword(keyword) else { return false }
        _ = advance()
        return true
    }

    private mutating func expect(_ symbol: Token.Symbol, _ context: String) throws(ExpressionError) {
        guard accept(symbol) else {
            throw ExpressionError(current.offset, "expected '\(symbol.rawValue)' \(context), found \(current.display)")
        }
    }

    private mutating func nested<T>(_ body: (inout Parser) throws(ExpressionError) -> T) throws(ExpressionError) -> T {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Parser.maximumDepth else {
            throw ExpressionError(current.offset, "expression nests deeper than \(Parser.maximumDepth) levels")
        }
        return try body(&self)
    }

    private mutating func parseOr() throws(ExpressionError) -> Expression {
        try nested { (p: inout Parser) throws(ExpressionError) -> Expression in
            let start = p.current.offset
            var terms = [try p.parseAnd()]
            while p.accept(.or) { terms.append(try p.parseAnd()) }
            return terms.count == 1 ? terms[0] : .or(terms, at: start)
        }
    }

    private mutating func parseAnd() throws(ExpressionError) -> Expression {
        let start = current.offset
        var terms = [try parseNot()]
        while accept(.and) { terms.append(try parseNot()) }
        return terms.count == 1 ? terms[0] : .and(terms, at: start)
    }

    private mutating func parseNot() throws(ExpressionError) -> Expression {
        let start = current.offset
        if accept(.not) {
            return .not(try nested { (p: inout Parser) throws(ExpressionError) in try p.parseNot() }, at: start)
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws(ExpressionError) -> Expression {
        let start = current.offset
        let first = try parseAdditive()
        if accept(.in) {
            return .membership(first, try parseAdditive(), negated: false, at: start)
        }
        if current.kind == .keyword(.not), tokens[min(position + 1, tokens.count - 1)].kind == .keyword(.in) {
            _ = advance()
            _ = advance()
            return .membership(first, try parseAdditive(), negated: true, at: start)
        }
        var operands = [first]
        var operators: [ComparisonOperator] = []
        while case .symbol(let symbol) = current.kind, let op = ComparisonOperator(rawValue: symbol.rawValue) {
            _ = advance()
            operators.append(op)
            operands.append(try parseAdditive())
        }
        return operators.isEmpty ? first : .compare(operands, operators, at: start)
    }

    /// Counts one more `+ - * /` operator (see ``maximumArithmetic``).
    private mutating func countArithmetic(at offset: Int) throws(ExpressionError) {
        arithmetic += 1
        guard arithmetic <= Parser.maximumArithmetic else {
            throw ExpressionError(offset, "more than \(Parser.maximumArithmetic) + - * / operators in one expression: split it (a derived fact)")
        }
    }

    private mutating func parseAdditive() throws(ExpressionError) -> Expression {
        var left = try parseMultiplicative()
        while case .symbol(let symbol) = current.kind, symbol == .plus || symbol == .minus {
            try countArithmetic(at: current.offset)
            let at = advance().offset
            let right = try parseMultiplicative()
            left = .arithmetic(symbol == .plus ? .add : .subtract, left, right, at: at)
        }
        return left
    }

    private mutating func parseMultiplicative() throws(ExpressionError) -> Expression {
        var left = try parseUnary()
        while case .symbol(let symbol) = current.kind, symbol == .star || symbol == .slash {
            try countArithmetic(at: current.offset)
            let at = advance().offset
            let right = try parseUnary()
            left = .arithmetic(symbol == .star ? .multiply : .divide, left, right, at: at)
        }
        return left
    }

    private mutating func parseUnary() throws(ExpressionError) -> Expression {
        let start = current.offset
        if accept(.minus) {
            return .negate(try nested { (p: inout Parser) throws(ExpressionError) in try p.parseUnary() }, at: start)
        }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws(ExpressionError) -> Expression {
        let token = current
        switch token.kind {
        case .number(let value):
            _ = advance()
            return .number(value, at: token.offset)
        case .quantity(let value, let unit):
            _ = advance()
            return .quantity(value, unit, at: token.offset)
        case .string(let text):
            _ = advance()
            return .string(text, at: token.offset)
        case .keyword(.true):
            _ = advance()
            return .bool(true, at: token.offset)
        case .keyword(.false):
            _ = advance()
            return .bool(false, at: token.offset)
        case .parameter(let name):
            _ = advance()
            return .parameter(name, at: token.offset)
        case .identifier:
            return try parseNameOrCall()
        case .symbol(.lparen):
            _ = advance()
            let inner = try parseOr()
            try expect(.rparen, "to close '('")
            return inner
        case .symbol(.lbrace), .symbol(.lbracket):
            return try parseSet()
        default:
            throw ExpressionError(token.offset, "expected a value, found \(token.display)")
        }
    }

    private mutating func parseNameOrCall() throws(ExpressionError) -> Expression {
        let start = current.offset
        guard case .identifier(var name) = advance().kind else {
            throw ExpressionError(start, "expected a name")
        }
        while current.kind == .symbol(.dot) {
            _ = advance()
            guard case .identifier(let part) = current.kind else {
                throw ExpressionError(current.offset, "expected a name after '.', found \(current.display)")
            }
            _ = advance()
            name += "." + part
        }
        guard accept(.lparen) else { return .name(name, at: start) }
        var arguments: [CallArgument] = []
        if !accept(.rparen) {
            repeat {
                let argumentStart = current.offset
                var label: String?
                if case .identifier(let word) = current.kind,
                    tokens[min(position + 1, tokens.count - 1)].kind == .symbol(.colon)
                {
                    label = word
                    _ = advance()
                    _ = advance()
                }
                let value = try nested { (p: inout Parser) throws(ExpressionError) in try p.parseOr() }
                arguments.append(CallArgument(label: label, value: value, offset: argumentStart))
            } while accept(.comma)
            try expect(.rparen, "to close the arguments of \(name)(…)")
        }
        return .call(name, arguments, at: start)
    }

    private mutating func parseSet() throws(ExpressionError) -> Expression {
        let open = advance()
        let close: Token.Symbol = open.kind == .symbol(.lbrace) ? .rbrace : .rbracket
        var elements: [Expression] = []
        if !accept(close) {
            repeat {
                elements.append(try nested { (p: inout Parser) throws(ExpressionError) in try p.parseAdditive() })
            } while accept(.comma)
            try expect(close, "to close the set")
        }
        return .set(elements, at: open.offset)
    }
}
