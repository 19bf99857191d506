package import Foundation

/// A decoded JSON document, kept generic so that validation can report every error with its path.
package enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// Parses JSON text, describing a syntax error with its line and column when the text is malformed.
    package static func parse(_ bytes: some ContiguousBytes) throws(EventDecodingError) -> JSONValue {
        do {
            return try bytes.withUnsafeBytes { raw in try JSONParser.parse(raw.bindMemory(to: UInt8.self)) }
        } catch let error as EventDecodingError {
            throw error
        } catch {
            throw EventDecodingError(errors: [FieldError(path: "$", message: "malformed JSON: \(error)")])
        }
    }

    /// The JSON type name, for error messages.
    package var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Compact JSON (object keys sorted, numbers in shortest form): the form in which events are compared for
    /// content and journaled.
    package var canonicalBytes: [UInt8] { withCanonicalBytes { Array($0) } }

    package var canonicalText: String { withCanonicalBytes { String(decoding: $0, as: UTF8.self) } }

    /// Calls `body` with the canonical form (see ``canonicalBytes``), written into a buffer that lives only for the
    /// call: ingest hashes it and keeps it as text, so an array in between would be a copy for nothing.
    package func withCanonicalBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        var out = ByteWriter(capacity: 1_024)
        write(to: &out)
        return try body(out.bytes)
    }

    private func write(to out: inout ByteWriter) {
        switch self {
        case .null: out.append("null")
        case .bool(let b): out.append(b ? "true" : "false")
        case .number(let n): out.append(number: n)
        case .string(let s): out.appendQuoted(s)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for i in items.indices {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                items[i].write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for i in object.members.indices {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.appendQuoted(object.members[i].key)
                out.append(UInt8(ascii: ":"))
                object.members[i].value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

/// Bytes written into one growing buffer, without the uniqueness check and reference counting of an array
/// append: canonical JSON is written for every event ingest accepts. Not copyable: it owns its buffer.
struct ByteWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    deinit { base.deallocate() }

    private mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        let grown = max(capacity * 2, count + extra)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        moved.initialize(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = grown
    }

    mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count)
        if let source = bytes.baseAddress { (base + count).initialize(from: source, count: bytes.count) }
        count += bytes.count
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A number as ``Swift/Double/formatted`` writes it; whole numbers digit by digit, without making a string.
    mutating func append(number n: Double) {
        guard var value = n.wholeNumber else {
            var text = n.formatted
            text.withUTF8 { append($0) }
            return
        }
        if value < 0 { append(UInt8(ascii: "-")) }
        value = abs(value)
        reserve(16)
        var digits = 1
        var rest = value / 10
        while rest > 0 { digits += 1; rest /= 10 }
        for position in stride(from: digits - 1, through: 0, by: -1) {
            base[count + position] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
        count += digits
    }

    /// The quoted form of `text` (see ``JSONEscaping``).
    mutating func appendQuoted(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            guard JSONEscaping.needsEscapes(bytes) else {
                reserve(bytes.count + 2)
                append(UInt8(ascii: "\""))
                append(bytes)
                append(UInt8(ascii: "\""))
                return
            }
            JSONEscaping.writeQuoted(bytes) { append($0) }
        }
    }
}

/// One problem with one field of an input document, by JSON path (`observations[0].unit`).
package struct FieldError: Sendable, Equatable, Hashable, CustomStringConvertible {
    package var path: String
    package var message: String

    package init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    package var description: String { "\(path): \(message)" }
}

/// An event that could not be decoded; lists every error found, not only the first.
package struct EventDecodingError: Error, Sendable, Equatable {
    package var errors: [FieldError]
}

extension String {
    /// The string as a JSON string literal: one allocation, and a plain copy when nothing needs escaping (the
    /// usual case — this runs for every string of every event and alert).
    package var jsonQuoted: String {
        var text = self
        return text.withUTF8 { bytes in
            let length = JSONEscaping.quotedLength(bytes)
            return String(unsafeUninitializedCapacity: length) { out in
                var i = 0
                if length == bytes.count + 2 {
                    out[0] = 0x22
                    _ = UnsafeMutableBufferPointer(rebasing: out[1...]).initialize(from: bytes)
                    out[length - 1] = 0x22
                    return length
                }
                JSONEscaping.writeQuoted(bytes) { byte in
                    out[i] = byte
                    i += 1
                }
                return i
            }
        }
    }
}

/// JSON string escaping (RFC 8259 §7): quote, backslash and control characters; everything else byte for byte.
enum JSONEscaping {
    private static func escaped(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x22 || byte == 0x5C }

    /// Whether any byte needs an escape (otherwise the quoted form is the bytes between two quotes).
    static func needsEscapes(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { bytes.contains(where: escaped) }

    /// The length of the quoted form.
    static func quotedLength(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        guard needsEscapes(bytes) else { return bytes.count + 2 }
        var length = 0
        writeQuoted(bytes) { _ in length += 1 }  // the writer alone decides what an escape costs
        return length
    }

    /// Writes the quoted form, a byte at a time.
    @inline(__always)
    static func writeQuoted(_ bytes: UnsafeBufferPointer<UInt8>, _ put: (UInt8) -> Void) {
        put(0x22)
        for byte in bytes {
            switch byte {
            case 0x22, 0x5C: put(0x5C); put(byte)
            case 0x0A: put(0x5C); put(UInt8(ascii: "n"))
            case 0x0D: put(0x5C); put(UInt8(ascii: "r"))
            case 0x09: put(0x5C); put(UInt8(ascii: "t"))
            case ..<0x20:
                for b in [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hexDigitCharacters.utf8Start[Int(byte >> 4)], hexDigitCharacters.utf8Start[Int(byte & 0xF)]] { put(b) }
            default: put(byte)
            }
        }
        put(0x22)
    }

    /// Appends `prefix` (punctuation and a key, such as `,"rule":`), then the quoted `value`: one member of an
    /// object being written.
    static func appendMember(_ prefix: String, _ value: String, to out: inout [UInt8]) {
        out += prefix.utf8
        appendQuoted(value, to: &out)
    }

    /// Appends the quoted form of `text` to `out`.
    static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { bytes in
            guard needsEscapes(bytes) else {
                out.append(0x22)
                out.append(contentsOf: bytes)
                out.append(0x22)
                return
            }
            writeQuoted(bytes) { out.append($0) }
        }
    }
}
