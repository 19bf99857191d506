import Testing
@testable import RuleEngine

@Suite struct LexerTests {
    @Test func quantitiesAreOneToken() throws {
        let tokens = try Lexer.tokenize("latest(b12.total) < 180 ng/L and x >= 0.45 umol/L or age(y) < 90 d")
        let quantities = tokens.compactMap { t -> String? in
            if case .quantity(let v, let u) = t.kind { return "\(v.formatted) \(u.symbol)" }
            return nil
        }
        #expect(quantities == ["180 ng/L", "0.45 umol/L", "90 d"])
    }

    @Test func longestUnitWinsAndUnitsDoNotEatWords() throws {
        let tokens = try Lexer.tokenize("5 mg/d + 3 and 2 mo")
        #expect(tokens[0].kind == .quantity(5, UnitTable.unit("mg/d")!))
        #expect(tokens[2].kind == .number(3))
        #expect(tokens[3].kind == .keyword(.and))
        #expect(tokens[4].kind == .quantity(2, UnitTable.unit("mo")!))
    }

    @Test(arguments: [
        ("x = 3", 2, "use '=='"), ("a && b", 2, "use 'and'"), ("\"open", 0, "unterminated string"),
        ("x # y", 2, "unexpected character"), ("$", 0, "parameter name"),
    ])
    func errorsPointAtTheOffendingCharacter(_ text: String, _ offset: Int, _ fragment: String) {
        #expect {
            _ = try Lexer.tokenize(text)
        } throws: { error in
            guard let error = error as? ExpressionError else { return false }
            return error.offset == offset && error.message.contains(fragment)
        }
    }

    /// Every symbol of the language is read as itself, alone and between operands, and white space of any kind
    /// (tabs, line breaks of a YAML block, a no-break space) separates tokens.
    @Test func everySymbolAndSpace() throws {
        for symbol in Token.Symbol.allCases {
            let alone = try Lexer.tokenize(symbol.rawValue)
            #expect(alone.map(\.kind) == [.symbol(symbol), .end], "\(symbol.rawValue)")
            let between = try Lexer.tokenize("a\t\(symbol.rawValue)\n b")
            #expect(between.map(\.kind) == [.identifier("a"), .symbol(symbol), .identifier("b"), .end], "\(symbol.rawValue)")
            #expect(between[1].offset == 2 && between[1].length == symbol.rawValue.count, "\(symbol.rawValue)")
        }
        let spaced = try Lexer.tokenize("a\u{A0}<\u{2003}\r\nb")
        #expect(spaced.map(\.kind) == [.identifier("a"), .symbol(.less), .identifier("b"), .end])
    }

    @Test func overlongExpressionIsRefused() {
        let text = String(repeating: "x or ", count: 3_000) + "x"
        #expect(throws: ExpressionError.self) { _ = try Lexer.tokenize(text) }
    }
}

@Suite struct ParserTests {
    /// Renders a parse tree compactly to check precedence.
    func shape(_ e: Expression) -> String {
        switch e {
        case .number(let n, _): return n.formatted
        case .quantity(let v, let u, _): return "\(v.formatted)\(u.symbol)"
        case .string(let s, _): return "\"\(s)\""
        case .bool(let b, _): return "\(b)"
        case .parameter(let p, _): return "$\(p)"
        case .name(let n, _): return n
        case .call(let f, let args, _): return "\(f)(" + args.map { ($0.label.map { "\($0):" } ?? "") + shape($0.value) }.joined(separator: ",") + ")"
        case .negate(let x, _): return "-(\(shape(x)))"
        case .not(let x, _): return "not(\(shape(x)))"
        case .and(let xs, _): return "and(" + xs.map(shape).joined(separator: ",") + ")"
        case .or(let xs, _): return "or(" + xs.map(shape).joined(separator: ",") + ")"
        case .arithmetic(let op, let a, let b, _): return "(\(shape(a))\(op.rawValue)\(shape(b)))"
        case .compare(let xs, let ops, _):
            var out = shape(xs[0])
            for (i, op) in ops.enumerated() { out += op.rawValue + shape(xs[i + 1]) }
            return "[\(out)]"
        case .membership(let a, let b, let negated, _): return "\(shape(a)) \(negated ? "not in" : "in") \(shape(b))"
        case .set(let xs, _): return "{" + xs.map(shape).joined(separator: ",") + "}"
        }
    }

    @Test(arguments: [
        ("a or b and c", "or(a,and(b,c))"),
        ("not a and b", "and(not(a),b)"),
        ("a + b * c < d", "[(a+(b*c))<d]"),
        ("25 pmol/L <= x <= 70 pmol/L", "[25pmol/L<=x<=70pmol/L]"),
        ("diet in {\"vegan\", \"vegetarian\"}", "diet in {\"vegan\",\"vegetarian\"}"),
        ("diet not in {\"vegan\"}", "diet not in {\"vegan\"}"),
        ("latest(b12.total, since: now - 90 d)", "latest(b12.total,since:(now-90d))"),
        ("-x - -1", "(-(x)--(1))"),
        ("$a.b > 1", "[$a.b>1]"),
        ("(a or b) and c", "and(or(a,b),c)"),
    ])
    func precedence(_ text: String, _ expected: String) throws {
        #expect(shape(try Parser.parse(text)) == expected)
    }

    @Test(arguments: [
        ("", 0, "empty expression"), ("a and", 5, "expected a value"), ("f(a", 3, "to close the arguments"),
        ("a b", 2, "unexpected 'b'"), ("(a", 2, "to close '('"), ("x.", 2, "expected a name after '.'"),
    ])
    func syntaxErrors(_ text: String, _ offset: Int, _ fragment: String) {
        #expect {
            _ = try Parser.parse(text)
        } throws: { error in
            guard let error = error as? ExpressionError else { return false }
            return error.offset == offset && error.message.contains(fragment)
        }
    }

    @Test func nestingIsBoundedNotFatal() {
        let deep = String(repeating: "(", count: 10_000) + "x" + String(repeating: ")", count: 10_000)
        #expect(throws: ExpressionError.self) { _ = try Parser.parse(deep) }
        let nots = String(repeating: "not ", count: 2_000) + "x"
        #expect(throws: ExpressionError.self) { _ = try Parser.parse(nots) }
        let negations = String(repeating: "-", count: 2_000) + "1"
        #expect(throws: ExpressionError.self) { _ = try Parser.parse(negations) }
    }
}
