/// A strict RFC 8259 JSON parser over bytes, producing ``JSONValue``.
///
/// Written for the ingest hot path: one pass, no exceptions thrown for control flow, no intermediate objects.
/// Errors give the line and column. Hostile input is bounded: nesting deeper than ``maximumDepth`` is refused,
/// duplicate object keys are refused (the event would be ambiguous), and strings must be valid UTF-8.
struct JSONParser {
    static let maximumDepth = 64

    struct Failure: Error {
        var offset: Int
        var message: String
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let known = JSONParser.knownNames
    private var index = 0
    private var depth = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Parses a whole document; describes the first error with its line and column.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(EventDecodingError) -> JSONValue {
        var parser = JSONParser(bytes)
        do {
            parser.skipSpace()
            let value = try parser.value()
            parser.skipSpace()
            guard parser.index == bytes.count else { throw Failure(offset: parser.index, message: "unexpected text after the JSON value") }
            return value
        } catch let failure as Failure {
            let (line, column) = position(of: failure.offset, in: bytes)
            throw EventDecodingError(errors: [FieldError(path: "$", message: "malformed JSON at line \(line), column \(column): \(failure.message)")])
        } catch {
            throw EventDecodingError(errors: [FieldError(path: "$", message: "malformed JSON: \(error)")])
        }
    }

    private static func position(of offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (Int, Int) {
        var line = 1
        var column = 1
        for i in 0..<min(offset, bytes.count) {
            if bytes[i] == UInt8(ascii: "\n") { line += 1; column = 1 } else if bytes[i] & 0xC0 != 0x80 { column += 1 }
        }
        return (line, column)
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    private mutating func value() throws(Failure) -> JSONValue {
        guard index < bytes.count else { throw Failure(offset: index, message: "unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw Failure(offset: index, message: "unexpected \(describe(bytes[index]))")
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let start = index
        for byte in UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount) {
            guard index < bytes.count, bytes[index] == byte else { throw Failure(offset: start, message: "invalid literal") }
            index += 1
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw Failure(offset: index, message: "nesting deeper than \(Self.maximumDepth) levels") }
    }

    private mutating func object() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var members: [JSONObject.Element] = []
        members.reserveCapacity(8)  // most objects of an event have fewer members: one allocation, no regrowth
        var seen: Set<String>?  // for large objects, where scanning for duplicates would be quadratic
        // The ranks of the members' names while all are known ones: then sorting compares numbers, not strings.
        var ranks = InlineArray<16, UInt8>(repeating: 0)
        var ranked = true
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(JSONObject(sortedUniqueMembers: members))
        }
        while true {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw Failure(offset: index, message: index < bytes.count ? "expected a quoted key, found \(describe(bytes[index]))" : "unexpected end of input")
            }
            let keyOffset = index
            let (key, rank) = try memberName()
            if members.count < ranks.count, rank != Self.unranked { ranks[members.count] = rank } else { ranked = false }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw Failure(offset: index, message: "expected ':' after a key") }
            index += 1
            skipSpace()
            let value = try value()
            let duplicate: Bool
            if members.count < 16 {
                let length = key.utf8.count  // see JSONObject's subscript: lengths first, `==` only when they match
                duplicate = members.contains { $0.key.utf8.count == length && $0.key == key }
            } else {
                if seen == nil { seen = Set(members.map(\.key)) }
                duplicate = !seen!.insert(key).inserted
            }
            guard !duplicate else { throw Failure(offset: keyOffset, message: "duplicate key \"\(key)\"") }
            members.append((key, value))
            skipSpace()
            guard index < bytes.count else { throw Failure(offset: index, message: "unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                if ranked { Self.sort(&members, by: &ranks) } else { members.sort { $0.key < $1.key } }
                return .object(JSONObject(sortedUniqueMembers: members))
            }
            throw Failure(offset: index, message: "expected ',' or '}', found \(describe(bytes[index]))")
        }
    }

    /// Sorts members by the ranks of their names (insertion sort: a handful of members, often nearly in order),
    /// which is `String` order, since the ranks were given in that order.
    private static func sort(_ members: inout [JSONObject.Element], by ranks: inout InlineArray<16, UInt8>) {
        guard members.count > 1 else { return }
        members.withUnsafeMutableBufferPointer { members in  // swaps that move, with no reference counting
            for i in 1..<members.count {
                var j = i
                while j > 0, ranks[j - 1] > ranks[j] {
                    ranks.swapAt(j - 1, j)
                    members.swapAt(j - 1, j)
                    j -= 1
                }
            }
        }
    }

    private mutating func array() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var items: [JSONValue] = []
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value())
            skipSpace()
            guard index < bytes.count else { throw Failure(offset: index, message: "unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            throw Failure(offset: index, message: "expected ',' or ']', found \(describe(bytes[index]))")
        }
    }

    private mutating func number() throws(Failure) -> Double {
        try Self.number(bytes, at: &index)
    }

