import Foundation
internal import Yams

/// One YAML file read for loading: its text, its parsed root, and helpers that turn nodes into typed values while
/// reporting every problem as a ``Diagnostic`` at the node's line and column.
///
/// Guards against hostile files: a size cap, a flow-nesting cap checked before libyaml sees the text, no anchors
/// or aliases (no "billion laughs"), and duplicate keys reported as errors. Scalars are not typed by YAML's regular
/// expressions (`Resolver.basic`): the loader reads every scalar as text and converts it itself, and resolving
/// each key's tag for the duplicate check was a third of a 1,000-rule reload.
struct YAMLSource {
    static let maximumBytes = 1 << 20
    static let maximumFlowDepth = 64

    let path: String
    let text: String
    let root: Node?

    /// Reads and parses a file; on failure records diagnostics and returns a source with no root.
    static func read(path: String, display: String, log: inout DiagnosticLog) -> YAMLSource {
        guard let data = FileManager.default.contents(atPath: path) else {
            log.error(SourceLocation(file: display, line: 1, column: 1), "cannot read file")
            return YAMLSource(path: display, text: "", root: nil)
        }
        return parse(data: data, display: display, log: &log)
    }

    /// Where the first byte that is not UTF-8 is: its line, and its column counted in the valid characters before it.
    static func invalidUTF8(_ data: Data, file: String) -> SourceLocation {
        let bytes = [UInt8](data)
        var offset = 0
        while offset < bytes.count {
            let byte = bytes[offset]
            let length = byte < 0x80 ? 1 : byte >> 5 == 0b110 ? 2 : byte >> 4 == 0b1110 ? 3 : byte >> 3 == 0b11110 ? 4 : 0
            guard length > 0, offset + length <= bytes.count,
                String(bytes: bytes[offset..<offset + length], encoding: .utf8) != nil
            else { break }
            offset += length
        }
        let before = bytes[..<offset]
        let lineStart = before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        let line = before.count(where: { $0 == UInt8(ascii: "\n") }) + 1
        let column = String(decoding: bytes[lineStart..<offset], as: UTF8.self).count + 1
        return SourceLocation(file: file, line: line, column: column)
    }

    /// Parses YAML bytes, reporting syntax errors at their position.
    static func parse(data: Data, display: String, log: inout DiagnosticLog) -> YAMLSource {
        let start = SourceLocation(file: display, line: 1, column: 1)
        guard data.count <= maximumBytes else {
            log.error(start, "file is \(data.count) bytes; the limit is \(maximumBytes)")
            return YAMLSource(path: display, text: "", root: nil)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            log.error(invalidUTF8(data, file: display), "file is not valid UTF-8")
            return YAMLSource(path: display, text: "", root: nil)
        }
        log.register(file: display, text: text)
        if let (line, column) = excessiveFlowNesting(text) {
            log.error(
                SourceLocation(file: display, line: line, column: column),
                "brackets nest deeper than \(maximumFlowDepth) levels")
            return YAMLSource(path: display, text: text, root: nil)
        }
        if text.utf8.contains(0) {
            log.error(start, "file contains a NUL character")
            return YAMLSource(path: display, text: text, root: nil)
        }
        do {
            let parser = try Yams.Parser(yaml: text, resolver: .basic, constructor: .default, encoding: .utf8)
            let root = try parser.singleRoot()
            // Yams resolves aliases itself (a "billion laughs" file is a tree of copies, exponential to walk), so
            // anchors are refused here, where they are defined: the parser still holds them (a node's anchor is
            // weak), and document order meets an anchor before any alias of it.
            let anchored = withExtendedLifetime(parser) { root.flatMap(firstAnchored) }
            if let anchored {
                log.error(
                    SourceLocation(file: display, line: anchored.mark?.line ?? 1, column: anchored.mark?.column ?? 1),
                    "anchors and aliases are not supported")
                return YAMLSource(path: display, text: text, root: nil)
            }
            guard root != nil else {
                // Truncated by a failed copy, or only comments left: never the same as no file at all, which would
                // silently drop a rule set (or a site profile's overrides) from what goes live.
                log.error(start, "the file is empty (nothing but blank lines or comments)")
                return YAMLSource(path: display, text: text, root: nil)
            }
            return YAMLSource(path: display, text: text, root: root)
        } catch let error as YamlError {
            let (location, message) = describe(error, file: display, text: text)
            log.error(clamp(location, to: text), message)
        } catch {
            log.error(start, "cannot parse YAML: \(error)")
        }
        return YAMLSource(path: display, text: text, root: nil)
    }

