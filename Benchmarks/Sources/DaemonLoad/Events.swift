import BenchmarkSupport
import Foundation

/// Realistic patient events (INTERFACES §1), 640–720 bytes of JSON each, generated before any timing starts.
///
/// Every event is unique: its id (the idempotency key) is `<prefix>-<index>`, and its time advances by one second
/// per event, so each patient's timeline only grows forward. Values come from a fixed-seed generator, so two runs
/// send the same bytes.
enum EventFactory {
    static let clinics = ["north-antenatal", "south-antenatal", "east-community", "west-maternity"]

    /// A mixed stream for throughput and ACK latency: `count` events over `patients` patients, round robin.
    ///
    /// Like a lab feed: every event carries a routine panel (Hb, MCV, ferritin, serum folate, platelets, eGFR, all
    /// in their normal ranges) plus pregnancy, diet and folic acid; one event in five also carries an active B12
    /// result, and half of those move the patient to another band (deficient 18, borderline 45, not deficient
    /// 90 pmol/L), so alerts fire and resolve on roughly one event in ten. Each patient keeps a fixed profile
    /// (diet, folic-acid dose) and starts in a band drawn at random.
    static func mixed(prefix: String, count: Int, patients: Int, seed: UInt64) -> [[UInt8]] {
        var random = SplitMix(seed: seed)
        let bands: [Double] = [18, 45, 90]
        var band = (0..<patients).map { _ in Int(random.next() % 3) }
        let profiles = (0..<patients).map { _ in
            (diet: ["vegan", "vegetarian", "omnivore"][Int(random.next() % 3)], folicMilligrams: random.next() % 5 == 0)
        }
        var first = Array(repeating: true, count: patients)
        return (0..<count).map { index in
            let patient = index % patients
            var b12: Double?
            if first[patient] || random.next() % 5 == 0 {
                if !first[patient], random.next() % 2 == 0 { band[patient] = (band[patient] + 1 + Int(random.next() % 2)) % 3 }
                first[patient] = false
                b12 = bands[band[patient]]
            }
            return event(
                id: "\(prefix)-\(index)", patient: "lp-\(pad4(patient))", clinic: clinics[patient % clinics.count],
                secondsAfterBase: index, activeB12: b12, random: &random,
                diet: profiles[patient].diet, folicMilligrams: profiles[patient].folicMilligrams)
        }
    }

    /// Events that each change the patient's alerts: every patient alternates between 18 pmol/L (deficient: the
    /// deficiency, route and review alerts fire) and 90 pmol/L (they resolve). Event `i` belongs to patient
    /// `i % patients`; its first event fires.
    static func alternating(prefix: String, count: Int, patients: Int, seed: UInt64) -> [[UInt8]] {
        var random = SplitMix(seed: seed)
        return (0..<count).map { index in
            let patient = index % patients
            let round = index / patients
            return event(
                id: "\(prefix)-\(index)", patient: "ea-\(pad4(patient))", clinic: clinics[patient % clinics.count],
                secondsAfterBase: index, activeB12: round % 2 == 0 ? 18 : 90, random: &random, steady: true)
        }
    }

    /// The patient of an `alternating` event.
    static func alternatingPatient(_ index: Int, patients: Int) -> String { "ea-\(pad4(index % patients))" }

    /// One event. With `steady`, the routine values are fixed (a normal blood count), so that only active B12
    /// (when present) decides which alerts are active.
    static func event(
        id: String, patient: String, clinic: String, secondsAfterBase: Int, activeB12: Double?, random: inout SplitMix,
        diet: String = "omnivore", folicMilligrams: Bool = false, steady: Bool = false
    ) -> [UInt8] {
        // From 2026-10-01 (50 days before the other benchmarks' base): the daemon refuses events dated more than a
        // day ahead of its clock, and a million records one second apart span 12 days.
        let time = benchmarkTimestamp(secondsAfterBase - 50 * 86_400)
        var hb = 112 + Int(random.next() % 24)  // g/L
        var mcv = 84 + Int(random.next() % 14)  // fL
        var ferritin = 30 + Int(random.next() % 70)  // µg/L
        var folate = 12 + Int(random.next() % 20)  // nmol/L
        var platelets = 160 + Int(random.next() % 200)  // 10^9/L
        var weeks = 12 + Int(random.next() % 26)
        if steady { (hb, mcv, ferritin, folate, platelets, weeks) = (121, 91, 60, 20, 250, 24) }
        let folicDose = folicMilligrams ? "5,\"unit\":\"mg\"" : "400,\"unit\":\"ug\""
        let b12 = activeB12.map { "{\"code\":\"b12.active\",\"value\":\(Int($0)),\"unit\":\"pmol/L\"}," } ?? ""
        let json = """
            {"schema":"cobalt.event.v1","id":"\(id)","patient":"\(patient)","clinic":"\(clinic)","time":"\(time)",\
            "pregnancy":{"status":"pregnant","gestation_weeks":\(weeks),"fetuses":1},"diet":"\(diet)",\
            "observations":[\(b12)\
            {"code":"hb","value":\(hb),"unit":"g/L"},{"code":"mcv","value":\(mcv),"unit":"fL"},\
            {"code":"ferritin","value":\(ferritin),"unit":"ug/L"},{"code":"folate.serum","value":\(folate),"unit":"nmol/L"},\
            {"code":"platelets","value":\(platelets),"unit":"10*9/L"},{"code":"egfr","value":96,"unit":"mL/min/1.73m2"}],\
            "medications":[{"code":"folic-acid","dose":\(folicDose),"per":"day","status":"active","start":"2026-05-01"}],\
            "symptoms":[{"code":"fatigue","status":"absent"}]}
            """
        return Array(json.utf8)
    }

    private static func pad4(_ n: Int) -> String {
        let s = String(n)
        return s.count >= 4 ? s : String(repeating: "0", count: 4 - s.count) + s
    }
}


// MARK: - Minimal JSON field access on raw bytes (replies, alerts, status)

extension Array where Element == UInt8 {
    /// The value of the first `"key":"…"` string field (no escapes expected in these fields).
    func stringField(_ key: String) -> Substring? {
        let needle = Array("\"\(key)\":\"".utf8)
        guard let start = firstRange(of: needle)?.upperBound else { return nil }
        guard let end = self[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return Substring(String(decoding: self[start..<end], as: UTF8.self))
    }

    /// The integer value of the first `"key":123` field.
    func intField(_ key: String) -> Int? {
        let needle = Array("\"\(key)\":".utf8)
        guard let start = firstRange(of: needle)?.upperBound else { return nil }
        var value = 0
        var index = start
        var negative = false
        if index < endIndex, self[index] == UInt8(ascii: "-") { negative = true; index += 1 }
        let digitsStart = index
        while index < endIndex, self[index] >= 48, self[index] <= 57 {
            value = value * 10 + Int(self[index] - 48)
            index += 1
        }
        guard index > digitsStart else { return nil }
        return negative ? -value : value
    }

    /// The trailing number of the first `"id":"<prefix>-<n>"` field: the event's index.
    func eventIndex() -> Int? {
        let needle: [UInt8] = Array("\"id\":\"".utf8)
        guard let start = firstRange(of: needle)?.upperBound else { return nil }
        guard let end = self[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        guard let dash = self[start..<end].lastIndex(of: UInt8(ascii: "-")) else { return nil }
        var value = 0
        var index = dash + 1
        guard index < end else { return nil }
        while index < end {
            let byte = self[index]
            guard byte >= 48, byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
            index += 1
        }
        return value
    }
}
