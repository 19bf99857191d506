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

    /// A file's lines, split as libyaml counts them (``SourceLines/split(_:)``), so the line shown is the one numbered.
    private struct Source: Sendable {
        var lines: [[Unicode.Scalar]]

        init(_ text: String) { lines = SourceLines.split(text) }

        /// Line `number` (1-based), without its line end; nil past the end.
        func line(_ number: Int) -> String? {
            guard number >= 1, number <= lines.count else { return nil }
            var text = ""
            text.unicodeScalars.append(contentsOf: lines[number - 1])
            return text
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

/// How libyaml counts lines — its marks' line numbers, which every diagnostic carries: broken at CR LF, CR, LF, NEL,
/// LS and PS. The one splitter for printing a diagnostic's line, clamping positions and locating expressions.
/// (`String.split(separator: "\n")` never matches in a CRLF file — CR LF is one `Character` — and splitting on LF
/// alone showed no line for files with lone CRs.)
enum SourceLines {
    static func split(_ text: String) -> [[Unicode.Scalar]] {
        var lines: [[Unicode.Scalar]] = [[]]
        var previous: Unicode.Scalar?
        for scalar in text.unicodeScalars {
            defer { previous = scalar }
            switch scalar {
            case "\n" where previous == "\r": continue
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}": lines.append([])
            default: lines[lines.count - 1].append(scalar)
            }
        }
        return lines
    }
}
