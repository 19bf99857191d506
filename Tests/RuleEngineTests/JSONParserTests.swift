import Foundation
import Testing
@testable import RuleEngine

@Suite struct JSONParserTests {
    func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8)) }

    func failure(_ bytes: [UInt8]) -> String? {
        do {
            _ = try JSONValue.parse(bytes)
            return nil
        } catch {
            return error.errors.first?.message
        }
    }

    @Test func parsesEveryKindOfValue() throws {
        let value = try parse(#" { "a": [1, -2.5, 3e2, 0, true, false, null], "b": {"c": "d\u00e9\n\"\\/"}, "e": "😀 \ud83d\ude00" } "#)
        #expect(value == .object([
            "a": .array([.number(1), .number(-2.5), .number(300), .number(0), .bool(true), .bool(false), .null]),
            "b": .object(["c": .string("dé\n\"\\/")]),
            "e": .string("😀 😀"),
        ]))
    }

    @Test func numbersAreExact() throws {
        #expect(try parse("0.45") == .number(0.45))
        #expect(try parse("-180") == .number(-180))
        #expect(try parse("123456789012345678") == .number(123456789012345678))
        #expect(try parse("1.355e3") == .number(1355))
    }

    @Test(arguments: [
        ("{\"a\": }", "line 1, column 7: unexpected '}'"),
        ("{\"a\": 1,\n \"a\": 2}", "line 2, column 2: duplicate key \"a\""),
        ("[1, 2", "line 1, column 6: unexpected end of input"),
        ("{\"a\" 1}", "line 1, column 6: expected ':' after a key"),
        ("01", "line 1, column 2: unexpected text after the JSON value"),
        ("1.", "line 1, column 3: a decimal point needs digits after it"),
        ("\"tab\there\"", "line 1, column 5: control character in a string (escape it)"),
        ("\"\\x\"", "line 1, column 3: invalid escape \\x"),
        ("\"\\ud800\"", "line 1, column 8: unpaired surrogate in \\u escape"),
        ("tru", "line 1, column 1: invalid literal"),
        ("{\"a\":1} x", "line 1, column 9: unexpected text after the JSON value"),
        ("1e999", "line 1, column 1: number out of range"),
        ("", "line 1, column 1: unexpected end of input"),
        ("NaN", "line 1, column 1: unexpected 'N'"),
    ])
    func malformedInputIsDescribedWithItsPosition(_ text: String, _ expected: String) {
        #expect(failure(Array(text.utf8)) == "malformed JSON at \(expected)")
    }

    @Test func hostileInputIsRefusedNotFatal() {
        #expect(failure(Array(String(repeating: "[", count: 100_000).utf8))?.contains("nesting deeper than 64 levels") == true)
        #expect(failure([0x22, 0xFF, 0xFE, 0x22])?.contains("not valid UTF-8") == true)
        #expect(failure([0x7B, 0x00, 0x7D])?.contains("byte 0x0") == true)
        #expect(failure(Array("[\"".utf8))?.contains("unterminated string") == true)
    }

    /// Random bytes never crash the parser.
    @Test func randomBytes() {
        var state: UInt64 = 99
        for _ in 0..<2_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 64) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let alphabet: [UInt8] = Array("{}[]\",:0123456789.-eEtrufalsn \\u".utf8) + [0xC3, 0xA9, 0xFF]
                bytes.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            _ = try? JSONValue.parse(bytes)
        }
    }

    /// Quoting escapes exactly what JSON requires, keeps everything else byte for byte, and round-trips through
    /// an independent parser (Foundation's).
    @Test func quotingRoundTripsEveryKindOfCharacter() throws {
        let samples = [
            "", "plain", "dé 😀 µg/L", "quote \" and backslash \\", "line\nfeed\rreturn\ttab",
            "\u{0}\u{1}\u{1F} \u{7F}", String(repeating: "x", count: 200) + "\"",
        ]
        for sample in samples {
            let quoted = sample.jsonQuoted
            let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
            #expect(decoded == [sample], "\(quoted)")
        }
        #expect("a\"b".jsonQuoted == #""a\"b""#)
        #expect("\u{1}".jsonQuoted == #""\u0001""#)
        #expect("\n".jsonQuoted == #""\n""#)
        #expect("é".jsonQuoted == "\"é\"")
    }

    /// The canonical form is what duplicate detection compares when a resent event's bytes differ from the stored
    /// ones, and what journals written before session 14 store (with its digest). Pin it: keys sorted, no spaces,
    /// integers without a decimal point, minimal escapes.
    @Test func theCanonicalFormIsPinned() throws {
        let value = try parse(#" { "b": [1.0, -2.5, 3e2, true, null], "a": {"y": "tab\there \"q\" \u0001é/", "x": {}} , "c": [] } "#)
        #expect(value.canonicalText == #"{"a":{"x":{},"y":"tab\there \"q\" \u0001é/"},"b":[1,-2.5,300,true,null],"c":[]}"#)
        #expect(value.canonicalBytes == Array(value.canonicalText.utf8))
    }

    /// Events' own member names are matched against a table and sorted by rank: the same canonical form as for
    /// any other names. A document longer than the 1 KiB the writer reserves, with names in reverse order:
    /// objects of known names only (sorted by rank), and one mixing known and unknown names and longer than the
    /// rank table (sorted as strings), with numbers at the edges of the whole-number form.
    @Test func theCanonicalFormOfEventNamesAndNumbersIsPinned() throws {
        let members = [
            #""unit": "x""#, #""time": 0"#, #""symptoms": []"#, #""status": -0.0"#, #""schema": -17"#, #""per": 123456789012345"#,
            #""patient": 1e15"#, #""observations": -999999999999999"#, #""id": 2.5e-7"#, #""diet": 0.1"#, #""code": {"system": 1, "code": 2}"#,
            #""clinic": "é""#, #""medications": [{"unit": "mg", "status": "active", "start": "s", "per": "day", "dose": 5, "code": "c"}]"#,
            #""zz": 1"#, #""pati": 2"#, #""Code": 3"#, #""administrations": 4"#, #""a": 5"#,
        ]
        let padding = String(repeating: "p", count: 1_100)
        let value = try parse("{" + members.joined(separator: ", ") + #", "padding": ""# + padding + #""}"#)
        let expected = #"{"Code":3,"a":5,"administrations":4,"clinic":"é","code":{"code":2,"system":1},"diet":0.1,"id":2.5e-07,"#
            + #""medications":[{"code":"c","dose":5,"per":"day","start":"s","status":"active","unit":"mg"}],"observations":-999999999999999,"padding":""# + padding + #"","pati":2,"patient":1000000000000000.0,"per":123456789012345,"#
            + #""schema":-17,"status":0,"symptoms":[],"time":0,"unit":"x","zz":1}"#
        #expect(value.canonicalText == expected)
        #expect(value.canonicalBytes == Array(expected.utf8))
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(object["clinic"] == .string("é") && object["Code"] == .number(3) && object["code"] != nil)
    }

    /// Objects keep their members sorted and unique, whatever their size: lookups (scan and binary search),
    /// edits, and duplicate keys in large objects.
    @Test func objectsStaySortedAndUnique() throws {
        let keys = (0..<40).map { "k\($0)" }.shuffled()
        let text = "{" + keys.map { "\"\($0)\": \($0.dropFirst())" }.joined(separator: ",") + "}"
        guard case .object(var large) = try parse(text) else { Issue.record("not an object"); return }
        #expect(large.keys == keys.sorted())
        for key in keys { #expect(large[key] == .number(Double(key.dropFirst())!)) }
        #expect(large["k40"] == nil && large[""] == nil)
        large["k05"] = .null
        large["k1"] = nil
        large["a"] = .bool(true)
        #expect(large.keys == (keys + ["k05", "a"]).filter { $0 != "k1" }.sorted())
        #expect(large["k05"] == .null && large["a"] == .bool(true) && large["k1"] == nil)
        #expect(JSONObject(["b": .null, "a": .number(1)]) == ["a": .number(1), "b": .null])
        #expect(failure(Array((String(text.dropLast()) + ",\"k7\": 1}").utf8))?.contains("duplicate key \"k7\"") == true)
        #expect(failure(Array(#"{"a": 1, "b": 2, "a": 3}"#.utf8))?.contains("duplicate key \"a\"") == true)
    }
}
