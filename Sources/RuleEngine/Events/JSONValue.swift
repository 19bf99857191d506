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

    /// A whole number that fits in 64 bits, or nil (not a number, a fraction, or out of range: JSON numbers are
    /// read as `Double`, and converting one beyond `Int64`'s range with `Int64(_:)` stops the process).
    package var int64Value: Int64? {
        if case .number(let n) = self { return Int64(exactly: n) }
        return nil
    }

    /// Compact JSON (object keys sorted, numbers in shortest form): the form in which events are compared for
    /// content when an id comes back with other bytes, and the form journals written before session 14 hold.
    package var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1_024)
        write(to: &out)
        return out
    }

    package var canonicalText: String { String(decoding: canonicalBytes, as: UTF8.self) }

    private func write(to out: inout [UInt8]) {
        switch self {
        case .null: out += "null".utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .number(let n): out += n.formatted.utf8
        case .string(let s): JSONEscaping.appendQuoted(s, to: &out)
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
                JSONEscaping.appendQuoted(object.members[i].key, to: &out)
                out.append(UInt8(ascii: ":"))
                object.members[i].value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
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
