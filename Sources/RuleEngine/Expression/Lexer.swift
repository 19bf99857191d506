/// Splits a condition expression into tokens.
///
/// A number followed (after optional spaces) by a known unit symbol becomes one quantity token: `180 ng/L`,
/// `0.45 umol/L`, `90 d`. The longest known unit wins (`mg/d` before `mg`), and a unit must not run into a
/// following letter, so `3 and` is the number 3 and the keyword `and`, not 3 years.
package struct Lexer {
    /// Longest accepted expression, in Unicode scalars.
    package static let maximumLength = 8_192

    private let scalars: [Unicode.Scalar]
    private var index = 0

    package init(_ text: String) {
        scalars = Array(text.unicodeScalars)
    }

    /// Tokenises the whole text, ending with an `.end` token.
    package static func tokenize(_ text: String) throws(ExpressionError) -> [Token] {
        var lexer = Lexer(text)
        guard lexer.scalars.count <= maximumLength else {
            throw ExpressionError(0, "expression is longer than \(maximumLength) characters")
        }
        var tokens: [Token] = []
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private mutating func next() throws(ExpressionError) -> Token {
        skipSpace()
        let start = index
        guard index < scalars.count else { return Token(kind: .end, offset: start, length: 0) }
        let c = scalars[index]

        if c.isDigit || (c == "." && peek(1)?.isDigit == true) {
            return try number(start)
        }
        if c.isIdentifierStart {
            let word = identifier()
            if let keyword = Token.Keyword(rawValue: word) {
                return Token(kind: .keyword(keyword), offset: start, length: index - start)
            }
            return Token(kind: .identifier(word), offset: start, length: index - start)
        }
        if c == "$" {
            index += 1
            guard index < scalars.count, scalars[index].isIdentifierStart else {
                throw ExpressionError(start, "expected a parameter name after '$'")
            }
            var name = identifier()
            while index + 1 < scalars.count, scalars[index] == ".", scalars[index + 1].isIdentifierStart {
                index += 1
                name += "." + identifier()
            }
            return Token(kind: .parameter(name), offset: start, length: index - start)
        }
        if c == "\"" || c == "'" {
            return try string(start, quote: c)
        }
        if let symbol = Self.twoCharacterSymbol(c, peek(1)) {
            index += 2
            return Token(kind: .symbol(symbol), offset: start, length: 2)
        }
        if let symbol = Self.symbol(c) {
            index += 1
            return Token(kind: .symbol(symbol), offset: start, length: 1)
        }
        if c == "=" {
            throw ExpressionError(start, "'=' is not an operator; use '==' to compare")
        }
        if c == "&" || c == "|" || c == "!" {
            throw ExpressionError(start, "'\(c)' is not an operator; use 'and', 'or', 'not'")
        }
        throw ExpressionError(start, "unexpected character '\(c.escaped(asASCII: true))'")
    }

    private mutating func skipSpace() {
        while index < scalars.count, scalars[index].isSpace { index += 1 }
    }

    /// The one-character symbols, without building a string to look them up (rule loading tokenises every
    /// condition of every rule).
    private static func symbol(_ c: Unicode.Scalar) -> Token.Symbol? {
        switch c {
        case "(": .lparen
        case ")": .rparen
        case "{": .lbrace
        case "}": .rbrace
        case "[": .lbracket
        case "]": .rbracket
        case ",": .comma
        case ":": .colon
        case ".": .dot
        case "+": .plus
        case "-": .minus
        case "*": .star
        case "/": .slash
        case "<": .less
        case ">": .greater
        default: nil
        }
    }

    private static func twoCharacterSymbol(_ c: Unicode.Scalar, _ next: Unicode.Scalar?) -> Token.Symbol? {
        guard next == "=" else { return nil }
        switch c {
        case "<": return .lessEqual
        case ">": return .greaterEqual
        case "=": return .equal
        case "!": return .notEqual
        default: return nil
        }
    }

    private func peek(_ offset: Int) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    private mutating func identifier() -> String {
        var text = String.UnicodeScalarView()
        while index < scalars.count, scalars[index].isIdentifierContinue {
            text.append(scalars[index])
            index += 1
        }
        return String(text)
    }

    private mutating func number(_ start: Int) throws(ExpressionError) -> Token {
        var text = ""
        while index < scalars.count, scalars[index].isDigit || scalars[index] == "." || scalars[index] == "_" {
            if scalars[index] != "_" { text.unicodeScalars.append(scalars[index]) }
            index += 1
        }
        if index < scalars.count, scalars[index] == "e" || scalars[index] == "E",
            let next = peek(1), next.isDigit || ((next == "-" || next == "+") && peek(2)?.isDigit == true)
        {
            text.unicodeScalars.append(scalars[index])
            index += 1
            text.unicodeScalars.append(scalars[index])
            index += 1
            while index < scalars.count, scalars[index].isDigit {
                text.unicodeScalars.append(scalars[index])
                index += 1
            }
        }
        guard let value = Double(text), value.isFinite else {
            throw ExpressionError(start, "malformed number '\(text)'")
        }
        let afterNumber = index
        skipSpace()
        if let unit = matchUnit() {
            return Token(kind: .quantity(value, unit), offset: start, length: index - start)
        }
        index = afterNumber
        return Token(kind: .number(value), offset: start, length: index - start)
    }

    /// Matches the longest known unit symbol at the current position, not followed by an identifier character.
    private mutating func matchUnit() -> Unit? {
        guard index < scalars.count else { return nil }
        let first = scalars[index]
        guard first.isIdentifierStart || first == "%" || first == "µ" || first == "μ" || first.isDigit else { return nil }
        // Collect the candidate run of unit characters, then try prefixes longest first.
        var end = index
        while end < scalars.count, scalars[end].isUnitCharacter { end += 1 }
        var length = end - index
        while length > 0 {
            let candidate = String(String.UnicodeScalarView(scalars[index..<(index + length)]))
            let nextIsWord = index + length < scalars.count && scalars[index + length].isIdentifierContinue
            if !nextIsWord, !candidate.hasSuffix("/"), !candidate.hasSuffix("."), let unit = UnitTable.unit(candidate) {
                index += length
                return unit
            }
            length -= 1
        }
        return nil
    }

    private mutating func string(_ start: Int, quote: Unicode.Scalar) throws(ExpressionError) -> Token {
        index += 1
        var text = String.UnicodeScalarView()
        while index < scalars.count {
            let c = scalars[index]
            if c == quote {
                index += 1
                return Token(kind: .string(String(text)), offset: start, length: index - start)
            }
            if c == "\\", index + 1 < scalars.count {
                index += 1
            }
            text.append(scalars[index])
            index += 1
        }
        throw ExpressionError(start, "unterminated string")
    }
}

extension Unicode.Scalar {
    var isDigit: Bool { ("0"..."9").contains(self) }
    /// White space as Unicode defines it; ASCII answered without looking up the scalar's properties.
    var isSpace: Bool { isASCII ? self == " " || ("\t"..."\r").contains(self) : properties.isWhitespace }
    var isIdentifierStart: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) || self == "_" }
    var isIdentifierContinue: Bool { isIdentifierStart || isDigit }
    var isUnitCharacter: Bool {
        isIdentifierContinue || self == "/" || self == "*" || self == "." || self == "%" || self == "^" || self == "µ"
            || self == "μ"
    }
}
