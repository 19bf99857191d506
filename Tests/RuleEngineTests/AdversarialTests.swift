import Foundation
import Testing
@testable import RuleEngine

/// No input file — however broken — may crash or hang the loader. Each case must come back with diagnostics
/// (or load), and every diagnostic must point inside the file.
@Suite struct AdversarialRuleFileTests {
    /// Loads a directory whose single rule set has `text`; returns the result after checking positions.
    func loadRuleSet(_ text: String) throws -> RuleLoader.Result {
        let scratch = try Support.ScratchRules(["x.yaml": text])
        defer { scratch.remove() }
        let result = scratch.load()
        let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
        for d in result.log.diagnostics where d.location.file.hasSuffix("x.yaml") {
            #expect(d.location.line >= 1 && d.location.line <= max(lineCount, 1), "\(d.headline)")
            #expect(d.location.column >= 1, "\(d.headline)")
        }
        #expect(result.bundle != nil || result.log.hasErrors)
        return result
    }

    static let bundledRuleSet = try! String(contentsOfFile: Support.rulesDirectory + "/rulesets/10-deficiency.yaml", encoding: .utf8)

    @Test func everyTruncationOfARealRuleFileIsHandled() throws {
        let scalars = Array(Self.bundledRuleSet.unicodeScalars)
        var loaded = 0
        for cut in stride(from: 0, to: scalars.count, by: 97) {
            let result = try loadRuleSet(String(String.UnicodeScalarView(scalars[..<cut])))
            if result.bundle != nil { loaded += 1 }
        }
        #expect(loaded < scalars.count / 97)
    }

    @Test func randomLineDeletionsAndDuplicationsAreHandled() throws {
        var rng = SplitMix64(state: 42)
        let lines = Self.bundledRuleSet.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for _ in 0..<40 {
            var mutated = lines
            for _ in 0..<3 {
                let i = Int.random(in: 0..<mutated.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: mutated.remove(at: i)
                case 1: mutated.insert(mutated[i], at: i)
                case 2: mutated[i] = String(mutated[i].shuffled(using: &rng))
                default: mutated[i] = "  " + mutated[i]
                }
            }
            _ = try loadRuleSet(mutated.joined(separator: "\n"))
        }
    }

    @Test func randomBytesAreHandled() throws {
        var rng = SplitMix64(state: 7)
        let alphabet = Array("abc:-[]{}#&*!|>'\"\n\t $()<=%.0123456789".unicodeScalars)
        for _ in 0..<60 {
            let length = Int.random(in: 0..<400, using: &rng)
            var text = String.UnicodeScalarView()
            for _ in 0..<length { text.append(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]) }
            _ = try loadRuleSet(String(text))
        }
    }

    @Test func hostileStructures() throws {
        let nested = String(repeating: "[", count: 100_000)
        #expect(try loadRuleSet(nested).log.errors.first?.message == "brackets nest deeper than 64 levels")
        // The position is that of the bracket too many, in characters: neither a two- or four-byte character before
        // it nor brackets inside quotes or after a comment count.
        let placed = "# [[[[ µ\nnote: \"día 🙂\" " + String(repeating: "[", count: 30) + " 'µ[[[[[[[[' \"[[[[\" "
            + String(repeating: "{", count: 35) + "\n"
        let error = try #require(try loadRuleSet(placed).log.errors.first)
        #expect(error.message == "brackets nest deeper than 64 levels")
        // `note: "día 🙂" ` is 14 characters, then 30 brackets, ` 'µ[[[[[[[[' "[[[[" ` (20), and the 35th brace.
        #expect((error.location.line, error.location.column) == (2, 14 + 30 + 20 + 35), "\(error.location)")
        let laughs = """
            a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
            b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
            c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
            d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
            ruleset: *d
            """
        #expect(try loadRuleSet(laughs).bundle == nil)
        let indented = (0..<800).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")
        #expect(try loadRuleSet(indented).bundle == nil)
        #expect(try loadRuleSet("ruleset: \u{0}").log.errors.first?.message == "file contains a NUL character")
        let huge = String(repeating: "# padding\n", count: 120_000)
        #expect(try loadRuleSet(huge).log.errors.first?.message.hasPrefix("file is 1200000 bytes") == true)
        let deepExpression = Support.header() + "\nrules:\n  - id: r\n    when: " + String(repeating: "(", count: 500) + "x" + String(repeating: ")", count: 500) + "\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"
        #expect(try loadRuleSet(deepExpression).log.errors.first?.message == "expression nests deeper than 64 levels")
    }

    @Test func invalidUTF8IsReported() throws {
        let scratch = try Support.ScratchRules([:])
        defer { scratch.remove() }
        try Data([0x72, 0x75, 0xff, 0xfe, 0x0a]).write(to: URL(fileURLWithPath: scratch.file("bad.yaml")))
        let result = scratch.load()
        #expect(result.bundle == nil)
        #expect(result.log.errors.map(\.message) == ["file is not valid UTF-8"])
    }

    @Test func brokenVocabularyIsReportedNotFatal() throws {
        let scratch = try Support.ScratchRules(
            ["a.yaml": Support.header() + "\nrules: []\n"],
            vocabulary: """
                facts:
                  b12.total: {kind: observation, unit: furlongs}
                  mma: {kind: observaton, unit: umol/L}
                  hb: {kind: observation, unit: g/L, codes: [loinc:718-7], conversions: {g/dL: {multiply: 10}}}
                  ferritin: {kind: observation, unit: ug/L, codes: [loinc:718-7]}
                  folate: {kind: observation, unit: ug/L, conversions: {nmol/L: {multiply: 0x1p-1}}}
                """)
        defer { scratch.remove() }
        let messages = scratch.load().log.errors.map { "\($0.location.line):\($0.location.column): \($0.message)" }
        #expect(messages == [
            "2:40: unknown unit 'furlongs'",
            "2:3: observation 'b12.total' needs a unit or a list of values",
            "3:15: unknown kind 'observaton'; expected one of observation, medication, administration, condition, symptom, reaction",
            "4:74: g/dL converts to g/L by itself; analyte conversions are for other dimensions",
            "5:3: code loinc:718-7 is mapped to both 'hb' and 'ferritin'",
            // A hexadecimal float (Swift's Double(String) reads them) is not a conversion factor anyone wrote.
            "6:76: multiply must be a number, found '0x1p-1'",
        ])
    }
}

