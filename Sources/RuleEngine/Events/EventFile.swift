package import Foundation

/// The files `cobalt send` and `cobalt eval` read: a JSON array of events, or JSON Lines (one event per line),
/// as any editor writes them: a UTF-8 byte-order mark is skipped and lines may end in CRLF. (Split as a `String`,
/// a CRLF file was one line — `"\r\n"` is a single `Character` — and a mark made the first event unreadable.)
package enum EventFile {
    package enum Content: Equatable {
        /// The whole file, from its `[`.
        case array([UInt8])
        /// The lines that are not blank, trimmed, with their 1-based line numbers.
        case lines([Line])
    }

    package struct Line: Equatable {
        package var number: Int
        package var bytes: [UInt8]

        package init(number: Int, bytes: [UInt8]) {
            self.number = number
            self.bytes = bytes
        }
    }

    package static func read(_ data: Data) -> Content {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        if let first = bytes.firstIndex(where: { !isSpace($0) }), bytes[first] == UInt8(ascii: "[") {
            return .array(Array(bytes[first...]))
        }
        var lines: [Line] = []
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            guard let start = line.firstIndex(where: { !isSpace($0) }), let end = line.lastIndex(where: { !isSpace($0) }) else { continue }
            lines.append(Line(number: index + 1, bytes: Array(line[start...end])))
        }
        return .lines(lines)
    }

    /// Space, tab, carriage return, line feed: JSON's whitespace.
    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }
}
