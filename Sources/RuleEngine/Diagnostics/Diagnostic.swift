/// A position in a source file: 1-based line and column (columns count Unicode scalars, as libyaml does).
package struct SourceLocation: Hashable, Sendable, Comparable, CustomStringConvertible {
    package var file: String
    package var line: Int
    package var column: Int

    package init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    package var description: String { "\(file):\(line):\(column)" }

    package static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.file, lhs.line, lhs.column) < (rhs.file, rhs.line, rhs.column)
    }
}

/// A load-time finding about a rule, vocabulary, profile or rule-test file.
///
/// Rendered as `file:line:column: error|warning: message`, then the offending line and a caret under the column.
/// Errors block loading; warnings do not.
package struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    package enum Severity: String, Sendable, Hashable {
        case error
        case warning
    }

    package var severity: Severity
    package var location: SourceLocation
    package var message: String
    /// The source line the location points into, when known.
    package var sourceLine: String?

    package init(_ severity: Severity, _ location: SourceLocation, _ message: String, sourceLine: String? = nil) {
        self.severity = severity
        self.location = location
        self.message = message
        self.sourceLine = sourceLine
    }

    /// The one-line form, `file:line:column: severity: message`.
    package var headline: String { "\(location): \(severity.rawValue): \(message)" }

    /// The full form: headline, offending line and a caret.
    package var description: String {
        guard let line = sourceLine else { return headline }
        let prefix = line.unicodeScalars.prefix(max(0, location.column - 1))
        let pad = String(prefix.map { $0 == "\t" ? "\t" : " " })
        return "\(headline)\n\(line)\n\(pad)^"
    }
}

/// Collects diagnostics while loading; knows the source text of each file to attach snippets.
package struct DiagnosticLog: Sendable {
    package private(set) var diagnostics: [Diagnostic] = []
    /// Source texts by file, with where each line starts: a diagnostic takes its line without splitting the file
    /// again (split up to the line for each diagnostic, a file with 88,000 unused parameters took minutes).
    private var sources: [String: Source] = [:]

    /// A file's UTF-8 bytes and where each line starts and ends, line ends counted as libyaml counts them (LF,
    /// CR LF, a lone CR, NEL, LS, PS — as `YAMLSource.lines(of:)` does), so the line shown is the one numbered.
    private struct Source: Sendable {
        var bytes: [UInt8]
        var lines: [Range<Int>] = []

        init(_ text: String) {
            bytes = Array(text.utf8)
            var start = 0
            var i = 0
            while i < bytes.count {
                let end = Self.lineEndLength(at: i, in: bytes)
                guard end > 0 else {
                    i += 1
                    continue
                }
                lines.append(start..<i)
                i += end
                start = i
            }
            lines.append(start..<bytes.count)
        }

        /// The length in bytes of the line end starting at `i`, or 0.
        private static func lineEndLength(at i: Int, in bytes: [UInt8]) -> Int {
            func byte(_ k: Int) -> UInt8? { i + k < bytes.count ? bytes[i + k] : nil }
            switch bytes[i] {
            case 0x0A: return 1
            case 0x0D: return byte(1) == 0x0A ? 2 : 1
            case 0xC2 where byte(1) == 0x85: return 2  // NEL
            case 0xE2 where byte(1) == 0x80 && (byte(2) == 0xA8 || byte(2) == 0xA9): return 3  // LS, PS
            default: return 0
            }
        }

        /// Line `number` (1-based), without its line end; nil past the end.
        func line(_ number: Int) -> String? {
            guard number >= 1, number <= lines.count else { return nil }
            return String(decoding: bytes[lines[number - 1]], as: UTF8.self)
        }
    }

    package init() {}

    package var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
    package var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    package var warnings: [Diagnostic] { diagnostics.filter { $0.severity == .warning } }

    /// Registers a file's text so later diagnostics in it carry the offending line.
    package mutating func register(file: String, text: String) {
        sources[file] = Source(text)
    }

    package mutating func error(_ location: SourceLocation, _ message: String) {
        append(.error, location, message)
    }

    package mutating func warning(_ location: SourceLocation, _ message: String) {
        append(.warning, location, message)
    }

    package mutating func append(_ severity: Diagnostic.Severity, _ location: SourceLocation, _ message: String) {
        diagnostics.append(Diagnostic(severity, location, message, sourceLine: sources[location.file]?.line(location.line)))
    }

    package mutating func append(contentsOf other: DiagnosticLog) {
        diagnostics.append(contentsOf: other.diagnostics)
        sources.merge(other.sources) { current, _ in current }
    }

    /// Diagnostics in file/line order, errors and warnings interleaved as they occur in the text.
    package var sorted: [Diagnostic] {
        diagnostics.enumerated().sorted { a, b in
            a.element.location == b.element.location ? a.offset < b.offset : a.element.location < b.element.location
        }.map(\.element)
    }
}
