import Foundation
internal import Yams

/// Maps an offset inside a YAML scalar (an expression or template) back to a file line and column.
///
/// Exact for single-line scalars (plain or quoted) and for literal blocks (`|`); for folded multi-line scalars it
/// finds the line that contains the text and falls back to the scalar's start.
struct ExpressionLocator {
    private var lineStarts: [(line: Int, column: Int, offset: Int)] = []
    private let fallback: SourceLocation

    init(node: YAMLNode, text: String, sourceLines: [Substring]) {
        fallback = node.location
        let valueLines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var searchFrom = max(0, node.location.line - 1)
        var offset = 0
        for (k, valueLine) in valueLines.enumerated() {
            defer { offset += valueLine.unicodeScalars.count + 1 }
            let needle = String(valueLine)
            if k == 0, searchFrom < sourceLines.count {
                let first = sourceLines[searchFrom]
                let startColumn = node.location.column - 1
                let quoted = node.scalarStyle == .doubleQuoted || node.scalarStyle == .singleQuoted
                if node.scalarStyle == .plain || quoted, startColumn <= first.unicodeScalars.count {
                    lineStarts.append((searchFrom + 1, startColumn + (quoted ? 2 : 1), offset))
                    continue
                }
            }
            guard !needle.trimmingWhitespace().isEmpty else { continue }
            var found = false
            var index = searchFrom
            while index < sourceLines.count, index < searchFrom + 200 {
                let line = String(sourceLines[index])
                if let range = line.range(of: needle) {
                    let column = line.unicodeScalars.distance(from: line.unicodeScalars.startIndex, to: range.lowerBound.samePosition(in: line.unicodeScalars) ?? line.unicodeScalars.startIndex)
                    lineStarts.append((index + 1, column + 1, offset))
                    searchFrom = index + 1
                    found = true
                    break
                }
                index += 1
            }
            if !found { break }
        }
    }

    func location(_ offset: Int) -> SourceLocation {
        guard let start = lineStarts.last(where: { $0.offset <= offset }) else { return fallback }
        return SourceLocation(file: fallback.file, line: start.line, column: start.column + (offset - start.offset))
    }
}
