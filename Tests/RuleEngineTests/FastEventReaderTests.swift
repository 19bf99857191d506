import Foundation
import Testing
@testable import RuleEngine

/// ``FastEventReader`` must decode what it accepts exactly as ``EventDecoder`` does through the JSON tree, and leave
/// everything else to it: each test compares the two (the decoder called on the parsed tree, never through the
/// reader).
@Suite struct FastEventReaderTests {
    /// The decoder's answer, through the tree only.
    static func decoded(_ text: String) -> PatientEvent? { decoded(Array(text.utf8)) }

    static func decoded(_ bytes: [UInt8]) -> PatientEvent? {
        try? EventDecoder.decode(JSONValue.parse(Data(bytes)))
    }

    static func fast(_ text: String) -> PatientEvent? { fast(Array(text.utf8)) }

    static func fast(_ bytes: [UInt8]) -> PatientEvent? {
        bytes.withUnsafeBufferPointer(FastEventReader.event)
    }

    @Test func theInterfaceExampleIsReadAsTheDecoderReadsIt() throws {
        let fast = try #require(Self.fast(EventDecoderTests.valid))
        #expect(fast == Self.decoded(EventDecoderTests.valid))
        #expect(fast.observations.count == 2 && fast.conditions.first?.code.system == "icd10")
    }

    @Test func everyGeneratedValidEventIsReadAndReadTheSame() throws {
        var random = SplitMix64(state: 20261122)
        for i in 0..<400 {
            let text = JSONText.validEvent(i, &random).text(pretty: i % 3 == 0)
            let expected = try #require(Self.decoded(text), "the generator wrote an invalid event: \(text)")
            let fast = Self.fast(text)
            #expect(fast == expected, "\(text)")
        }
    }

