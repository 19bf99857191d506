package import Foundation

/// Validates event JSON (INTERFACES.md §1) into a ``PatientEvent``, collecting every error with its JSON path.
///
/// Shape errors (missing or mistyped required fields, bad times, unknown status values) reject the event whole.
/// Unknown fields are kept as warnings. Codes, units and plausibility are the normaliser's business: a lab value
/// with a bad unit is a data-quality finding for that fact, not a reason to refuse the whole event.
package enum EventDecoder {
    package static let schema = "cobalt.event.v1"

    /// Why a clinic id cannot be used, or nil. The id is part of the alert topic `clinic/<id>/…`, and subscriptions
    /// match topics by prefix: with a `/` in it, one clinic's subscribers (`clinic/north/`) would receive another
    /// clinic's alerts (`clinic/north/x/alert`). (Control characters are refused in every identifier.)
    package static func clinicProblem(_ clinic: String) -> String? {
        if clinic.utf8.contains(UInt8(ascii: "/")) { return "must not contain '/': the clinic id is part of the alert topic clinic/<id>/…" }
        return nil
    }
    /// Why an identifier (`id`, `patient`, `clinic`) cannot be used, or nil: it must be in Unicode normalisation
    /// form C. Swift compares strings by canonical equivalence, SQLite and ZeroMQ topics by bytes, so "café"
    /// written with a precomposed é and with e and a combining accent would be one clinic (or patient) in memory
    /// and two in the journal, the alert log and the topics: one sequence counter for two streams, one timeline
    /// for two histories. Between NFC texts the two comparisons agree. ASCII is always NFC.
    ///
    /// Nor may it hold control characters (U+0000–U+001F, U+007F–U+009F): they would end up in topics and logs, and
    /// a NUL cuts the text short wherever it is handed on as a C string — an id with one was stored whole but
    /// looked up cut, so each resend failed its whole group commit (a 503 for every sender in it).
    package static func identifierProblem(_ text: String) -> String? {
        // Printable ASCII (the usual id, one pass over its bytes) has no control character and is NFC; anything
        // else is asked of Unicode.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return nil }
        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "must not contain control characters"
        }
        guard nfc(text).utf8.elementsEqual(text.utf8) else {
            return "must be in Unicode normalisation form C (precomposed characters, as most systems write them): "
                + "another spelling of the same text would name the same thing in memory but another one in the journal"
        }
        return nil
    }

    /// `text` in Unicode normalisation form C; ASCII (the usual identifier) is returned as it is, without a pass
    /// through Foundation. Where an existing clinic is *named* (a replay request, `cobalt subscribe --clinic`), its
    /// id is read as this, so that any spelling finds the stream.
    package static func nfc(_ text: String) -> String {
        text.utf8.allSatisfy({ $0 < 0x80 }) ? text : text.precomposedStringWithCanonicalMapping
    }

    package static let allowedPregnancyStatus: Set<String> = ["pregnant", "postpartum", "not-pregnant"]
    package static let allowedDiets: Set<String> = ["vegan", "vegetarian", "omnivore"]
    /// INTERFACES §1. A preference changes recommendations (declining injections makes the route oral), so one
    /// Cobalt does not know is refused like an unknown diet, never dropped: `declines-injection` (a typo) used to
    /// be accepted without a word, and the patient was recommended injections.
    package static let allowedPreferences: Set<String> = ["declines-injections"]
    /// A medication's dose periods (`per`).
    static let dosePeriods = ["day", "week", "month"]

    /// The values an item's `status` may take, and the one it has when it gives none.
    struct Statuses: Sendable {
        let allowed: [String]
        let absent: String
    }
    static let medicationStatuses = Statuses(allowed: ["active", "stopped", "completed", "on-hold"], absent: "active")
    static let conditionStatuses = Statuses(allowed: ["active", "resolved"], absent: "active")
    static let symptomStatuses = Statuses(allowed: ["present", "absent"], absent: "present")

    /// The number an observation's `value` holds when it is sent as a string ("160", " 12.5 ", "−3"), or nil when the
    /// text is not a decimal number. `Double(String)` alone is not that check: it reads C99 hexadecimal floats
    /// ("0x96" is 150, "0x1p-2" is 0.25) and stops at a NUL ("1\u{0}200" is 1), so text no laboratory means as
    /// that number was used as one, without a word. Only ASCII digits, signs, a decimal point and an exponent are
    /// read; anything else stays text (and a numeric fact reports it as not a number).
    package static func number(inText text: String) -> Double? {
        let trimmed = text.trimmingWhitespace().replacingAll("−", with: "-")
        guard !trimmed.isEmpty, trimmed.utf8.allSatisfy({ byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
        }) else { return nil }
        guard let number = Double(trimmed), number.isFinite else { return nil }
        return number
    }

    /// Most characters in an event's `id`, `patient` and `clinic`.
    static let maximumIDLength = 128

    /// Most UTF-8 bytes in an identifier. A character can be any number of scalars (a letter with a pile of
    /// combining marks), so 128 characters alone bound nothing: a clinic id of 100 KB in 128 characters made a
    /// subscription larger than the alerts socket takes (4 KiB), and libzmq dropped the subscriber's connection.
    static let maximumIDBytes = 512

    /// Whether an id has 1 to ``maximumIDLength`` characters in at most ``maximumIDBytes`` bytes. Characters never
    /// outnumber UTF-8 bytes: counting characters (a pass with grapheme breaking) is needed only for a long text.
    package static func isIDLength(_ text: String) -> Bool {
        let bytes = text.utf8.count
        return bytes > 0 && bytes <= maximumIDBytes && (bytes <= maximumIDLength || text.count <= maximumIDLength)
    }

    /// Why an id's length cannot be used (``isIDLength(_:)``), or nil.
    package static func lengthProblem(_ text: String) -> String? {
        guard !isIDLength(text) else { return nil }
        let bytes = text.utf8.count
        return bytes > maximumIDBytes && text.count <= maximumIDLength
            ? "must be at most \(maximumIDBytes) bytes of UTF-8, found \(bytes) (in \(text.count) characters)"
            : "must be 1 to \(maximumIDLength) characters, found \(text.count)"
    }

    /// Decodes one event from JSON bytes.
    package static func decode(_ data: Data) throws(EventDecodingError) -> PatientEvent {
        if let event = decodeUsual(data) { return event }
        return try decode(JSONValue.parse(data))
    }

    /// Decodes an event read back from the journal: it passed ingest's checks when it was received, so it is not
    /// refused for a check added since — identifiers outside NFC (refused from session 18) or with control
    /// characters, preferences Cobalt does not know (session 19) — were accepted before, and an acknowledged event
    /// must still be evaluated and stay in its patient's history, as it was.
    package static func decodeJournaled(_ data: Data) throws(EventDecodingError) -> PatientEvent {
        if let event = decodeUsual(data) { return event }
        return try decode(JSONValue.parse(data), journaled: true)
    }

    /// The usual event — valid, with only known fields, its strings without escapes — decoded in one pass over its
    /// bytes (``FastEventReader``); nil for any other, which ``decode(_:)-(JSONValue)`` then decides about,
    /// with every error and warning.
    package static func decodeUsual(_ bytes: some ContiguousBytes) -> PatientEvent? {
        bytes.withUnsafeBytes { FastEventReader.event($0.bindMemory(to: UInt8.self)) }
    }

    /// Decodes one event from an already parsed JSON value; `journaled: true` only for the journal's own rows
    /// (``decodeJournaled(_:)``).
    package static func decode(_ json: JSONValue, journaled: Bool = false) throws(EventDecodingError) -> PatientEvent {
        var reader = Reader(journaled: journaled)
        let event = reader.event(json)
        guard reader.errors.isEmpty, let event else {
            throw EventDecodingError(errors: reader.errors)
        }
        return event
    }

    /// Decodes a timeline file: a JSON array of events, or JSON Lines (one event per line).
    package static func decodeTimeline(_ data: Data) throws(EventDecodingError) -> [PatientEvent] {
        var values: [(String, JSONValue)] = []
        switch EventFile.read(data) {
        case .array(let bytes):
            guard case .array(let items) = try JSONValue.parse(bytes) else {
                throw EventDecodingError(errors: [FieldError(path: "$", message: "expected an array of events")])
            }
            values = items.enumerated().map { ("[\($0.offset)]", $0.element) }
        case .lines(let lines):
            for line in lines {
                do {
                    values.append(("line \(line.number)", try JSONValue.parse(line.bytes)))
                } catch {
                    throw EventDecodingError(errors: error.errors.map { FieldError(path: "line \(line.number)", message: $0.message) })
                }
            }
        }
        var events: [PatientEvent] = []
        var errors: [FieldError] = []
        for (where_, value) in values {
            do {
                events.append(try decode(value))
            } catch {
                errors += error.errors.map { FieldError(path: "\(where_).\($0.path)", message: $0.message) }
            }
        }
        guard errors.isEmpty else { throw EventDecodingError(errors: errors) }
        return events
    }

    private struct Reader {
        var errors: [FieldError] = []
        var warnings: [FieldError] = []
        /// Whether this is a journaled event read back: the checks added after events were first acknowledged do not
        /// apply (``EventDecoder/decodeJournaled(_:)``).
        var journaled = false

        mutating func fail(_ path: String, _ message: String) {
            errors.append(FieldError(path: path, message: message))
        }

        static let known: Set<String> = [
            "schema", "id", "patient", "clinic", "time", "observations", "medications", "administrations",
            "conditions", "symptoms", "reactions", "pregnancy", "diet", "preferences",
        ]

        /// Members of each kind of object (INTERFACES §1); any other is ignored with a warning naming its path, at
        /// every level (only the event's own members used to be checked: `"twins": true` in `pregnancy` went
        /// unremarked). A coded concept may carry its `display` text, as FHIR codings do.
        static let knownIn: [String: Set<String>] = [
            "observations": ["code", "value", "unit", "time"],
            "medications": ["code", "dose", "unit", "per", "status", "start", "end", "route", "product"],
            "administrations": ["code", "dose", "unit", "route", "time"],
            "conditions": ["code", "status", "time", "onset"],
            "symptoms": ["code", "status", "onset", "time"],
            "reactions": ["code", "after", "time"],
            "pregnancy": ["status", "gestation_weeks", "delivery_date", "breastfeeding", "fetuses"],
            "code": ["system", "code", "display"],
        ]

        mutating func warnUnknown(_ object: JSONObject, _ known: Set<String>, _ path: String) {
            for (key, _) in object where !known.contains(key) {  // members are in key order already
                warnings.append(FieldError(path: path.isEmpty ? key : "\(path).\(key)", message: "unknown field ignored"))
            }
        }

        mutating func event(_ json: JSONValue) -> PatientEvent? {
            guard case .object(let root) = json else {
                fail("$", "an event must be a JSON object, not \(json.typeName)")
                return nil
            }
            warnUnknown(root, Self.known, "")
            if let schema = root["schema"] {
                if schema.stringValue != EventDecoder.schema {
                    fail("schema", "expected \"\(EventDecoder.schema)\", found \(schema.canonicalText)")
                }
            }
            let id = requiredID(root, "id")
            let patient = requiredID(root, "patient")
            var clinic = requiredID(root, "clinic")
            if let name = clinic, let problem = EventDecoder.clinicProblem(name) {
                fail("clinic", problem)
                clinic = nil
            }
            let time = requiredTime(root, "time")
            var event = PatientEvent(id: id ?? "", patient: patient ?? "", clinic: clinic ?? "", time: time ?? 0)
            event.observations = list(root, "observations") { r, o, p in r.observation(o, p) }
            event.medications = list(root, "medications") { r, o, p in r.medication(o, p) }
            event.administrations = list(root, "administrations") { r, o, p in r.administration(o, p) }
            event.conditions = list(root, "conditions") { r, o, p in r.condition(o, p) }
            event.symptoms = list(root, "symptoms") { r, o, p in r.symptom(o, p) }
            event.reactions = list(root, "reactions") { r, o, p in r.reaction(o, p) }
            if let pregnancy = root["pregnancy"] {
                event.pregnancy = self.pregnancy(pregnancy)
            }
            if let diet = root["diet"] {
                if let text = diet.stringValue, EventDecoder.allowedDiets.contains(text) {
                    event.diet = text
                } else {
                    fail("diet", "expected one of vegan, vegetarian, omnivore, found \(diet.canonicalText)")
                }
            }
            if let preferences = root["preferences"] {
                if case .array(let items) = preferences {
                    var values: [String] = []
                    for (i, item) in items.enumerated() {
                        if let text = item.stringValue, EventDecoder.allowedPreferences.contains(text) || (journaled && !text.isEmpty) {
                            values.append(text)
                        } else {
                            let known = EventDecoder.allowedPreferences.sorted().joined(separator: ", ")
                            fail("preferences[\(i)]", "expected one of \(known), found \(item.canonicalText)")
                        }
                    }
                    event.preferences = values
                } else {
                    fail("preferences", "expected an array of strings, found \(preferences.typeName)")
                }
            }
            event.warnings = warnings
            return event
        }

        mutating func requiredID(_ object: JSONObject, _ key: String) -> String? {
            guard let value = object[key] else {
                fail(key, "required field is missing")
                return nil
            }
            guard let text = value.stringValue else {
                fail(key, "expected a string, found \(value.typeName)")
                return nil
            }
            if let problem = EventDecoder.lengthProblem(text) {
                fail(key, problem)
                return nil
            }
            if !journaled, let problem = EventDecoder.identifierProblem(text) {
                fail(key, problem)
                return nil
            }
            return text
        }

        mutating func requiredTime(_ object: JSONObject, _ key: String) -> Double? {
            guard let value = object[key] else {
                fail(key, "required field is missing")
                return nil
            }
            guard value != .null else {
                // Not "no time": read as optional, `null` used to leave the event at 1970-01-01.
                fail(key, "expected an RFC 3339 time string, found null")
                return nil
            }
            return optionalTime(object, key, key)
        }

        mutating func optionalTime(_ object: JSONObject, _ key: String, _ path: @autoclosure () -> String) -> Double? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else {
                fail(path(), "expected an RFC 3339 time string, found \(value.typeName)")
                return nil
            }
            guard let time = Timestamp.parse(text) else {
                fail(path(), "not an RFC 3339 time or date: \(text.jsonQuoted)")
                return nil
            }
            return time
        }

        mutating func optionalString(_ object: JSONObject, _ key: String, _ path: @autoclosure () -> String) -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else {
                fail(path(), "expected a string, found \(value.typeName)")
                return nil
            }
            return text
        }

        mutating func optionalNumber(_ object: JSONObject, _ key: String, _ path: @autoclosure () -> String) -> Double? {
            guard let value = object[key], value != .null else { return nil }
            guard case .number(let number) = value, number.isFinite else {
                fail(path(), "expected a number, found \(value.typeName)")
                return nil
            }
            return number
        }

        mutating func status(_ object: JSONObject, _ path: String, _ statuses: Statuses) -> String {
            guard let text = optionalString(object, "status", "\(path).status") else { return statuses.absent }
            guard statuses.allowed.contains(text) else {
                fail("\(path).status", "expected one of \(statuses.allowed.joined(separator: ", ")), found \(text.jsonQuoted)")
                return statuses.absent
            }
            return text
        }

        mutating func code(_ object: JSONObject, _ path: String) -> PatientEvent.Code? {
            guard let value = object["code"] else {
                fail("\(path).code", "required field is missing")
                return nil
            }
            switch value {
            case .string(let text) where !text.isEmpty:
                return PatientEvent.Code(system: nil, code: text)
            case .object(let coded):
                warnUnknown(coded, Self.knownIn["code"]!, "\(path).code")
                let system = optionalString(coded, "system", "\(path).code.system")
                let code = optionalString(coded, "code", "\(path).code.code")
                guard let system, !system.isEmpty, let code, !code.isEmpty else {
                    fail("\(path).code", "a coded concept needs non-empty \"system\" and \"code\"")
                    return nil
                }
                return PatientEvent.Code(system: system.lowercased(), code: code)
            default:
                fail("\(path).code", "expected a vocabulary name or {\"system\", \"code\"}, found \(value.typeName)")
                return nil
            }
        }

        mutating func list<T>(
            _ root: JSONObject, _ key: String,
            _ element: (inout Reader, JSONObject, String) -> T?
        ) -> [T] {
            guard let value = root[key], value != .null else { return [] }
            guard case .array(let items) = value else {
                fail(key, "expected an array, found \(value.typeName)")
                return []
            }
            var result: [T] = []
            result.reserveCapacity(items.count)  // one allocation, not one per doubling
            for (i, item) in items.enumerated() {
                let path = "\(key)[\(i)]"
                guard case .object(let object) = item else {
                    fail(path, "expected an object, found \(item.typeName)")
                    continue
                }
                if let known = Self.knownIn[key] { warnUnknown(object, known, path) }
                if let decoded = element(&self, object, path) { result.append(decoded) }
            }
            return result
        }

        mutating func observation(_ o: JSONObject, _ path: String) -> PatientEvent.Observation? {
            let code = self.code(o, path)
            let unit = optionalString(o, "unit", "\(path).unit")
            let time = optionalTime(o, "time", "\(path).time")
            var value: PatientEvent.ObservedValue?
            switch o["value"] {
            case .number(let n)?: value = .number(n)
            case .string(let s)? where !s.isEmpty:
                // A number sent as a string ("160") is still a number; its unit is checked like any other.
                if let n = EventDecoder.number(inText: s) { value = .number(n) } else { value = .text(s) }
            case nil: fail("\(path).value", "required field is missing")
            // Not "expected a number or a string, found string".
            case .string?: fail("\(path).value", "must not be empty")
            case let other?: fail("\(path).value", "expected a number or a string, found \(other.typeName)")
            }
            guard let code, let value else { return nil }
            return PatientEvent.Observation(code: code, value: value, unit: unit, time: time, path: path)
        }

        mutating func medication(_ o: JSONObject, _ path: String) -> PatientEvent.Medication? {
            let code = self.code(o, path)
            let dose = optionalNumber(o, "dose", "\(path).dose")
            let unit = optionalString(o, "unit", "\(path).unit")
            let per = optionalString(o, "per", "\(path).per")
            if let per, !EventDecoder.dosePeriods.contains(per) {
                fail("\(path).per", "expected one of day, week, month, found \(per.jsonQuoted)")
            }
            let status = self.status(o, path, EventDecoder.medicationStatuses)
            let start = optionalTime(o, "start", "\(path).start")
            let end = optionalTime(o, "end", "\(path).end")
            let route = optionalString(o, "route", "\(path).route")
            let product = optionalString(o, "product", "\(path).product")
            guard let code else { return nil }
            return PatientEvent.Medication(
                code: code, dose: dose, unit: unit, per: per, status: status, start: start, end: end, route: route,
                product: product, path: path)
        }

        mutating func administration(_ o: JSONObject, _ path: String) -> PatientEvent.Administration? {
            let code = self.code(o, path)
            let dose = optionalNumber(o, "dose", "\(path).dose")
            let unit = optionalString(o, "unit", "\(path).unit")
            let route = optionalString(o, "route", "\(path).route")
            let time = optionalTime(o, "time", "\(path).time")
            guard let code else { return nil }
            return PatientEvent.Administration(code: code, dose: dose, unit: unit, route: route, time: time, path: path)
        }

        mutating func condition(_ o: JSONObject, _ path: String) -> PatientEvent.Condition? {
            let code = self.code(o, path)
            let status = self.status(o, path, EventDecoder.conditionStatuses)
            // Both read (and checked) before either is chosen: with `??`, an `onset` that was no time at all went
            // unremarked whenever `time` was valid (the fast reader refused it, then the decoder accepted it).
            let time = optionalTime(o, "time", "\(path).time")
            // A journaled event with a valid `time` was acknowledged without its `onset` being read: not refused
            // for it now (it would drop out of its patient's history, observations and all, at the next rebuild).
            let onset = journaled && time != nil ? nil : optionalTime(o, "onset", "\(path).onset")
            guard let code else { return nil }
            return PatientEvent.Condition(code: code, status: status, time: time ?? onset, path: path)
        }

        mutating func symptom(_ o: JSONObject, _ path: String) -> PatientEvent.Symptom? {
            let code = self.code(o, path)
            let status = self.status(o, path, EventDecoder.symptomStatuses)
            let onset = optionalTime(o, "onset", "\(path).onset")
            let time = optionalTime(o, "time", "\(path).time")
            guard let code else { return nil }
            return PatientEvent.Symptom(code: code, status: status, onset: onset, time: time, path: path)
        }

        mutating func reaction(_ o: JSONObject, _ path: String) -> PatientEvent.Reaction? {
            let code = self.code(o, path)
            let after = optionalString(o, "after", "\(path).after")
            let time = optionalTime(o, "time", "\(path).time")
            guard let code else { return nil }
            return PatientEvent.Reaction(code: code, after: after, time: time, path: path)
        }

        mutating func pregnancy(_ value: JSONValue) -> PatientEvent.Pregnancy? {
            guard case .object(let o) = value else {
                fail("pregnancy", "expected an object, found \(value.typeName)")
                return nil
            }
            warnUnknown(o, Self.knownIn["pregnancy"]!, "pregnancy")
            guard let status = optionalString(o, "status", "pregnancy.status") else {
                // One error per path: a status of the wrong type was reported as that, then as missing too.
                if o["status"] == nil || o["status"] == .null { fail("pregnancy.status", "required field is missing") }
                return nil
            }
            guard EventDecoder.allowedPregnancyStatus.contains(status) else {
                fail("pregnancy.status", "expected one of pregnant, postpartum, not-pregnant, found \(status.jsonQuoted)")
                return nil
            }
            let weeks = optionalNumber(o, "gestation_weeks", "pregnancy.gestation_weeks")
            if let weeks, !(0...45).contains(weeks) {
                fail("pregnancy.gestation_weeks", "must be between 0 and 45 weeks, found \(weeks.formatted)")
            }
            if status == "pregnant", weeks == nil {
                fail("pregnancy.gestation_weeks", "required when status is pregnant")
            }
            let delivery = optionalTime(o, "delivery_date", "pregnancy.delivery_date")
            if status == "postpartum", delivery == nil {
                fail("pregnancy.delivery_date", "required when status is postpartum")
            }
            var breastfeeding: Bool?
            if let value = o["breastfeeding"], value != .null {
                if case .bool(let b) = value { breastfeeding = b } else {
                    fail("pregnancy.breastfeeding", "expected a boolean, found \(value.typeName)")
                }
            }
            let fetuses = optionalNumber(o, "fetuses", "pregnancy.fetuses")
            if let fetuses, fetuses < 1 || fetuses > 8 || fetuses != fetuses.rounded() {
                fail("pregnancy.fetuses", "must be a whole number from 1 to 8, found \(fetuses.formatted)")
            }
            return PatientEvent.Pregnancy(
                status: status, gestationWeeks: weeks, deliveryDate: delivery, breastfeeding: breastfeeding,
                fetuses: fetuses.flatMap { Int(exactly: $0) })  // refused above unless 1–8; never a trap (1e19)
        }
    }
}
