import CobaltTestSupport
import Foundation
import RuleEngine
import Testing

/// The documented examples and schema stay true: the examples decode and evaluate, and validate against
/// docs/schemas/event.v1.schema.json (checked with Python's jsonschema, an independent implementation).
@Suite struct DocumentationTests {
    static let examples = Repository.root.appendingPathComponent("docs/examples")

    @Test func examplesDecodeAndEvaluate() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.examples.path).filter { $0.hasSuffix(".jsonl") }
        #expect(!files.isEmpty)
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        for file in files {
            let data = try Data(contentsOf: Self.examples.appendingPathComponent(file))
            let events = try EventDecoder.decodeTimeline(data)
            #expect(!events.isEmpty, "\(file)")
            let results = Timelines.evaluate(events, bundle: bundle)
            #expect(results.allSatisfy { !$0.decisions.isEmpty }, "\(file)")
        }
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