/// Files that parse to nothing, and files that are not rule sets at all, found in `rulesets/` by an operator.
@Suite struct EmptyAndStrayRuleFileTests {
    static let valid = Support.header() + "\nrules:\n  - id: r\n    when: exists(numbness)\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"

    /// A rule-set file truncated to nothing (a failed copy, `> file`) or left with only comments loaded as if it were
    /// not there: `rules check` said "0 errors, 0 warnings" and the rule set (and its alerts) silently vanished.
    @Test(arguments: ["", "# only a comment\n# and another\n", "\n\n"])
    func anEmptyRuleSetFileIsReportedAtTheFile(_ text: String) throws {
        let scratch = try Support.ScratchRules(["a.yaml": Self.valid, "b.yaml": text])
        defer { scratch.remove() }
        let result = scratch.load()
        let atFile = result.log.diagnostics.filter { $0.location.file.hasSuffix("rulesets/b.yaml") }
        #expect(result.bundle == nil, "an empty rule-set file loaded silently (\(result.bundle?.rulesets.count ?? 0) rule sets)")
        #expect(!atFile.isEmpty, "no diagnostic names rulesets/b.yaml")
    }

    /// An empty vocabulary refused the directory with no diagnostic at all: "0 errors, 0 warnings; not loaded", and a
    /// reload refused with `"errors": []`.
    @Test func anEmptyVocabularyHasAReason() throws {
        let scratch = try Support.ScratchRules(["a.yaml": Self.valid], vocabulary: "# emptied\n")
        defer { scratch.remove() }
        let result = scratch.load()
        #expect(result.bundle == nil)
        #expect(result.log.errors.contains { $0.location.file.hasSuffix("vocabulary.yaml") }, "no reason given: \(result.log.diagnostics)")
    }

    /// Emacs keeps a lock `.#NAME.yaml` (a dangling symlink) beside a file with unsaved changes; macOS copies leave
    /// `._NAME.yaml`. Hidden files are no rule sets: they must not block loading (and so every reload and restart).
    @Test func hiddenEditorFilesInRulesetsAreIgnored() throws {
        let scratch = try Support.ScratchRules(["a.yaml": Self.valid])
        defer { scratch.remove() }
        try FileManager.default.createSymbolicLink(atPath: scratch.file(".#a.yaml"), withDestinationPath: "user@host.1234:1700000000")
        let result = scratch.load()
        #expect(result.bundle != nil, "\(result.log.diagnostics.map(\.headline))")
    }

    /// Invalid UTF-8 is reported where it is, not at 1:1 of a long file.
    @Test func invalidUTF8IsReportedAtItsLine() throws {
        let scratch = try Support.ScratchRules([:])
        defer { scratch.remove() }
        var bytes = Array((Self.valid).utf8)
        let owner = Array("owner: Test".utf8)
        let at = try #require((0..<bytes.count).first { Array(bytes[$0..<min($0 + owner.count, bytes.count)]) == owner })
        bytes.insert(0xE9, at: at + 8)  // "owner: T\u{E9}est": Latin-1 é
        try Data(bytes).write(to: URL(fileURLWithPath: scratch.file("bad.yaml")))
        let error = try #require(scratch.load().log.errors.first)
        #expect(error.location.line == 4, "\(error.headline)")
    }
}
