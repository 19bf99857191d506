/// Decodes the usual event straight from its bytes, without building a ``JSONValue`` tree first.
///
/// Ingest decodes every event it receives. Through the tree, the parser allocated every object and array of the
/// event and the decoder then looked each member up by name, together about a tenth of the daemon's CPU under load
/// (docs/benchmarks.md, session 15). This reader takes a subset of what ``EventDecoder`` takes — member names it
/// knows for their place, each at most once; strings without escapes; values that pass every check the decoder
/// makes — and gives up (nil) on anything else, so that the tree and the decoder, the one source
/// of every error message and warning, decide about it. What it does accept, it decodes exactly as the decoder
/// does: `FastEventReaderTests` compares the two on valid events and on thousands of mutated ones.
struct FastEventReader {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    /// Whether the string ``string()`` read last was all ASCII (then its bytes need no UTF-8 validation).
    private var lastStringIsASCII = true
    /// The static tables, read once per event: each read of a `static let` checks that it was initialised.
    private let names = Name.byLength
    private let paths = FastEventReader.itemPaths

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// The event in `bytes`, or nil when anything in them is outside what this reader takes.
    static func event(_ bytes: UnsafeBufferPointer<UInt8>) -> PatientEvent? {
        var reader = FastEventReader(bytes)
        reader.skipSpace()
        guard let event = reader.event() else { return nil }
        reader.skipSpace()
        return reader.index == bytes.count ? event : nil
    }

    // MARK: Member names

    /// The member names of events (INTERFACES §1). A raw value is a bit in an object's set of names seen.
    private enum Name: UInt8, CaseIterable {
        case schema, id, patient, clinic, time, observations, medications, administrations, conditions, symptoms
        case reactions, pregnancy, diet, preferences, code, system, value, unit, dose, per, status, start, end, route
        case product, onset, after, gestationWeeks, deliveryDate, breastfeeding, fetuses

        var text: String {
            switch self {
            case .gestationWeeks: "gestation_weeks"
            case .deliveryDate: "delivery_date"
            default: "\(self)"
            }
        }

        /// The names by length (`byLength[n]` holds the names of `n` bytes), with their bytes.
        static let byLength: [[(bytes: [UInt8], name: Name)]] = {
            var table = [[(bytes: [UInt8], name: Name)]](repeating: [], count: 16)
            for name in allCases { table[name.text.utf8.count].append((Array(name.text.utf8), name)) }
            return table
        }()
    }

    private func name(_ text: UnsafeBufferPointer<UInt8>) -> Name? {
        guard text.count < names.count else { return nil }
        for candidate in names[text.count] {
            let matches = candidate.bytes.withUnsafeBufferPointer { known in
                var i = 0
                while i < known.count, known[i] == text[i] { i += 1 }
                return i == known.count
            }
            if matches { return candidate.name }
        }
        return nil
    }

    // MARK: The event

