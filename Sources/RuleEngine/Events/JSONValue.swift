public import Foundation

/// A decoded JSON document, kept generic so that validation can report every error with its path.
package enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text, describing a syntax error with its line and column when the text is malformed.
    package static func parse(_ data: Data) throws(EventDecodingError) -> JSONValue {
        do {
            return try data.withUnsafeBytes { raw in
                try JSONParser.parse(raw.bindMemory(to: UInt8.self))
            }
        } catch let error as EventDecodingError {
            throw error
        } catch {
            throw EventDecodingError(errors: [FieldError(path: "$", message: "malformed JSON: \(error)")])
        }
    }

    /// Parses JSON from bytes.
    package static func parse(_ bytes: [UInt8]) throws(EventDecodingError) -> JSONValue {
        do {
            return try bytes.withUnsafeBufferPointer { try JSONParser.parse($0) }
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

    /// Compact JSON text (keys sorted), used for content comparison and re-serialisation.
    package var canonicalText: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n.formatted
        case .string(let s): out += s.jsonQuoted
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                out += key.jsonQuoted + ":"
                members[key]!.write(to: &out)
            }
            out += "}"
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
    /// The string as a JSON string literal.
    package var jsonQuoted: String {
        var out = "\""
        for scalar in unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
