import Foundation
import Testing
@testable import RuleEngine

@Suite struct EventDecoderTests {
    static let valid = """
        {"schema": "cobalt.event.v1", "id": "lab-1", "patient": "p-1", "clinic": "north", "time": "2026-11-20T09:30:00Z",
         "observations": [{"code": "b12.total", "value": 150, "unit": "pmol/L", "time": "2026-11-19T08:00:00Z"},
                          {"code": {"system": "loinc", "code": "718-7"}, "value": 11.2, "unit": "g/dL"}],
         "medications": [{"code": "folic-acid", "dose": 5, "unit": "mg", "per": "day", "status": "active", "start": "2026-03-01"}],
         "administrations": [{"code": "hydroxocobalamin", "dose": 1, "unit": "mg", "route": "IM", "time": "2026-11-18T10:00:00Z"}],
         "conditions": [{"code": {"system": "icd10", "code": "Z98.84"}, "status": "active"}],
         "symptoms": [{"code": "paraesthesia", "status": "present", "onset": "2026-11-01"}],
         "reactions": [{"code": "urticaria", "after": "b12-injection", "time": "2026-11-18T10:20:00Z"}],
         "pregnancy": {"status": "pregnant", "gestation_weeks": 16.3, "fetuses": 1},
         "diet": "vegan", "preferences": ["declines-injections"]}
        """

    @Test func decodesTheInterfaceExample() throws {
        let event = try Support.event(Self.valid)
        #expect(event.id == "lab-1" && event.patient == "p-1" && event.clinic == "north")
        #expect(event.time == Timestamp.parse("2026-11-20T09:30:00Z"))
        #expect(event.observations.count == 2 && event.observations[1].code == .init(system: "loinc", code: "718-7"))
        #expect(event.medications[0].start == Timestamp.parse("2026-03-01"))
        #expect(event.pregnancy?.gestationWeeks == 16.3 && event.diet == "vegan" && event.preferences == ["declines-injections"])
        #expect(event.warnings.isEmpty)
    }

    /// A condition's `onset` is checked even when its `time` is valid: a malformed event is rejected whole.
    @Test(arguments: [#""not a date""#, "12345", #"{"x": 1}"#])
    func aConditionsMalformedOnsetIsAnErrorBesideAValidTime(_ onset: String) {
        let json = """
            {"id": "c-1", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z",
             "conditions": [{"code": "pernicious-anaemia", "time": "2026-01-01", "onset": \(onset)}]}
            """
        #expect {
            _ = try EventDecoder.decode(Data(json.utf8))
        } throws: { error in
            (error as! EventDecodingError).errors.map(\.path) == ["conditions[0].onset"]
        }
        // Such an event was acknowledged before this check (the decoder took `time` and never read `onset`): read
        // back from the journal it must still be the event, or it drops out of its patient's history (with its
        // observations) at the next rebuild, without a word.
        let journaled = try? EventDecoder.decodeJournaled(Data(json.utf8))
        #expect(journaled?.conditions.first?.time == Timestamp.parse("2026-01-01"), "a journaled event was refused for its onset")
    }

    @Test func everyErrorIsListedWithItsPath() {
        let json = """
            {"id": "", "patient": 42, "time": "yesterday", "observations": [{"value": true}, 3],
             "pregnancy": {"status": "expecting"}, "diet": "keto", "medications": [{"code": "folic-acid", "per": "fortnight"}]}
            """
        #expect {
            _ = try Support.event(json)
        } throws: { error in
            let paths = Set((error as! EventDecodingError).errors.map(\.path))
            return paths == [
                "id", "patient", "clinic", "time", "observations[0].code", "observations[0].value", "observations[1]",
                "pregnancy.status", "diet", "medications[0].per",
            ]
        }
    }