    /// The first node with an anchor (or an alias), in document order; nil when there is none.
    private static func firstAnchored(_ node: Node) -> Node? {
        switch node {
        case .scalar(let scalar):
            return scalar.anchor == nil ? nil : node
        case .mapping(let mapping):
            if mapping.anchor != nil { return node }
            for (key, value) in mapping {
                if let found = firstAnchored(key) ?? firstAnchored(value) { return found }
            }
            return nil
        case .sequence(let sequence):
            if sequence.anchor != nil { return node }
            for item in sequence {
                if let found = firstAnchored(item) { return found }
            }
            return nil
        case .alias:
            return node
        }
    }

    /// libyaml reports errors at the end of input on the line after the last one; point at the last real
    /// character instead, so the caret is always under text the user can see.
    private static func clamp(_ location: SourceLocation, to text: String) -> SourceLocation {
        let lines = lines(of: text)
        var lastLine = lines.count
        while lastLine > 1, lines[lastLine - 1].isEmpty { lastLine -= 1 }
        guard location.line > lastLine else { return location }
        let length = lines.isEmpty ? 0 : lines[lastLine - 1].count
        return SourceLocation(file: location.file, line: max(lastLine, 1), column: length + 1)
    }

    /// The text's lines as libyaml counts them (``SourceLines/split(_:)``).
    static func lines(of text: String) -> [[Unicode.Scalar]] { SourceLines.split(text) }

    private static func describe(_ error: YamlError, file: String, text: String) -> (SourceLocation, String) {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let prefix = context.map { "\($0.text) (line \($0.mark.line)): " } ?? ""
            let hint = problem.hasPrefix("mapping values are not allowed")
                ? " (a value containing ': ', such as a condition with named filters, must be quoted or a block: write `when: |` and the expression on the next line)"
                : ""
            return (at(mark), "YAML syntax: \(prefix)\(problem)\(hint)")
        case .reader(let problem, let offset, _, _):
            return (SourceLocation(file: file, line: 1, column: 1), "YAML reader: \(problem) at byte \(offset ?? 0)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams marks the first occurrence: point at the last, usually the line just added, and name the others.
            if duplicates.count == 1, let lines = keyLines(duplicates[0], around: context.mark, in: text) {
                let others = lines.earlier.map(String.init).joined(separator: ", ")
                return (
                    SourceLocation(file: file, line: lines.last, column: context.mark.column),
                    "duplicate key \(duplicates[0]) in mapping (also at line\(lines.earlier.count > 1 ? "s" : "") \(others))")
            }
            return (at(context.mark), "duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.joined(separator: ", ")) in mapping")
        default:
            return (SourceLocation(file: file, line: 1, column: 1), "YAML: \(error)")
        }
    }