    private mutating func event() -> PatientEvent? {
        var id: String?, patient: String?, clinic: String?, time: Double?
        var observations: [PatientEvent.Observation] = [], medications: [PatientEvent.Medication] = []
        var administrations: [PatientEvent.Administration] = [], conditions: [PatientEvent.Condition] = []
        var symptoms: [PatientEvent.Symptom] = [], reactions: [PatientEvent.Reaction] = []
        var pregnancy: PatientEvent.Pregnancy?, diet: String?, preferences: [String]?
        let read = object { r, name in
            switch name {
            case .schema:
                guard let text = r.string() else { return false }
                return text.elementsEqual(EventDecoder.schema.utf8)
            // Anything out of the ordinary (an identifier not in NFC, a clinic id that cannot be a topic) goes to
            // the decoder, which says why.
            case .id:
                id = r.requiredText()
                return id.map { EventDecoder.identifierProblem($0) == nil } ?? false
            case .patient:
                patient = r.requiredText()
                return patient.map { EventDecoder.identifierProblem($0) == nil } ?? false
            case .clinic:
                clinic = r.requiredText()
                return clinic.map { EventDecoder.clinicProblem($0) == nil && EventDecoder.identifierProblem($0) == nil } ?? false
            case .time:
                time = r.time()
                return time != nil
            case .observations: return r.list(.observations, into: &observations) { r, path in r.observation(path) }
            case .medications: return r.list(.medications, into: &medications) { r, path in r.medication(path) }
            case .administrations:
                return r.list(.administrations, into: &administrations) { r, path in r.administration(path) }
            case .conditions: return r.list(.conditions, into: &conditions) { r, path in r.condition(path) }
            case .symptoms: return r.list(.symptoms, into: &symptoms) { r, path in r.symptom(path) }
            case .reactions: return r.list(.reactions, into: &reactions) { r, path in r.reaction(path) }
            case .pregnancy:
                pregnancy = r.pregnancy()
                return pregnancy != nil
            case .diet:
                diet = r.text()
                return diet.map(EventDecoder.allowedDiets.contains) ?? false
            case .preferences:
                var values: [String] = []
                guard r.array({ r, _ in
                    guard let text = r.text(), EventDecoder.allowedPreferences.contains(text) else { return false }
                    values.append(text)
                    return true
                }) else { return false }
                preferences = values
                return true
            default:
                return false  // an unknown field: the decoder warns about it
            }
        }
        guard read, let id, let patient, let clinic, let time else { return nil }
        var event = PatientEvent(id: id, patient: patient, clinic: clinic, time: time)
        event.observations = observations
        event.medications = medications
        event.administrations = administrations
        event.conditions = conditions
        event.symptoms = symptoms
        event.reactions = reactions
        event.pregnancy = pregnancy
        event.diet = diet
        event.preferences = preferences
        return event
    }

    /// A list of items: `null` is none, as for the decoder.
    private mutating func list<T>(
        _ name: Name, into items: inout [T], _ item: (inout FastEventReader, String) -> T?
    ) -> Bool {
        if literal("null") { return true }
        return array { r, i in
            guard let decoded = item(&r, r.path(name, i)) else { return false }
            items.append(decoded)
            return true
        }
    }

    /// `observations[3]`: each item's path, as the decoder writes it, made once for the first items of each list.
    private func path(_ name: Name, _ i: Int) -> String {
        let made = paths[Int(name.rawValue)]
        return i < made.count ? made[i] : "\(name.text)[\(i)]"
    }

    private static let itemPaths: [[String]] = Name.allCases.map { name in (0..<32).map { "\(name.text)[\($0)]" } }

    private mutating func observation(_ path: String) -> PatientEvent.Observation? {
        var code: PatientEvent.Code?, value: PatientEvent.ObservedValue?, unit: String?, time: Double?
        let read = object { r, name in
            switch name {
            case .code:
                code = r.code()
                return code != nil
            case .value:
                if let number = r.number() {
                    value = .number(number)
                    return true
                }
                guard let text = r.text(), !text.isEmpty else { return false }
                // As the decoder reads it: a number sent as a string is still a number.
                if let number = EventDecoder.number(inText: text) {
                    value = .number(number)
                } else {
                    value = .text(text)
                }
                return true
            case .unit: return r.optionalText(&unit)
            case .time: return r.optionalTime(&time)
            default: return false
            }
        }
        guard read, let code, let value else { return nil }
        return PatientEvent.Observation(code: code, value: value, unit: unit, time: time, path: path)
    }

    private mutating func medication(_ path: String) -> PatientEvent.Medication? {
        var code: PatientEvent.Code?, dose: Double?, unit: String?, per: String?, status: String?
        var start: Double?, end: Double?, route: String?, product: String?
        let read = object { r, name in
            switch name {
            case .code:
                code = r.code()
                return code != nil
            case .dose: return r.optionalNumber(&dose)
            case .unit: return r.optionalText(&unit)
            case .per: return r.optionalText(&per)
            case .status: return r.optionalText(&status)
            case .start: return r.optionalTime(&start)
            case .end: return r.optionalTime(&end)
            case .route: return r.optionalText(&route)
            case .product: return r.optionalText(&product)
            default: return false
            }
        }
        guard read, let code, per.map(EventDecoder.dosePeriods.contains) ?? true,
            let status = Self.status(status, EventDecoder.medicationStatuses)
        else { return nil }
        return PatientEvent.Medication(
            code: code, dose: dose, unit: unit, per: per, status: status, start: start, end: end, route: route,
            product: product, path: path)
    }

