/// A lexical token of the condition language, with its offset (in Unicode scalars) in the expression text.
package struct Token: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        case number(Double)
        case quantity(Double, Unit)
        case string(String)
        case identifier(String)
        case parameter(String)
        case keyword(Keyword)
        case symbol(Symbol)
        case end
    }

    package enum Keyword: String, Sendable, CaseIterable {
        case and, or, not, `in`, `true`, `false`
    }

    package enum Symbol: String, Sendable, CaseIterable {
        case lparen = "(", rparen = ")", lbrace = "{", rbrace = "}", lbracket = "[", rbracket = "]"
        case comma = ",", colon = ":", dot = "."
        case plus = "+", minus = "-", star = "*", slash = "/"
        case less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">=", equal = "==", notEqual = "!="
    }

    package var kind: Kind
    package var offset: Int
    package var length: Int

    /// How the token reads in an error message.
    package var display: String {
        switch kind {
        case .number(let n): return "number \(n.formatted)"
        case .quantity(let v, let u): return "quantity '\(v.formatted) \(u.symbol)'"
        case .string(let s): return "string \"\(s)\""
        case .identifier(let s): return "'\(s)'"
        case .parameter(let s): return "parameter '$\(s)'"
        case .keyword(let k): return "'\(k.rawValue)'"
        case .symbol(let s): return "'\(s.rawValue)'"
        case .end: return "end of expression"
        }
    }
}

/// An error in an expression, at an offset (Unicode scalars) in its text.
package struct ExpressionError: Error, Sendable, Equatable {
    package var offset: Int
    package var message: String

    package init(_ offset: Int, _ message: String) {
        self.offset = offset
        self.message = message
    }
}

extension Double {
    /// Shortest readable decimal form: `180`, `0.45`, `1.355`.
    package var formatted: String {
        if let whole = wholeNumber { return String(whole) }
        return String(self)
    }

    /// The value as an integer when ``formatted`` writes it as one (whole, and small enough to be exact).
    package var wholeNumber: Int64? {
        self == rounded() && abs(self) < 1e15 ? Int64(self) : nil
    }
}