    /// Each problem is said once and as it is: an empty value is empty (it was "expected a number or a string, found
    /// string"), and a pregnancy status of the wrong type is that (it was also "required field is missing").
    @Test func errorsSayWhatIsWrongOnce() {
        let json = """
            {"id": "e", "patient": "p", "clinic": "c", "time": "2026-11-20T09:00:00Z",
             "observations": [{"code": "b12.total", "value": "", "unit": "ng/L"}], "pregnancy": {"status": true}}
            """
        #expect {
            _ = try Support.event(json)
        } throws: { error in
            (error as! EventDecodingError).errors == [
                FieldError(path: "observations[0].value", message: "must not be empty"),
                FieldError(path: "pregnancy.status", message: "expected a string, found boolean"),
            ]
        }
    }

    /// `time` is required: `null` is an error, not the epoch (it used to be read as an optional time, and the event
    /// was placed at 1970-01-01).
    @Test func aNullEventTimeIsAnError() {
        #expect {
            _ = try Support.event(#"{"id": "e", "patient": "p", "clinic": "c", "time": null}"#)
        } throws: { error in
            (error as! EventDecodingError).errors == [FieldError(path: "time", message: "expected an RFC 3339 time string, found null")]
        }
    }

    @Test(arguments: ["not json", "[1,2", "{\"id\": }", "", "\u{0}"])
    func malformedJSONIsRejectedNotCrashed(_ text: String) {
        #expect(throws: EventDecodingError.self) { _ = try EventDecoder.decode(Data(text.utf8)) }
    }

    /// Identifiers are limited to 128 characters, not bytes: 128 two-byte characters pass, 129 of any kind do not —
    /// and to 512 bytes, since a character can hold any number of combining marks (here 128 characters of 9 bytes).
    @Test(arguments: [
        (String(repeating: "é", count: 128), nil), (String(repeating: "a", count: 129), "must be 1 to 128 characters, found 129"),
        (String(repeating: "é", count: 129), "must be 1 to 128 characters, found 129"),
        (String(repeating: "e\u{301}\u{302}\u{303}\u{304}", count: 128), "must be at most 512 bytes of UTF-8, found 1152 (in 128 characters)"),
    ])
    func identifiersAreLimitedInCharactersAndBytes(_ id: String, _ refusal: String?) throws {
        let json = #"{"id": "\#(id)", "patient": "p", "clinic": "north", "time": "2026-11-20T09:30:00Z"}"#
        do {
            let event = try Support.event(json)
            #expect(refusal == nil && event.id == id)
        } catch let error as EventDecodingError {
            #expect(error.errors == [FieldError(path: "id", message: refusal ?? "accepted")])
        }
    }

    /// The clinic id is part of the alert topic `clinic/<id>/…`: a `/` would let one clinic's subscription
    /// prefix match another clinic's topics, so such ids are refused with the field's path; others pass.
    @Test(arguments: [
        ("north/x", true), ("north\u{7}", true), ("north\u{7F}", true), ("día\u{85}", true), ("north", false),
        ("north-antenatal.2 (día)", false),
    ])
    func clinicIdsThatWouldBreakTopicsAreRefused(_ clinic: String, _ refused: Bool) throws {
        let json = #"{"id": "e", "patient": "p", "clinic": "\#(clinic.unicodeScalars.map { $0.value < 0x20 ? String(format: "\\u%04x", $0.value) : String($0) }.joined())", "time": "2026-11-20T09:30:00Z"}"#
        do {
            let event = try Support.event(json)
            #expect(!refused && event.clinic == clinic, "accepted \(clinic)")
        } catch let error as EventDecodingError {
            #expect(refused && error.errors.map(\.path) == ["clinic"], "\(error.errors)")
        }
    }

    /// Identifiers must be in Unicode NFC: "café" with a precomposed é and with e + U+0301 are equal as Swift
    /// strings but not as bytes, which is how the journal, the alert log and topics compare them — two clinics
    /// shared one sequence counter (evaluation then stalled on a UNIQUE constraint), two patients one timeline.
    /// Any other spelling is refused, with the field's path, by the reader and the decoder alike.
    @Test(arguments: ["id", "patient", "clinic"])
    func identifiersMustBeInNormalisationFormC(_ field: String) throws {
        func event(_ value: String) -> String {
            var members = ["id": "e", "patient": "p", "clinic": "north"]
            members[field] = value
            return #"{"id": "\#(members["id"]!)", "patient": "\#(members["patient"]!)", "clinic": "\#(members["clinic"]!)", "time": "2026-11-20T09:30:00Z"}"#
        }
        let composed = try Support.event(event("caf\u{E9}-Ångström"))  // NFC, not ASCII: accepted
        #expect([composed.id, composed.patient, composed.clinic].contains("caf\u{E9}-Ångström"))
        for decomposed in ["cafe\u{301}", "A\u{30A}ngstro\u{308}m", "\u{212B}"] {  // e + accent; A + ring; the Ångström sign
            #expect(FastEventReaderTests.fast(event(decomposed)) == nil, "the reader took \(decomposed.unicodeScalars.map(\.value))")
            let error = #expect(throws: EventDecodingError.self) { _ = try Support.event(event(decomposed)) }
            #expect(error?.errors.map(\.path) == [field] && error?.errors[0].message.contains("normalisation form C") == true,
                "\(error?.errors ?? [])")
            // Read back from the journal (accepted before this check existed), the event is still the event: it
            // was acknowledged, so it is evaluated and stays in its patient's history.
            let journaled = try EventDecoder.decodeJournaled(Data(event(decomposed).utf8))
            #expect([journaled.id, journaled.patient, journaled.clinic].contains { $0.utf8.elementsEqual(decomposed.utf8) })
        }
    }

    /// No identifier may hold a control character: a NUL in an id was stored whole but looked up cut short, and
    /// every resend of that event failed its whole group commit (a 503 for all senders in it).
    @Test(arguments: ["id", "patient", "clinic"])
    func identifiersHaveNoControlCharacters(_ field: String) throws {
        for bad in [#"q\u0000z"#, #"tab\there"#, #"del\u007F"#, #"c1\u0085"#] {
            var members = ["id": "e", "patient": "p", "clinic": "north"]
            members[field] = bad
            let json = #"{"id": "\#(members["id"]!)", "patient": "\#(members["patient"]!)", "clinic": "\#(members["clinic"]!)", "time": "2026-11-20T09:30:00Z"}"#
            #expect(FastEventReaderTests.fast(json) == nil, "the reader took \(bad)")
            let error = #expect(throws: EventDecodingError.self) { _ = try Support.event(json) }
            #expect(error?.errors.map(\.path) == [field] && error?.errors.first?.message == "must not contain control characters",
                "\(bad): \(error?.errors ?? [])")
        }
    }

    /// A preference changes what is recommended (declining injections makes the route oral): one Cobalt does not
    /// know is refused with its path, like an unknown diet. A typo used to be dropped without a word.
    @Test func unknownPreferencesAreRefused() throws {
        let json = #"{"id": "e", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z", "preferences": ["declines-injections", "declines-injection"]}"#
        #expect(FastEventReaderTests.fast(json) == nil)
        let error = #expect(throws: EventDecodingError.self) { _ = try Support.event(json) }
        #expect(error?.errors == [FieldError(path: "preferences[1]", message: #"expected one of declines-injections, found "declines-injection""#)])
        // Journaled before this check, the event was acknowledged: read back as it was, it stays in the history.
        #expect(try EventDecoder.decodeJournaled(Data(json.utf8)).preferences == ["declines-injections", "declines-injection"])
    }

    @Test func unknownFieldsAreWarningsNotErrors() throws {
        let event = try Support.event("""
            {"id": "e", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z", "colour": "blue"}
            """)
        #expect(event.warnings == [FieldError(path: "colour", message: "unknown field ignored")])
        // At every level, with the member's path; a coded concept's `display` is known.
        let nested = try Support.event("""
            {"id": "e", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z",
             "observations": [{"code": {"system": "loinc", "code": "718-7", "display": "Hb", "version": "2.7"}, "value": 11, "unit": "g/dL", "colour": "red"}],
             "pregnancy": {"status": "pregnant", "gestation_weeks": 20, "twins": true},
             "medications": [{"code": "folic-acid", "dose": 5, "unit": "mg", "per": "day", "note": "x"}]}
            """)
        #expect(nested.warnings.map(\.path).sorted() == ["medications[0].note", "observations[0].code.version", "observations[0].colour", "pregnancy.twins"],
            "\(nested.warnings)")
        #expect(nested.warnings.allSatisfy { $0.message == "unknown field ignored" })
    }

    @Test(arguments: [
        ("2026-11-20T09:30:00Z", 1_795_167_000.0) /* python3 datetime.fromisoformat(...).timestamp() */, ("2026-11-20T10:30:00+01:00", 1_795_167_000),
        ("2026-11-20T09:30:00.5Z", 1_795_167_000.5), ("2026-11-20", 1_795_132_800), ("2024-02-29", 1_709_164_800),
    ])
    func timestamps(_ text: String, _ expected: Double) {
        #expect(Timestamp.parse(text) == expected)
        #expect(Timestamp.parse(Timestamp.format(expected)) == expected.rounded(.down))
        #expect(Timestamp.parse(Timestamp.formatMilliseconds(expected)) == expected)
    }

    /// Times are written digit by digit; Foundation's ISO 8601 formatter (UTC) is the independent reference, over
    /// years 1583 to 9999 (before 1583 Foundation switches to the Julian calendar, where RFC 3339 keeps the
    /// Gregorian), the days around leap days and month ends, and fractions (which round down).
    @Test func timesAreWrittenAsFoundationWritesThem() {
        let reference = ISO8601DateFormatter()
        reference.timeZone = TimeZone(identifier: "UTC")
        var times: [Double] = [0, -1, 59.999, 951_782_399, 951_782_400, 951_868_800, 1_709_164_800, 1_795_167_000.5,
                               -12_212_553_600 /* 1583-01-01 */, 253_402_300_799 /* 9999-12-31T23:59:59 */]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { times.append(Double.random(in: -12_212_553_600...253_402_300_799, using: &generator)) }
        for t in times {
            let expected = reference.string(from: Date(timeIntervalSince1970: t.rounded(.down)))
            #expect(Timestamp.format(t) == expected, "\(t)")
            var quoted: [UInt8] = []
            Timestamp.appendQuoted(t, to: &quoted)
            #expect(quoted == Array("\"\(expected)\"".utf8), "\(t)")
        }
    }

    @Test func millisecondStamps() {
        #expect(Timestamp.formatMilliseconds(1_795_167_000.25) == "2026-11-20T09:30:00.250Z")
        #expect(Timestamp.formatMilliseconds(1_795_167_059.9999) == "2026-11-20T09:30:59.999Z")
        #expect(Timestamp.formatMilliseconds(0) == "1970-01-01T00:00:00.000Z")
    }

    @Test(arguments: ["2026-13-01", "2026-02-30", "2023-02-29", "2026-11-20T25:00:00Z", "2026-11-20T09:30:00", "20261120", "2026-11-20T09:30:00+0100"])
    func badTimestamps(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func timelineFilesAreArraysOrJSONLines() throws {
        let one = #"{"id": "a", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z"}"#
        let two = #"{"id": "b", "patient": "p", "clinic": "c", "time": "2026-11-21T09:30:00Z"}"#
        #expect(try EventDecoder.decodeTimeline(Data("[\(one), \(two)]".utf8)).map(\.id) == ["a", "b"])
        #expect(try EventDecoder.decodeTimeline(Data("\(one)\n\n\(two)\n".utf8)).map(\.id) == ["a", "b"])
        #expect {
            _ = try EventDecoder.decodeTimeline(Data("\(one)\n{\"id\": 1}\n".utf8))
        } throws: { error in
            (error as! EventDecodingError).errors.allSatisfy { $0.path.hasPrefix("line 2.") }
        }
    }
}