    /// The number that starts at `index` (a `-` or a digit), by RFC 8259's grammar; `index` ends after it. Shared
    /// with ``FastEventReader``, so that both read every number to the same `Double`.
    static func number(_ bytes: UnsafeBufferPointer<UInt8>, at index: inout Int) throws(Failure) -> Double {
        let start = index
        var integer = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw Failure(offset: index, message: "a number needs digits")
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integer = false
            index += 1
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw Failure(offset: index, message: "a decimal point needs digits after it") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integer = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw Failure(offset: index, message: "an exponent needs digits") }
        }
        let length = index - start
        if integer, length <= 15 {
            var value = 0
            var i = start
            let negative = bytes[i] == UInt8(ascii: "-")
            if negative { i += 1 }
            while i < index {
                value = value * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                i += 1
            }
            return Double(negative ? -value : value)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw Failure(offset: start, message: "number out of range") }
        return value
    }

    /// A member name known in advance (see ``knownNames``).
    private struct KnownName: @unchecked Sendable {  // `bytes` is never written after the table is built
        /// Its place among all known names in `String` order, so that members can be sorted by comparing numbers.
        let rank: UInt8
        let bytes: UnsafeBufferPointer<UInt8>
        let text: String
    }

    /// No rank: a member name that is not a known one.
    private static let unranked = UInt8.max

    /// The member names of events (INTERFACES §1), grouped by length (`byLength[n]` is where the names of `n` bytes
    /// are): a key is matched against these before a string is made for it. Most keys of every event are among
    /// them; the ready-made string costs nothing, where making one validates and copies the bytes.
    private static let knownNames: (byLength: [Range<Int>], names: [KnownName]) = {
        let texts = [
            "schema", "id", "patient", "clinic", "time", "observations", "medications", "administrations", "conditions",
            "symptoms", "reactions", "pregnancy", "diet", "preferences", "code", "system", "value", "unit", "dose", "per",
            "status", "start", "end", "route", "product", "onset", "after", "gestation_weeks", "delivery_date",
            "breastfeeding", "fetuses", "command",
        ]
        let ranks = Dictionary(uniqueKeysWithValues: texts.sorted().enumerated().map { ($1, UInt8($0)) })
        var names: [KnownName] = []
        var byLength: [Range<Int>] = []
        for length in 0...(texts.map(\.utf8.count).max() ?? 0) {
            let start = names.count
            for text in texts where text.utf8.count == length {
                // Allocated once for the life of the process, like the table.
                let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: length)
                _ = bytes.initialize(from: text.utf8)
                names.append(KnownName(rank: ranks[text]!, bytes: UnsafeBufferPointer(bytes), text: text))
            }
            byLength.append(start..<names.count)
        }
        return (byLength, names)
    }()

    /// An object member's name, with its rank when it is a known one (see ``knownNames``), otherwise a new string.
    private mutating func memberName() throws(Failure) -> (String, rank: UInt8) {
        let first = index + 1
        var end = first
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20, bytes[end] < 0x80 {
            end += 1
        }
        let length = end - first
        if end < bytes.count, bytes[end] == UInt8(ascii: "\""), length < known.byLength.count {
            for candidate in known.byLength[length] {
                let name = known.names[candidate].bytes
                var i = 0
                while i < length, name[i] == bytes[first + i] { i += 1 }
                if i == length {
                    index = end + 1
                    return (known.names[candidate].text, known.names[candidate].rank)
                }
            }
        }
        return (try string(), Self.unranked)
    }

    private mutating func string() throws(Failure) -> String {
        index += 1
        let start = index
        var ascii = true
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                // ASCII is valid UTF-8: skip the validating initialiser, the costlier path.
                if ascii { return String(decoding: slice, as: UTF8.self) }
                guard let text = String(validating: slice, as: UTF8.self) else {
                    throw Failure(offset: start, message: "string is not valid UTF-8")
                }
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw Failure(offset: index, message: "control character in a string (escape it)") }
            ascii = ascii && byte < 0x80
            index += 1
        }
        // Slow path: with escapes.
        var buffer = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                guard let text = String(validating: buffer, as: UTF8.self) else {
                    throw Failure(offset: start, message: "string is not valid UTF-8")
                }
                return text
            }
            if byte < 0x20 { throw Failure(offset: index, message: "control character in a string (escape it)") }
            if byte != UInt8(ascii: "\\") {
                buffer.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): buffer.append(0x22)
            case UInt8(ascii: "\\"): buffer.append(0x5C)
            case UInt8(ascii: "/"): buffer.append(0x2F)
            case UInt8(ascii: "b"): buffer.append(0x08)
            case UInt8(ascii: "f"): buffer.append(0x0C)
            case UInt8(ascii: "n"): buffer.append(0x0A)
            case UInt8(ascii: "r"): buffer.append(0x0D)
            case UInt8(ascii: "t"): buffer.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                        throw Failure(offset: index, message: "unpaired surrogate in \\u escape")
                    }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw Failure(offset: index, message: "invalid surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw Failure(offset: index, message: "unpaired surrogate in \\u escape")
                }
                buffer.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default:
                throw Failure(offset: index - 1, message: "invalid escape \\\(Character(Unicode.Scalar(escape)))")
            }
        }
        throw Failure(offset: start - 1, message: "unterminated string")
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw Failure(offset: index, message: "a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw Failure(offset: index, message: "a \\u escape needs four hex digits")
            }
            value = value * 16 + digit
            index += 1
        }
        return value
    }
}