    private mutating func administration(_ path: String) -> PatientEvent.Administration? {
        var code: PatientEvent.Code?, dose: Double?, unit: String?, route: String?, time: Double?
        let read = object { r, name in
            switch name {
            case .code:
                code = r.code()
                return code != nil
            case .dose: return r.optionalNumber(&dose)
            case .unit: return r.optionalText(&unit)
            case .route: return r.optionalText(&route)
            case .time: return r.optionalTime(&time)
            default: return false
            }
        }
        guard read, let code else { return nil }
        return PatientEvent.Administration(code: code, dose: dose, unit: unit, route: route, time: time, path: path)
    }

    private mutating func condition(_ path: String) -> PatientEvent.Condition? {
        statusItem(EventDecoder.conditionStatuses).map {
            PatientEvent.Condition(code: $0.code, status: $0.status, time: $0.time ?? $0.onset, path: path)
        }
    }

    private mutating func symptom(_ path: String) -> PatientEvent.Symptom? {
        statusItem(EventDecoder.symptomStatuses).map {
            PatientEvent.Symptom(code: $0.code, status: $0.status, onset: $0.onset, time: $0.time, path: path)
        }
    }

    /// A condition's or a symptom's members: the same four, each kind with its own statuses.
    private mutating func statusItem(
        _ statuses: EventDecoder.Statuses
    ) -> (code: PatientEvent.Code, status: String, time: Double?, onset: Double?)? {
        var code: PatientEvent.Code?, status: String?, time: Double?, onset: Double?
        let read = object { r, name in
            switch name {
            case .code:
                code = r.code()
                return code != nil
            case .status: return r.optionalText(&status)
            case .time: return r.optionalTime(&time)
            case .onset: return r.optionalTime(&onset)
            default: return false
            }
        }
        guard read, let code, let status = Self.status(status, statuses) else { return nil }
        return (code, status, time, onset)
    }

    private mutating func reaction(_ path: String) -> PatientEvent.Reaction? {
        var code: PatientEvent.Code?, after: String?, time: Double?
        let read = object { r, name in
            switch name {
            case .code:
                code = r.code()
                return code != nil
            case .after: return r.optionalText(&after)
            case .time: return r.optionalTime(&time)
            default: return false
            }
        }
        guard read, let code else { return nil }
        return PatientEvent.Reaction(code: code, after: after, time: time, path: path)
    }

    private mutating func pregnancy() -> PatientEvent.Pregnancy? {
        var status: String?, weeks: Double?, delivery: Double?, breastfeeding: Bool?, fetuses: Double?
        let read = object { r, name in
            switch name {
            case .status: return r.optionalText(&status)
            case .gestationWeeks: return r.optionalNumber(&weeks)
            case .deliveryDate: return r.optionalTime(&delivery)
            case .breastfeeding:
                if r.literal("null") { return true }
                if r.literal("true") { breastfeeding = true } else if r.literal("false") { breastfeeding = false } else { return false }
                return true
            case .fetuses: return r.optionalNumber(&fetuses)
            default: return false
            }
        }
        guard read, let status, EventDecoder.allowedPregnancyStatus.contains(status),
            weeks.map({ (0...45).contains($0) }) ?? true, status != "pregnant" || weeks != nil,
            status != "postpartum" || delivery != nil,
            fetuses.map({ $0 >= 1 && $0 <= 8 && $0 == $0.rounded() }) ?? true
        else { return nil }
        return PatientEvent.Pregnancy(
            status: status, gestationWeeks: weeks, deliveryDate: delivery, breastfeeding: breastfeeding,
            fetuses: fetuses.flatMap { Int(exactly: $0) })
    }