@Suite struct NormaliserTests {
    func normalise(_ observations: String, medications: String = "[]") throws -> NormalisedEvent {
        let event = try Support.event("""
            {"id": "e1", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z",
             "observations": \(observations), "medications": \(medications)}
            """)
        return NormalisedEvent(event, vocabulary: Support.bundled.vocabulary)
    }

    @Test func valuesAreStoredInTheCanonicalUnitWithWhatWasReported() throws {
        let n = try normalise(#"[{"code": {"system": "loinc", "code": "14685-2"}, "value": 150, "unit": "pmol/L"}]"#)
        #expect(n.findings.isEmpty)
        let record = try #require(n.observations.first)
        #expect(Support.bundled.vocabulary.facts[record.fact].name == "b12.total")
        #expect(record.record.value == .number(203.25))
        #expect(record.record.provenance.reportedValue == .number(150) && record.record.provenance.reportedUnit == "pmol/L")
    }

    @Test(arguments: [
        (#"{"code": "b12.total", "value": 160}"#, "unit missing; value 160 not used (never guessed)"),
        (#"{"code": "b12.total", "value": "160"}"#, "unit missing; value 160 not used (never guessed)"),
        (#"{"code": "b12.total", "value": 160, "unit": " \t"}"#, "unit missing; value 160 not used (never guessed)"),
        (#"{"code": "b12.total", "value": 160, "unit": "\u00a0\u2003"}"#, "unit missing; value 160 not used (never guessed)"),
        (#"{"code": "b12.total", "value": 160, "unit": "mmol/g"}"#, "unknown unit 'mmol/g'; value not used"),
        (#"{"code": "b12.total", "value": 160, "unit": "mg"}"#, "unit mg cannot be converted to ng/L for b12.total; value not used"),
        (#"{"code": "mma", "value": 160, "unit": "ng/L"}"#, "unit ng/L cannot be converted to umol/L for mma; value not used"),
        (#"{"code": "b12.total", "value": -180, "unit": "pg/mL"}"#, "implausible value -180 pg/mL (-180 ng/L): must be above 0 ng/L; value not used"),
        // The limit is in ng/L; the value sent in pmol/L is given in ng/L too (the message mixed the two units).
        (#"{"code": "b12.total", "value": 0, "unit": "pmol/L"}"#, "implausible value 0 pmol/L (0 ng/L): must be above 0 ng/L; value not used"),
        // A unit that converts, a value that overflows when converted (it was "cannot be converted").
        (#"{"code": "b12.total", "value": 1.7e308, "unit": "pmol/L"}"#, "value 1.7e+308 pmol/L is out of range once converted to ng/L; value not used"),
        (#"{"code": "b12.total", "value": 0, "unit": "ng/L"}"#, "implausible value 0 ng/L: must be above 0 ng/L; value not used"),
        (#"{"code": "b12.total", "value": 25000, "unit": "ng/L"}"#, "implausible value 25000 ng/L: above the plausible maximum of 20000 ng/L; value not used"),
        (#"{"code": "hb", "value": 1.1, "unit": "g/dL"}"#, "implausible value 1.1 g/dL (11 g/L): below the plausible minimum of 20 g/L; value not used"),
        (#"{"code": "mcv", "value": 160, "unit": "fL"}"#, "implausible value 160 fL: above the plausible maximum of 150 fL; value not used"),
        (#"{"code": "mma", "value": 101, "unit": "umol/L"}"#, "implausible value 101 umol/L: above the plausible maximum of 100 umol/L; value not used"),
        (#"{"code": "b12.active", "value": 1001, "unit": "pmol/L"}"#, "implausible value 1001 pmol/L: above the plausible maximum of 1000 pmol/L; value not used"),
        (#"{"code": {"system": "loinc", "code": "16695-9"}, "value": 300, "unit": "ng/L"}"#, "code loinc:16695-9 is not used: B12 in whole blood; Cobalt's thresholds are for serum/plasma total B12 (2132-9, 14685-2)"),
        (#"{"code": {"system": "loinc", "code": "99999-9"}, "value": 1, "unit": "g/L"}"#, "unknown code loinc:99999-9"),
        (#"{"code": "if-antibody", "value": "weakly"}"#, "'weakly' is not one of positive, negative"),
        // A number sent as a string is read as a decimal number only: Double(String) read hexadecimal floats and
        // stopped at a NUL, so these became 150, 0.25 and 1 pmol/L (the last a deficiency alert).
        (#"{"code": "b12.total", "value": "0x96", "unit": "pmol/L"}"#, "'0x96' is not a number; b12.total is measured in ng/L"),
        (#"{"code": "b12.total", "value": "0x1p-2", "unit": "pmol/L"}"#, "'0x1p-2' is not a number; b12.total is measured in ng/L"),
        (#"{"code": "b12.total", "value": "1\u0000200", "unit": "pmol/L"}"#, "'1\u{0}200' is not a number; b12.total is measured in ng/L"),
        (#"{"code": "paraesthesia", "value": 1, "unit": "g/L"}"#, "'paraesthesia' is a symptom, not expected here"),
    ])
    func unusableValuesBecomeFindingsAndAreNotStored(_ observation: String, _ reason: String) throws {
        let n = try normalise("[\(observation)]")
        #expect(n.observations.isEmpty)
        #expect(n.findings.map(\.reason) == [reason])
        #expect(n.findings.first?.path == "observations[0]")
    }

    @Test func medicationDosesBecomeDailyDoses() throws {
        let n = try normalise("[]", medications: """
            [{"code": "folic-acid", "dose": 5, "unit": "mg", "per": "day"},
             {"code": "folic-acid", "dose": 400, "unit": "ug", "per": "day"},
             {"code": "folic-acid", "dose": 35, "unit": "mg", "per": "week"},
             {"code": "folic-acid", "dose": 5, "unit": "mg"},
             {"code": "folic-acid", "dose": 20, "unit": "mg", "per": "day"}]
            """)
        #expect(n.medications.map(\.record.dailyDose) == [5, 0.4, 5, nil, 20])
        #expect(n.findings.map(\.reason) == [
            "dose period ('per') missing; daily dose not used",
            "daily dose 20 mg/d is above 15 mg/d: likely a unit error; please check",
        ])
        #expect(n.findings.map(\.severity) == [.rejected, .flagged])
    }

    /// An administration's dose that cannot be read as a mass is a finding, as a medication's is: it used to be
    /// dropped without a word.
    @Test func administrationDosesThatCannotBeReadAreFindings() throws {
        let event = try Support.event("""
            {"id": "e1", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z", "administrations": [
             {"code": "hydroxocobalamin", "dose": 1, "unit": "mg", "route": "IM"},
             {"code": "hydroxocobalamin", "dose": 1, "unit": "pmol/L", "route": "IM"},
             {"code": "hydroxocobalamin", "dose": 1, "unit": "mgs", "route": "IM"},
             {"code": "hydroxocobalamin", "dose": 1, "route": "IM"},
             {"code": "hydroxocobalamin", "route": "IM"}]}
            """)
        let n = NormalisedEvent(event, vocabulary: Support.bundled.vocabulary)
        #expect(n.administrations.map(\.record.dose) == [1, nil, nil, nil, nil])
        #expect(n.findings.map(\.reason) == [
            "dose 1 pmol/L is not a mass; dose not used", "unknown dose unit 'mgs'", "dose unit missing; dose not used",
        ])
        #expect(n.findings.map(\.path) == ["administrations[1]", "administrations[2]", "administrations[3]"])
    }
}
