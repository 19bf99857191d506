import Foundation
import Testing
@testable import RuleEngine

/// Values from events and rule files that crashed, hung or printed `inf` (found by fuzzing in session 17): each is
/// now refused, unknown or bounded, and the daemon keeps serving.
@Suite(.timeLimit(.minutes(1))) struct HostileValueTests {
    private func event(_ body: String, time: String = "2026-11-20T09:00:00Z") -> String {
        #"{"schema": "cobalt.event.v1", "id": "h-1", "patient": "p-1", "clinic": "north", "time": "\#(time)", \#(body)}"#
    }

    /// `fetuses: 1e19` passed the range check's error and then trapped converting to Int: one event stopped the
    /// daemon. Both readers refuse it.
    @Test func aHugeFetusCountIsRefusedNotATrap() throws {
        for value in ["1e19", "-1e19", "1e300"] {
            let json = event(#""pregnancy": {"status": "pregnant", "gestation_weeks": 20, "fetuses": \#(value)}"#)
            #expect(throws: EventDecodingError.self) { try EventDecoder.decode(Data(json.utf8)) }
            #expect(Array(json.utf8).withUnsafeBufferPointer { FastEventReader.event($0) } == nil)
        }
    }

    /// Times that an offset carries outside years 0000–9999 are refused, not clamped when written.
    @Test func timesOutsideTheWritableYearsAreRefused() {
        #expect(Timestamp.parse("0000-01-01T00:00:00+23:59") == nil)
        #expect(Timestamp.parse("9999-12-31T23:59:59-23:59") == nil)
        #expect(Timestamp.parse("9999-12-31T23:59:59Z") != nil && Timestamp.parse("0000-01-01T00:00:00Z") != nil)
    }

    /// An ICD-10 "code" of 200,000 characters was walked back one character at a time, counting the whole string
    /// at each step: minutes of ingest for one event. Anything longer than an ICD-10 code has no parents.
    @Test func aHugeICD10CodeResolvesAtOnce() {
        let code = PatientEvent.Code(system: "icd10", code: String(repeating: "A", count: 200_000))
        guard case .unknown = Support.bundled.vocabulary.resolve(code) else {
            Issue.record("a 200,000-character code resolved to something")
            return
        }
        #expect(Vocabulary.icd10Parent("icd10:e10.65") == "icd10:e10.6")
    }

    /// A dose of 1e303 kg a day became `inf` mg/d: `"value":inf` in the evidence (not JSON) and "inf" in the text.
    @Test func aDoseBeyondTheLargestNumberIsNotInfinite() throws {
        let result = Support.evaluate([try Support.event(event(
            #""pregnancy": {"status": "pregnant", "gestation_weeks": 20}, "medications": [{"code": "folic-acid", "dose": 1e303, "unit": "kg", "per": "day", "status": "active"}]"#))])
        for bad in [":inf", " inf ", ":-inf", ":nan", " nan "] {  // ("info" is a severity)
            #expect(!result.json.contains(bad), "\(bad) in \(result.json.prefix(600))")
        }
        #expect(try JSONSerialization.jsonObject(with: Data(result.json.utf8)) is [String: Any])
        #expect(Double.greatestFiniteMagnitude.rounded(significant: 4).isFinite)
    }

    /// Every diagnostic split its file up to its line again: 88,000 unused parameters took minutes to report.
    @Test func manyDiagnosticsInOneFileAreReportedInLinearTime() throws {
        let parameters = (0..<30_000).map { "  p\($0): {value: 1}" }.joined(separator: "\n")
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + "\nparameters:\n" + parameters + "\nrules: []\n"])
        defer { scratch.remove() }
        let result = scratch.load()
        #expect(result.log.errors.isEmpty && result.log.warnings.count == 30_000, "\(result.log.errors.prefix(3))")
        // Each diagnostic still carries its own line.
        let last = try #require(result.log.warnings.first { $0.message == "parameter 'p29999' is never used" })
        #expect(last.sourceLine == "  p29999: {value: 1}")
    }

    /// Anchors and aliases are refused where they are defined, in rule tests too: a 500-byte "billion laughs" test
    /// file grew to gigabytes (Yams resolves aliases itself, so the checks for alias nodes never saw one).
    @Test func aBillionLaughsTestFileIsRefusedAtOnce() throws {
        var levels = "        l0: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for (index, (name, previous)) in zip(["b", "c", "d", "e", "f", "g", "h", "i"], ["a", "b", "c", "d", "e", "f", "g", "h"]).enumerated() {
            levels += "        l\(index + 1): &\(name) [" + Array(repeating: "*\(previous)", count: 10).joined(separator: ", ") + "]\n"
        }
        let text = "tests:\n  - name: laughs\n    events:\n      - time: 2026-11-20T09:00:00Z\n" + levels + "    expect: {}\n"
        var log = DiagnosticLog()
        let source = YAMLSource.parse(data: Data(text.utf8), display: "tests/laughs.yaml", log: &log)
        #expect(source.root == nil)
        #expect(log.errors.map(\.description).contains { $0.contains("tests/laughs.yaml:5:") && $0.contains("anchors and aliases are not supported") },
            "\(log.errors.map(\.description))")
    }

    /// A flat chain of about 1,070 `+1` terms (2 KB, under the 8 KiB expression limit) built a tree that deep, and
    /// the compiler's recursion overflowed the stack in a debug build. At most 256 `+ - * /` per expression.
    @Test func longArithmeticChainsAreRefusedBeforeTheyGetDeep() throws {
        let allowed = "1" + String(repeating: "+1", count: Parser.maximumArithmetic) + " > 0"
        #expect(throws: Never.self) { try Parser.parse(allowed) }
        let tooLong = "1" + String(repeating: "+1", count: 1_100) + " > 0"
        #expect {
            try Parser.parse(tooLong)
        } throws: { error in
            "\(error)".contains("more than 256 + - * / operators")
        }
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + """

            rules:
              - id: r1
                when: latest(hb) \(String(repeating: "* 1", count: 1_100)) > 1 g/L
                citations: [SRC]
                alert: {category: anaemia, severity: info, summary: s, detail: d, recommendation: r}
            """])
        defer { scratch.remove() }
        let result = scratch.load()
        #expect(result.bundle == nil && result.log.errors.contains { $0.description.contains("more than 256") })
    }
}