    /// A vocabulary name, or a coded concept (`{"system", "code"}`, the system in lower case).
    private mutating func code() -> PatientEvent.Code? {
        if let text = text() { return text.isEmpty ? nil : PatientEvent.Code(system: nil, code: text) }
        var system: String?, code: String?
        let read = object { r, name in
            switch name {
            case .system: return r.optionalText(&system)
            case .code: return r.optionalText(&code)
            default: return false
            }
        }
        guard read, let system, !system.isEmpty, let code, !code.isEmpty else { return nil }
        return PatientEvent.Code(system: system.lowercased(), code: code)
    }

    private static func status(_ text: String?, _ statuses: EventDecoder.Statuses) -> String? {
        guard let text else { return statuses.absent }
        return statuses.allowed.contains(text) ? text : nil
    }

    // MARK: Values

    /// The members of an object, each name read and passed to `member`, which reads its value; false when a name
    /// is unknown or comes twice, when `member` gives up, or when the object is malformed.
    private mutating func object(_ member: (inout FastEventReader, Name) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        skipSpace()
        if take(UInt8(ascii: "}")) { return true }
        var seen: UInt64 = 0
        while true {
            skipSpace()
            guard let text = string(), let name = name(text) else { return false }
            let bit: UInt64 = 1 << name.rawValue
            guard seen & bit == 0 else { return false }  // a duplicate: the parser refuses the event
            seen |= bit
            skipSpace()
            guard take(UInt8(ascii: ":")) else { return false }
            skipSpace()
            guard member(&self, name) else { return false }
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "}"))
        }
    }

    /// The items of an array, each read by `item` (given its index).
    private mutating func array(_ item: (inout FastEventReader, Int) -> Bool) -> Bool {
        guard take(UInt8(ascii: "[")) else { return false }
        skipSpace()
        if take(UInt8(ascii: "]")) { return true }
        var count = 0
        while true {
            skipSpace()
            guard item(&self, count) else { return false }
            count += 1
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "]"))
        }
    }

    /// A string without escapes, as its bytes (not yet checked to be UTF-8: ``text()`` does that); nil (and nothing
    /// read) for any other value. Control characters below space are not JSON; the others are text, as for the
    /// parser (a clinic id refuses them, through the decoder's own check).
    private mutating func string() -> UnsafeBufferPointer<UInt8>? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        var end = index + 1
        var ascii = true
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") {
                let text = UnsafeBufferPointer(rebasing: bytes[(index + 1)..<end])
                index = end + 1
                lastStringIsASCII = ascii
                return text
            }
            guard byte >= 0x20, byte != UInt8(ascii: "\\") else { return nil }
            ascii = ascii && byte < 0x80
            end += 1
        }
        return nil
    }

    /// A string value as text; nil when its bytes are not UTF-8 (the parser refuses the event).
    private mutating func text() -> String? {
        guard let bytes = string() else { return nil }
        return lastStringIsASCII ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
    }

    /// A required id (`id`, `patient`, `clinic`), of a length the decoder takes.
    private mutating func requiredText() -> String? {
        text().flatMap { EventDecoder.isIDLength($0) ? $0 : nil }
    }

    private mutating func time() -> Double? {
        string().flatMap(Timestamp.parse(utf8:))
    }

    private mutating func number() -> Double? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
        else { return nil }
        return try? JSONParser.number(bytes, at: &index)
    }

    /// An optional member: `null` leaves it nil, as for the decoder.
    private mutating func optionalText(_ value: inout String?) -> Bool {
        if literal("null") { return true }
        value = text()
        return value != nil
    }

    private mutating func optionalTime(_ value: inout Double?) -> Bool {
        if literal("null") { return true }
        value = time()
        return value != nil
    }

    private mutating func optionalNumber(_ value: inout Double?) -> Bool {
        if literal("null") { return true }
        value = number()
        return value != nil
    }

    /// Reads `word` (`null`, `true`, `false`) if it is next.
    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        for i in 0..<count where bytes[index + i] != word.utf8Start[i] { return false }
        index += count
        return true
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }
}
