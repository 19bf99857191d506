import Foundation
@testable import RuleEngine

/// Paths and builders shared by the rule-engine tests. Tests use the real bundled `Rules/` and real files on
/// disk; nothing here is a mock.
enum Support {
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let rulesDirectory = repositoryRoot.appendingPathComponent("Rules").path
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    /// A fixed "today" so review-date checks do not depend on the clock.
    static let today = Timestamp.parse("2026-11-20")!

    /// The bundled rules, loaded once.
    static let bundled: RuleBundle = {
        let result = RuleLoader(today: today).load(directory: rulesDirectory)
        guard let bundle = result.bundle else {
            fatalError("bundled rules do not load:\n" + result.log.sorted.map(\.description).joined(separator: "\n"))
        }
        return bundle
    }()

    /// A scratch rules directory: the bundled vocabulary plus the given rule-set files. Removed by `remove()`.
    struct ScratchRules {
        let path: String

        init(_ rulesets: [String: String], vocabulary: String? = nil, tests: [String: String] = [:]) throws {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("cobalt-rules-\(UUID().uuidString)")
            path = base.path
            let fm = FileManager.default
            try fm.createDirectory(at: base.appendingPathComponent("rulesets"), withIntermediateDirectories: true)
            try fm.createDirectory(at: base.appendingPathComponent("tests"), withIntermediateDirectories: true)
            let vocabularyText = try vocabulary ?? String(contentsOfFile: "\(Support.rulesDirectory)/vocabulary.yaml", encoding: .utf8)
            try vocabularyText.write(to: base.appendingPathComponent("vocabulary.yaml"), atomically: true, encoding: .utf8)
            try "bundle:\n  version: test-1\n".write(to: base.appendingPathComponent("bundle.yaml"), atomically: true, encoding: .utf8)
            for (name, text) in rulesets {
                try text.write(to: base.appendingPathComponent("rulesets/\(name)"), atomically: true, encoding: .utf8)
            }
            for (name, text) in tests {
                try text.write(to: base.appendingPathComponent("tests/\(name)"), atomically: true, encoding: .utf8)
            }
        }

        func file(_ name: String) -> String { "\(path)/rulesets/\(name)" }

        func load(profile: String? = nil) -> RuleLoader.Result {
            RuleLoader(today: Support.today).load(directory: path, profile: profile)
        }

        func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    /// A minimal production rule-set header with one citation `SRC`.
    static func header(id: String = "test.set", status: String = "production") -> String {
        """
        ruleset:
          id: \(id)
          version: "1"
          owner: Test owner
          status: \(status)
          review_by: 2027-01-01
          citations:
            SRC: Test source
        """
    }

    /// Decodes an event written as a JSON object literal.
    static func event(_ json: String) throws -> PatientEvent {
        try EventDecoder.decode(Data(json.utf8))
    }

    /// Evaluates events against a bundle (default: the bundled rules) at `at`.
    static func evaluate(_ events: [PatientEvent], bundle: RuleBundle = bundled, at: String? = nil) -> EvaluationResult {
        Timelines.evaluate(events, bundle: bundle, at: at.flatMap(Timestamp.parse))[0]
    }
}

/// A deterministic generator (SplitMix64), so that generated test cases, and their failures, reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