    /// The lines of a block mapping's key written more than once, given where one of them is: the others are in the
    /// same mapping (no line between them starts left of the key's column), with the key, plain or quoted, at the same
    /// column and followed by `:`. Nil when the marked line does not hold the key that way (a flow mapping, a key
    /// spelt differently, such as `yes` and `"yes"`), or when no second one is found.
    static func keyLines(_ key: String, around mark: Mark, in text: String) -> (earlier: [Int], last: Int)? {
        let lines = lines(of: text)
        let column = mark.column - 1  // scalars before the key
        guard mark.line >= 1, mark.line <= lines.count, column >= 0 else { return nil }
        let spellings = [key, "'\(key)'", "\"\(key)\""].map { Array(($0 + ":").unicodeScalars) }
        /// Whether a line holds the key at the column, after spaces — or list dashes, on the mapping's first line (up
        /// only: below, a dash starts the next item's mapping).
        func holdsKey(_ line: [Unicode.Scalar], dashes: Bool) -> Bool {
            guard line.count > column, line[..<column].allSatisfy({ $0 == " " || (dashes && $0 == "-") }) else { return false }
            let rest = Array(line[column...])
            return spellings.contains { spelling in
                guard rest.starts(with: spelling.dropLast()) else { return false }
                return rest.dropFirst(spelling.count - 1).drop(while: { $0 == " " }).first == ":"
            }
        }
        /// Where a line's text starts (nil for a blank or comment-only line).
        func indent(_ line: [Unicode.Scalar]) -> Int? {
            guard let first = line.firstIndex(where: { $0 != " " }), line[first] != "#" else { return nil }
            return first
        }
        guard holdsKey(lines[mark.line - 1], dashes: true) else { return nil }
        var found = [mark.line]
        // Up to the mapping's first line (a dash's line is one, and ends the search), then down to its end.
        if lines[mark.line - 1][..<column].allSatisfy({ $0 == " " }) {
            var index = mark.line - 2
            while index >= 0 {
                let line = lines[index]
                if holdsKey(line, dashes: true) { found.append(index + 1) }
                if let indent = indent(line), indent < column || line[indent] == "-" { break }
                index -= 1
            }
        }
        var index = mark.line
        while index < lines.count {
            let line = lines[index]
            if let indent = indent(line), indent < column { break }
            if holdsKey(line, dashes: false) { found.append(index + 1) }
            index += 1
        }
        found.sort()
        guard found.count > 1, let last = found.last else { return nil }
        return (Array(found.dropLast()), last)
    }

    /// Finds the first place where `[`/`{` nest deeper than the cap (outside quotes and comments). On the UTF-8
    /// bytes: every character it looks for is ASCII, and a byte that continues a multi-byte character is not
    /// counted as a column.
    private static func excessiveFlowNesting(_ text: String) -> (Int, Int)? {
        var depth = 0
        var line = 1
        var column = 0
        var quote: UInt8?
        var comment = false
        var previous = UInt8(ascii: "\n")
        for byte in text.utf8 {
            if byte & 0xC0 == 0x80 { continue }  // continuation byte: same character, same column
            column += 1
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 0
                comment = false
                previous = byte
                continue
            }
            defer { previous = byte }
            if comment { continue }
            if let q = quote {
                if byte == q { quote = nil }
                continue
            }
            switch byte {
            case UInt8(ascii: "#") where previous == UInt8(ascii: " ") || previous == UInt8(ascii: "\t") || previous == UInt8(ascii: "\n"):
                comment = true
            case UInt8(ascii: "\"") where depth > 0, UInt8(ascii: "'") where depth > 0: quote = byte
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maximumFlowDepth { return (line, column) }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth = max(0, depth - 1)
            default: break
            }
        }
        return nil
    }
}

/// A located view of a YAML node, with typed accessors that record diagnostics instead of throwing.
struct YAMLNode {
    let node: Node
    let file: String

    init(_ node: Node, file: String) {
        self.node = node
        self.file = file
    }

    var location: SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    /// Where the text of a scalar starts, and how offsets within it map to columns.
    var scalarStyle: Node.Scalar.Style? { node.scalar?.style }

    var isAlias: Bool {
        if case .alias = node { return true }
        return false
    }

    var scalar: String? { node.scalar?.string }

    /// The mapping's entries in file order; records an error when the node is not a mapping.
    func mapping(_ what: String, _ log: inout DiagnosticLog) -> [(key: String, keyNode: YAMLNode, value: YAMLNode)]? {
        guard case .mapping(let mapping) = node else {
            log.error(location, "\(what) must be a mapping (key: value), found \(kindName)")
            return nil
        }
        var result: [(String, YAMLNode, YAMLNode)] = []
        for (key, value) in mapping {
            let keyNode = YAMLNode(key, file: file)
            guard let name = key.scalar?.string else {
                log.error(keyNode.location, "keys of \(what) must be plain text")
                continue
            }
            if case .alias = value {
                log.error(YAMLNode(value, file: file).location, "anchors and aliases are not supported")
                continue
            }
            result.append((name, keyNode, YAMLNode(value, file: file)))
        }
        return result
    }

