import Foundation
internal import Yams

/// Maps an offset inside a YAML scalar (an expression or template) back to a file line and column.
///
/// YAML hands over the scalar's value, not its source: a plain or quoted scalar continued on the next line is
/// folded (the line break and the indentation become one space), a block scalar loses its indentation, a double-
/// quoted one its escapes. So the value is walked beside the source from where the scalar starts, character by
/// character, skipping what YAML took out; each run of characters that sit side by side in both is remembered.
/// Offsets count Unicode scalars, as columns do. Should the two ever disagree in a way not foreseen here, offsets
/// past that point extend the last run (never worse than the scalar's start).
struct ExpressionLocator {
    /// Runs of the value that sit contiguously in the source: value offset `offset` is at `line`:`column`.
    private var runs: [(line: Int, column: Int, offset: Int)] = []
    private let fallback: SourceLocation

    init(node: YAMLNode, text: String, sourceLines: [[Unicode.Scalar]]) {
        fallback = node.location
        var line = node.location.line - 1  // index into sourceLines
        var column = node.location.column - 1  // index into the line's Unicode scalars
        guard line >= 0, line < sourceLines.count else { return }
        var scalars = sourceLines[line]
        func nextLine() -> Bool {
            line += 1
            column = 0
            guard line < sourceLines.count else { return false }
            scalars = sourceLines[line]
            return true
        }
        let style = node.scalarStyle
        switch style {
        case .literal?, .folded?:
            guard nextLine() else { return }  // the text starts on the line after `|` or `>`
        case .doubleQuoted?, .singleQuoted?:
            column += 1  // after the opening quote
        default:
            break
        }
        var runs: [(line: Int, column: Int, offset: Int)] = []
        func here(_ offset: Int) {
            if let last = runs.last, last.line == line + 1, last.column + (offset - last.offset) == column + 1 { return }
            runs.append((line + 1, column + 1, offset))
        }
        let value = Array(text.unicodeScalars)
        var i = 0
        walk: while i < value.count {
            guard column < scalars.count else {
                // The source line ends: a line break of the value, or one folded into a space, is consumed with it
                // (libyaml keeps LS and PS in a block scalar's value, and turns the other line ends into LF).
                if ["\n", " ", "\u{2028}", "\u{2029}"].contains(value[i]) {
                    here(i)
                    i += 1
                }
                guard nextLine() else { break }
                continue
            }
            let s = scalars[column]
            // Escapes first: their first character may equal the value's (a doubled quote, `\\`).
            if style == .doubleQuoted, s == "\\" {
                guard column + 1 < scalars.count else {
                    // An escaped line break: no character of the value; the next line's indentation goes too.
                    guard nextLine() else { break }
                    continue
                }
                here(i)  // one character of the value, written as 2 (`\n`), 4 (`\x41`), 6 (`\u00e9`) or 10 (`\U0001F600`)
                i += 1
                let length = switch scalars[column + 1] {
                case "x": 4
                case "u": 6
                case "U": 10
                default: 2
                }
                column += length
            } else if style == .singleQuoted, s == "'", column + 1 < scalars.count, scalars[column + 1] == "'" {
                here(i)
                i += 1
                column += 2
            } else if s == value[i] {
                here(i)
                i += 1
                column += 1
            } else if s == " " || s == "\t" {
                column += 1  // indentation, or spaces folded away
            } else {
                break walk
            }
        }
        self.runs = runs
    }

    func location(_ offset: Int) -> SourceLocation {
        guard let start = runs.last(where: { $0.offset <= offset }) else { return fallback }
        return SourceLocation(file: fallback.file, line: start.line, column: start.column + (offset - start.offset))
    }
}