    /// Events with one value, member or byte changed: whatever the reader accepts, the decoder accepts and decodes
    /// to the same event. The counts show that both sides of the comparison were exercised.
    @Test func mutatedEventsAreReadTheSameOrLeftToTheDecoder() {
        var random = SplitMix64(state: 7)
        var acceptedByBoth = 0, leftToDecoder = 0, refusedByDecoder = 0, differing: [String] = []
        for i in 0..<600 {
            let event = JSONText.validEvent(i, &random)
            var texts = (0..<6).map { _ in Array(event.mutated(&random).text(pretty: Bool.random(using: &random)).utf8) }
            let plain = event.text(pretty: false)
            texts += (0..<6).map { _ in JSONText.mutateBytes(plain, &random) }  // not always UTF-8
            for text in texts {
                let expected = Self.decoded(text)
                if expected == nil { refusedByDecoder += 1 }
                guard let fast = Self.fast(text) else {
                    leftToDecoder += 1
                    continue
                }
                acceptedByBoth += 1
                if fast != expected { differing.append(String(decoding: text, as: UTF8.self)) }
            }
        }
        #expect(differing.isEmpty, "read differently from the decoder: \(differing.prefix(2))")
        #expect(acceptedByBoth > 1_000 && leftToDecoder > 1_000 && refusedByDecoder > 1_000,
                "\(acceptedByBoth) accepted, \(leftToDecoder) left to the decoder, \(refusedByDecoder) refused by it")
    }

    /// Every value of some events replaced, one at a time, by each of ``JSONText/replacements``: every check the
    /// decoder makes on a value is met with a value that fails it.
    @Test func everyValueReplacedByEveryWrongOneIsReadTheSameOrLeftToTheDecoder() {
        var random = SplitMix64(state: 11)
        var differing: [String] = []
        var accepted = 0
        for i in 0..<40 {
            let event = JSONText.validEvent(i, &random)
            for slot in 0..<event.slotCount {
                for replacement in JSONText.replacements {
                    let text = event.replacingValue(at: slot, with: replacement).text(pretty: false)
                    guard let fast = Self.fast(text) else { continue }
                    accepted += 1
                    if fast != Self.decoded(text) { differing.append(text) }
                }
            }
        }
        #expect(differing.isEmpty, "read differently from the decoder: \(differing.prefix(2))")
        #expect(accepted > 1_000)
    }

    /// What the reader leaves alone still reaches the decoder through ``EventDecoder/decode(_:)-(Data)``, with its
    /// warnings and errors.
    @Test(arguments: [
        (#""colour": "blue""#, "a field the reader does not know"),
        (#""diet": "vegan\u0020""#, "an escape"),
        (#""clinic": "x\#u{0085}y""#, "a clinic id with a control character"),
        (#""id": "again""#, "a duplicate key"),
        (#""time": null"#, "a null time"),
    ])
    func theRestIsTheDecodersToDecide(member: String, what: String) {
        let text = #"{"id": "e", "patient": "p", "clinic": "c", "time": "2026-11-20T09:30:00Z", \#(member)}"#
        #expect(Self.fast(text) == nil, "\(what)")
        let viaData = Result { try EventDecoder.decode(Data(text.utf8)) }
        let viaTree = Result { try EventDecoder.decode(JSONValue.parse(Data(text.utf8))) }
        switch (viaData, viaTree) {
        case (.success(let a), .success(let b)): #expect(a == b)
        case (.failure(let a as EventDecodingError), .failure(let b as EventDecodingError)): #expect(a.errors == b.errors)
        default: Issue.record("decode(Data) and the tree disagree on \(what)")
        }
    }
}

/// JSON written by hand, so that tests control member order, duplicates and spelling.
indirect enum JSONText: Sendable {
    case raw(String)
    case string(String)
    case array([JSONText])
    case object([(String, JSONText)])

    func text(pretty: Bool) -> String {
        let gap = pretty ? " " : ""
        switch self {
        case .raw(let text): return text
        case .string(let text): return Self.quoted(text)
        case .array(let items): return "[" + items.map { $0.text(pretty: pretty) }.joined(separator: "," + gap) + "]"
        case .object(let members):
            return "{" + gap + members.map { Self.quoted($0.0) + ":" + gap + $0.1.text(pretty: pretty) }.joined(separator: "," + (pretty ? "\n " : "")) + gap + "}"
        }
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static let times = ["2026-11-20T09:30:00Z", "2026-11-20T10:30:00+01:00", "2026-03-01", "2026-11-20T09:30:00.250Z", "2026-11-19t08:00:00z"]
    static let numbers = ["150", "11.2", "-0", "1e2", "2.5E-1", "0.000001", "123456789012345678", "18", "-3.75", "0"]

    static func pick<T>(_ items: [T], _ random: inout SplitMix64) -> T { items.randomElement(using: &random)! }

    static func code(_ names: [String], _ random: inout SplitMix64) -> JSONText {
        Bool.random(using: &random)
            ? .string(pick(names, &random))
            : .object([("system", .string(pick(["LOINC", "loinc", "SnOmEd"], &random))), ("code", .string(pick(["718-7", "14685-3"], &random)))])
    }

    /// Adds `key` with a value from `make`, or `null`, or nothing.
    static func maybe(_ members: inout [(String, JSONText)], _ key: String, _ random: inout SplitMix64, _ make: (inout SplitMix64) -> JSONText) {
        switch random.next() % 3 {
        case 0: members.append((key, make(&random)))
        case 1: members.append((key, .raw("null")))
        default: break
        }
    }

    /// A valid event with a random selection of every kind of content.
    static func validEvent(_ i: Int, _ random: inout SplitMix64) -> JSONText {
        var members: [(String, JSONText)] = [
            ("id", .string("ev-\(i)")), ("patient", .string("p-\(i % 7)")),
            ("clinic", .string(pick(["north", "south-antenatal", "c.1 east", "clínica-día"], &random))), ("time", .string(pick(times, &random))),
        ]
        if Bool.random(using: &random) { members.append(("schema", .string("cobalt.event.v1"))) }
        func list(_ key: String, _ count: Int, _ item: (inout SplitMix64) -> JSONText) {
            guard count > 0 else {
                if Bool.random(using: &random) { members.append((key, .raw(Bool.random(using: &random) ? "null" : "[]"))) }
                return
            }
            members.append((key, .array((0..<count).map { _ in item(&random) })))
        }
        list("observations", Int(random.next() % 5)) { random in
            var o: [(String, JSONText)] = [("code", code(["b12.total", "hb", "mcv", "ferritin"], &random))]
            o.append(("value", Bool.random(using: &random) ? .raw(pick(numbers, &random)) : .string(pick(["160", " 12.5 ", "positive", "-3", "1e400"], &random))))
            maybe(&o, "unit", &random) { r in .string(pick(["pmol/L", "g/dL", "ng/L", "mg", "µmol/L", "μmol/L"], &r)) }
            maybe(&o, "time", &random) { r in .string(pick(times, &r)) }
            o.shuffle(using: &random)
            return .object(o)
        }
        list("medications", Int(random.next() % 3)) { random in
            var o: [(String, JSONText)] = [("code", code(["folic-acid", "cyanocobalamin"], &random))]
            maybe(&o, "dose", &random) { r in .raw(pick(numbers, &r)) }
            maybe(&o, "unit", &random) { r in .string(pick(["mg", "ug"], &r)) }
            maybe(&o, "per", &random) { r in .string(pick(["day", "week", "month"], &r)) }
            maybe(&o, "status", &random) { r in .string(pick(["active", "stopped", "completed", "on-hold"], &r)) }
            maybe(&o, "start", &random) { r in .string(pick(times, &r)) }
            maybe(&o, "end", &random) { r in .string(pick(times, &r)) }
            maybe(&o, "route", &random) { r in .string(pick(["oral", "IM"], &r)) }
            maybe(&o, "product", &random) { r in .string("Product 5 mg") }
            o.shuffle(using: &random)
            return .object(o)
        }
        list("administrations", Int(random.next() % 2)) { random in
            var o: [(String, JSONText)] = [("code", code(["hydroxocobalamin"], &random))]
            maybe(&o, "dose", &random) { r in .raw(pick(numbers, &r)) }
            maybe(&o, "unit", &random) { r in .string("mg") }
            maybe(&o, "route", &random) { r in .string("IM") }
            maybe(&o, "time", &random) { r in .string(pick(times, &r)) }
            return .object(o)
        }
        list("conditions", Int(random.next() % 2)) { random in
            var o: [(String, JSONText)] = [("code", code(["gastrectomy", "pernicious-anaemia"], &random))]
            maybe(&o, "status", &random) { r in .string(pick(["active", "resolved"], &r)) }
            maybe(&o, "time", &random) { r in .string(pick(times, &r)) }
            maybe(&o, "onset", &random) { r in .string(pick(times, &r)) }
            return .object(o)
        }
        list("symptoms", Int(random.next() % 2)) { random in
            var o: [(String, JSONText)] = [("code", code(["paraesthesia"], &random))]
            maybe(&o, "status", &random) { r in .string(pick(["present", "absent"], &r)) }
            maybe(&o, "onset", &random) { r in .string(pick(times, &r)) }
            maybe(&o, "time", &random) { r in .string(pick(times, &r)) }
            return .object(o)
        }
        list("reactions", Int(random.next() % 2)) { random in
            var o: [(String, JSONText)] = [("code", code(["urticaria"], &random))]
            maybe(&o, "after", &random) { r in .string("b12-injection") }
            maybe(&o, "time", &random) { r in .string(pick(times, &r)) }
            return .object(o)
        }
        if Bool.random(using: &random) {
            var p: [(String, JSONText)]
            switch random.next() % 3 {
            case 0: p = [("status", .string("pregnant")), ("gestation_weeks", .raw(pick(["0", "16.3", "45", "39"], &random)))]
            case 1: p = [("status", .string("postpartum")), ("delivery_date", .string(pick(times, &random)))]
            default: p = [("status", .string("not-pregnant"))]
            }
            maybe(&p, "breastfeeding", &random) { r in .raw(Bool.random(using: &r) ? "true" : "false") }
            maybe(&p, "fetuses", &random) { r in .raw(pick(["1", "2", "8"], &r)) }
            p.shuffle(using: &random)
            members.append(("pregnancy", .object(p)))
        }
        if Bool.random(using: &random) { members.append(("diet", .string(pick(["vegan", "vegetarian", "omnivore"], &random)))) }
        if Bool.random(using: &random) { members.append(("preferences", .array([.string("declines-injections"), .string("declines-injections")]))) }
        members.shuffle(using: &random)
        return .object(members)
    }

    /// Values that are wrong somewhere, or right somewhere else.
    static let replacements: [JSONText] = [
        .raw("null"), .string(""), .raw("0"), .raw("-1"), .raw("46"), .raw("1.5"), .raw("9"), .raw("true"), .raw("{}"),
        .raw("[]"), .string("x/y"), .string("2026-13-01"), .string("2026-11-20T09:30:00"), .string("Pregnant"),
        .string("fortnight"), .string(String(repeating: "a", count: 129)), .string("é"), .string("a\nb"),
        .string("\u{7F}"), .string("x\u{85}y"), .string(String(repeating: "é", count: 128)), .string(String(repeating: "é", count: 129)),
        .string("−3"), .string("µ"), .string("pregnant"), .string("day"), .string("2026-11-20"), .raw("\"\\u0041\""),
        .raw("1e999"), .raw("01"), .string("active"), .object([("code", .string("hb"))]), .string("cobalt.event.v2"),
    ]

    var slotCount: Int {
        var count = 0
        countSlots(&count)
        return count
    }

    private func countSlots(_ count: inout Int) {
        switch self {
        case .raw, .string: break
        case .array(let items): for item in items { count += 1; item.countSlots(&count) }
        case .object(let members): for (_, value) in members { count += 1; value.countSlots(&count) }
        }
    }

    /// The value in `slot` (counted depth first) replaced by `value`.
    func replacingValue(at slot: Int, with value: JSONText) -> JSONText {
        changing(at: slot, item: { $0[$1] = value }, member: { $0[$1].1 = value })
    }

    /// One change: a value replaced, a member removed, duplicated, renamed or added.
    func mutated(_ random: inout SplitMix64) -> JSONText {
        var local = random
        defer { random = local }
        return changing(
            at: Int(local.next() % UInt64(max(slotCount, 1))),
            item: { items, i in
                if Bool.random(using: &local) { items.remove(at: i) } else { items[i] = Self.pick(Self.replacements, &local) }
            },
            member: { members, i in
                switch local.next() % 5 {
                case 0: members.remove(at: i)
                case 1: members.append((members[i].0, Self.pick(Self.replacements, &local)))  // a duplicate key
                case 2: members[i].0 = Self.pick(["colour", "Code", "status", "unit", "command", "time", "value"], &local)
                case 3: members.append((Self.pick(["note", "time", "onset", "dose"], &local), Self.pick(Self.replacements, &local)))
                default: members[i].1 = Self.pick(Self.replacements, &local)
                }
            })
    }

    /// This value with the array item or object member in `slot` (counted depth first) changed by `item` or `member`.
    private func changing(
        at slot: Int, item: (inout [JSONText], Int) -> Void, member: (inout [(String, JSONText)], Int) -> Void
    ) -> JSONText {
        var target = slot
        return changing(&target, item, member)
    }

    private func changing(
        _ target: inout Int, _ item: (inout [JSONText], Int) -> Void, _ member: (inout [(String, JSONText)], Int) -> Void
    ) -> JSONText {
        switch self {
        case .raw, .string: return self
        case .array(var items):
            for i in items.indices {
                if target == 0 { target = -1; item(&items, i); return .array(items) }
                target -= 1
                items[i] = items[i].changing(&target, item, member)
                if target < 0 { return .array(items) }
            }
            return .array(items)
        case .object(var members):
            for i in members.indices {
                if target == 0 { target = -1; member(&members, i); return .object(members) }
                target -= 1
                members[i].1 = members[i].1.changing(&target, item, member)
                if target < 0 { return .object(members) }
            }
            return .object(members)
        }
    }

    /// One byte deleted, inserted or replaced, from bytes that matter to JSON (and bytes of UTF-8 sequences, alone
    /// or in pairs, which may leave the text invalid UTF-8).
    static func mutateBytes(_ text: String, _ random: inout SplitMix64) -> [UInt8] {
        var bytes = Array(text.utf8)
        let position = Int(random.next() % UInt64(bytes.count))
        let alphabet = Array("{}[],:\"\\ 0123456789-.eE+nultrfasx/\t\n".utf8) + [0x7F, 0xC3, 0xA9, 0x00]
        switch random.next() % 3 {
        case 0: bytes.remove(at: position)
        case 1: bytes.insert(pick(alphabet, &random), at: position)
        default: bytes[position] = pick(alphabet, &random)
        }
        return bytes
    }
}