    /// The sequence's items; a single scalar is accepted as a one-item list when `allowScalar` is set.
    func sequence(_ what: String, _ log: inout DiagnosticLog, allowScalar: Bool = false) -> [YAMLNode]? {
        switch node {
        case .sequence(let items):
            return items.map { YAMLNode($0, file: file) }
        case .scalar where allowScalar:
            return [self]
        default:
            log.error(location, "\(what) must be a list, found \(kindName)")
            return nil
        }
    }

    func string(_ what: String, _ log: inout DiagnosticLog) -> String? {
        guard let text = node.scalar?.string else {
            log.error(location, "\(what) must be text, found \(kindName)")
            return nil
        }
        return text
    }

    func number(_ what: String, _ log: inout DiagnosticLog) -> Double? {
        guard let text = node.scalar?.string, let value = EventDecoder.number(inText: text) else {
            log.error(location, "\(what) must be a number, found \(scalar.map { "'\($0)'" } ?? kindName)")
            return nil
        }
        return value
    }

    func bool(_ what: String, _ log: inout DiagnosticLog) -> Bool? {
        switch node.scalar?.string.lowercased() {
        case "true", "yes": return true
        case "false", "no": return false
        default:
            log.error(location, "\(what) must be true or false")
            return nil
        }
    }

    /// Converts the node to JSON (for events written in YAML rule tests). Scalars keep YAML's types.
    func json(_ log: inout DiagnosticLog, depth: Int = 0) -> JSONValue? {
        guard depth < 32 else {
            log.error(location, "nesting too deep")
            return nil
        }
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain || scalar.style == .any {
                if let b = node.bool, ["true", "false"].contains(scalar.string.lowercased()) { return .bool(b) }
                if scalar.string == "null" || scalar.string == "~" { return .null }
                if let d = EventDecoder.number(inText: scalar.string), scalar.string.first.map({ $0.isNumber || $0 == "-" || $0 == "." }) == true {
                    return .number(d)
                }
            }
            return .string(scalar.string)
        case .sequence(let items):
            var out: [JSONValue] = []
            for item in items {
                guard let value = YAMLNode(item, file: file).json(&log, depth: depth + 1) else { return nil }
                out.append(value)
            }
            return .array(out)
        case .mapping(let mapping):
            var out: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let name = key.scalar?.string,
                    let converted = YAMLNode(value, file: file).json(&log, depth: depth + 1)
                else { return nil }
                out[name] = converted
            }
            return .object(JSONObject(out))
        case .alias:
            log.error(location, "anchors and aliases are not supported")
            return nil
        }
    }

    var kindName: String {
        switch node {
        case .scalar: return "text"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// Checks that every key is one of `allowed`, reporting the others with a suggestion.
    static func checkKeys(
        _ entries: [(key: String, keyNode: YAMLNode, value: YAMLNode)], allowed: [String], in what: String,
        _ log: inout DiagnosticLog
    ) {
        for entry in entries where !allowed.contains(entry.key) {
            let hint = Spelling.suggestion(for: entry.key, among: allowed).map { " (did you mean '\($0)'?)" } ?? ""
            log.error(entry.keyNode.location, "unknown key '\(entry.key)' in \(what)\(hint); expected one of \(allowed.joined(separator: ", "))")
        }
    }
}

/// Suggests the nearest known name for a misspelt one.
package enum Spelling {
    package static func suggestion(for word: String, among candidates: some Sequence<String>) -> String? {
        var best: (String, Int)?
        let limit = max(2, word.count / 3)
        for candidate in candidates {
            let distance = editDistance(Array(word.unicodeScalars), Array(candidate.unicodeScalars), limit: limit)
            if distance <= limit, best == nil || distance < best!.1 { best = (candidate, distance) }
        }
        return best?.0
    }

    private static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
