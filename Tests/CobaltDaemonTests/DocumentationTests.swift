import CobaltTestSupport
import Foundation
import RuleEngine
import Testing

/// The documented examples and schema stay true: the examples decode and evaluate, and validate against
/// docs/schemas/event.v1.schema.json (checked with Python's jsonschema, an independent implementation).
@Suite struct DocumentationTests {
    static let examples = Repository.root.appendingPathComponent("docs/examples")

    /// The README's claims about its examples: C03 (150 pmol/L) is 203 ng/L and borderline, not deficient; C09
    /// raises the critical neurological flag with an IM route.
    @Test func examplesDoWhatTheReadmeSays() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.examples.path).filter { $0.hasSuffix(".jsonl") }
        #expect(Set(files) == ["c03-unit-trap.jsonl", "c09-neuro.jsonl"])
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        func evaluate(_ file: String) throws -> EvaluationResult {
            let data = try Data(contentsOf: Self.examples.appendingPathComponent(file))
            return try #require(Timelines.evaluate(try EventDecoder.decodeTimeline(data), bundle: bundle).first)
        }
        let c03 = try evaluate("c03-unit-trap.jsonl")
        #expect(c03.decision("b12.status") == .text("borderline"))
        #expect(c03.derivedValue("b12.total_result")?.display == "203.3 ng/L")
        let c09 = try evaluate("c09-neuro.jsonl")
        #expect(c09.decision("b12.route") == .text("IM"))
        #expect(c09.alerts.contains { $0.category == "neuro-urgent" && $0.severity == "critical" })
    }

    @Test func examplesMatchTheJSONSchema() async throws {
        let script = """
            import glob, json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            validator = jsonschema.Draft202012Validator(schema)
            count = 0
            for path in glob.glob(sys.argv[2] + "/*.jsonl"):
                for line in open(path):
                    if line.strip():
                        validator.validate(json.loads(line))
                        count += 1
            bad = {"id": "x", "patient": "p", "clinic": "c", "time": "t", "pregnancy": {"status": "expecting"}}
            assert not validator.is_valid(bad)
            print(f"valid {count}")
            """
        let (status, output) = try await runPython([
            "-c", script, Repository.root.appendingPathComponent("docs/schemas/event.v1.schema.json").path, Self.examples.path,
        ])
        #expect(status == 0, "\(output)")
        #expect(output.hasPrefix("valid ") && !output.hasPrefix("valid 0"))
    }
}
