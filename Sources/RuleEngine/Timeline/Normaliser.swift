/// Maps a decoded event through the vocabulary into typed, canonical-unit records and data-quality findings.
///
/// Nothing is guessed: a numeric value with no unit, a unit that cannot be converted for that analyte, a value
/// outside the plausibility limits, or an unknown code becomes a finding and the value is treated as missing.
///
/// Built once per event (by ingest) and then handed from ingest to the journal, the hand-off and evaluation: the
/// records live in one shared, immutable object, so that each hand-over is one reference instead of a copy of
/// every array and string in them (a retain and a release each).
package struct NormalisedEvent: Sendable {
    private final class Shared: Sendable {
        let records: NormalisedRecords
        init(_ records: NormalisedRecords) { self.records = records }
    }

    private let shared: Shared

    package var event: PatientEvent { shared.records.event }
    package var observations: [(fact: Int, record: ObservationRecord)] { shared.records.observations }
    package var medications: [(fact: Int, record: MedicationRecord)] { shared.records.medications }
    package var administrations: [(fact: Int, record: AdministrationRecord)] { shared.records.administrations }
    package var statuses: [(fact: Int, record: StatusRecord)] { shared.records.statuses }
    package var reactions: [(fact: Int, record: ReactionRecord)] { shared.records.reactions }
    package var findings: [DataQualityFinding] { shared.records.findings }

    package init(_ event: PatientEvent, vocabulary: Vocabulary) {
        shared = Shared(NormalisedRecords(event, vocabulary: vocabulary))
    }

    /// Converts a reported value into the fact's canonical unit, bridging dimensions only by declared conversions.
    package static func convert(_ value: Double, from unit: Unit, for fact: FactDefinition, canonical: Unit) -> Double? {
        if let direct = unit.convert(value, to: canonical) { return direct }
        for conversion in fact.conversions where conversion.from.dimension == unit.dimension {
            guard let inFrom = unit.convert(value, to: conversion.from) else { continue }
            let converted = conversion.apply(inFrom)
            return converted.isFinite ? converted : nil
        }
        return nil
    }
}

/// The normaliser proper: builds a ``NormalisedEvent``'s records.
struct NormalisedRecords: Sendable {
    var event: PatientEvent
    var observations: [(fact: Int, record: ObservationRecord)] = []
    var medications: [(fact: Int, record: MedicationRecord)] = []
    var administrations: [(fact: Int, record: AdministrationRecord)] = []
    var statuses: [(fact: Int, record: StatusRecord)] = []
    var reactions: [(fact: Int, record: ReactionRecord)] = []
    var findings: [DataQualityFinding] = []

    // Built once: the normaliser runs for every event.
    private static let observationKinds: [FactKind] = [.observation]
    private static let medicationKinds: [FactKind] = [.medication, .administration]
    private static let administrationKinds: [FactKind] = [.administration, .medication]
    private static let conditionKinds: [FactKind] = [.condition]
    private static let symptomKinds: [FactKind] = [.symptom]
    private static let reactionKinds: [FactKind] = [.reaction]
    private static let milligrams = UnitTable.unit("mg")!
    private static let milligramsPerDay = UnitTable.unit("mg/d")
    /// Dose periods (`per`) as unit symbols.
    private static let periods = ["day": "d", "week": "wk", "month": "mo"]

    init(_ event: PatientEvent, vocabulary: Vocabulary) {
        self.event = event
        // At most one record per item: one allocation per kind, not one per doubling.
        observations.reserveCapacity(event.observations.count)
        medications.reserveCapacity(event.medications.count)
        administrations.reserveCapacity(event.administrations.count)
        statuses.reserveCapacity(event.conditions.count + event.symptoms.count)
        reactions.reserveCapacity(event.reactions.count)
        for item in event.observations { observation(item, vocabulary) }
        for item in event.medications { medication(item, vocabulary) }
        for item in event.administrations {
            guard let fact = resolve(item.code, item.path, Self.administrationKinds, item.time, vocabulary) else { continue }
            var dose: Double?
            if let value = item.dose {
                // As for medications: a dose that cannot be read is a finding, never dropped without a word.
                if let symbol = item.unit, let unit = UnitTable.unit(symbol), let converted = unit.convert(value, to: Self.milligrams) {
                    dose = converted
                } else {
                    let reason = item.unit.map { UnitTable.unit($0) == nil ? "unknown dose unit '\($0)'" : "dose \(value.formatted) \($0) is not a mass; dose not used" }
                        ?? "dose unit missing; dose not used"
                    finding(fact.index, item.code, item.path, reason, time: item.time, value: .number(value), unit: item.unit)
                }
            }
            let provenance = Provenance(event: event.id, time: item.time ?? event.time)
            administrations.append((fact.index, AdministrationRecord(route: item.route?.uppercased(), dose: dose, provenance: provenance)))
        }
        for item in event.conditions {
            guard let fact = resolve(item.code, item.path, Self.conditionKinds, item.time, vocabulary) else { continue }
            let at = item.time ?? event.time
            statuses.append((fact.index, StatusRecord(
                present: item.status == "active", onset: at, reportedAt: max(at, event.time),
                provenance: Provenance(event: event.id, time: at, reportedValue: .text(item.status)))))
        }
        for item in event.symptoms {
            guard let fact = resolve(item.code, item.path, Self.symptomKinds, item.time, vocabulary) else { continue }
            let reported = item.time ?? event.time
            statuses.append((fact.index, StatusRecord(
                present: item.status == "present", onset: item.onset ?? reported, reportedAt: reported,
                provenance: Provenance(event: event.id, time: item.onset ?? reported, reportedValue: .text(item.status)))))
        }
        for item in event.reactions {
            guard let fact = resolve(item.code, item.path, Self.reactionKinds, item.time, vocabulary) else { continue }
            reactions.append((fact.index, ReactionRecord(after: item.after, provenance: Provenance(event: event.id, time: item.time ?? event.time))))
        }
    }

    private mutating func finding(
        _ fact: Int?, _ code: PatientEvent.Code, _ path: String, _ reason: String, time: Double?,
        value: PatientEvent.ObservedValue? = nil, unit: String? = nil, severity: DataQualityFinding.Severity = .rejected
    ) {
        findings.append(DataQualityFinding(
            fact: fact, code: code.description, path: path, reason: reason, severity: severity,
            provenance: Provenance(event: event.id, time: time ?? event.time, reportedValue: value, reportedUnit: unit)))
    }

    private mutating func resolve(
        _ code: PatientEvent.Code, _ path: String, _ kinds: [FactKind], _ time: Double?, _ vocabulary: Vocabulary
    ) -> FactDefinition? {
        switch vocabulary.resolve(code) {
        case .fact(let fact):
            guard kinds.contains(fact.kind) else {
                finding(fact.index, code, path, "'\(fact.name)' is a \(fact.kind.rawValue), not expected here", time: time)
                return nil
            }
            return fact
        case .excluded(let reason):
            finding(nil, code, path, "code \(code) is not used: \(reason)", time: time)
            return nil
        case .unknown:
            finding(nil, code, path, "unknown code \(code)", time: time)
            return nil
        }
    }

    private mutating func observation(_ item: PatientEvent.Observation, _ vocabulary: Vocabulary) {
        guard let fact = resolve(item.code, item.path, Self.observationKinds, item.time, vocabulary) else { return }
        let time = item.time ?? event.time
        let provenance = Provenance(event: event.id, time: time, reportedValue: item.value, reportedUnit: item.unit)
        switch item.value {
        case .text(let text):
            guard let allowed = fact.values else {
                finding(fact.index, item.code, item.path, "'\(text)' is not a number; \(fact.name) is measured in \(fact.unit?.symbol ?? "a unit")", time: time, value: item.value, unit: item.unit)
                return
            }
            guard allowed.contains(text) else {
                finding(fact.index, item.code, item.path, "'\(text)' is not one of \(allowed.joined(separator: ", "))", time: time, value: item.value, unit: item.unit)
                return
            }
            observations.append((fact.index, ObservationRecord(value: .text(text), provenance: provenance)))
        case .number(let number):
            guard let canonical = fact.unit else {
                finding(fact.index, item.code, item.path, "\(fact.name) expects one of \(fact.values?.joined(separator: ", ") ?? "a value"), not a number", time: time, value: item.value, unit: item.unit)
                return
            }
            guard let symbol = item.unit, !Self.isBlank(symbol) else {
                finding(fact.index, item.code, item.path, "unit missing; value \(number.formatted) not used (never guessed)", time: time, value: item.value, unit: nil)
                return
            }
            guard let unit = UnitTable.unit(symbol) else {
                finding(fact.index, item.code, item.path, "unknown unit '\(symbol)'; value not used", time: time, value: item.value, unit: symbol)
                return
            }
            guard let value = NormalisedEvent.convert(number, from: unit, for: fact, canonical: canonical) else {
                // A unit that converts (1 of it does) but a value that does not: it overflowed on the way.
                let why = NormalisedEvent.convert(1, from: unit, for: fact, canonical: canonical) != nil
                    ? "value \(number.formatted) \(symbol) is out of range once converted to \(canonical.symbol); value not used"
                    : "unit \(symbol) cannot be converted to \(canonical.symbol) for \(fact.name); value not used"
                finding(fact.index, item.code, item.path, why, time: time, value: item.value, unit: symbol)
                return
            }
            if let why = fact.plausibility.violation(value, unit: canonical) {
                // The limits are in the canonical unit: the value is given in it too when it was sent in another.
                let converted = unit.symbol == canonical.symbol ? "" : " (\(value.formatted) \(canonical.symbol))"
                finding(fact.index, item.code, item.path, "implausible value \(number.formatted) \(symbol)\(converted): \(why); value not used", time: time, value: item.value, unit: symbol)
                return
            }
            observations.append((fact.index, ObservationRecord(value: .number(value), provenance: provenance)))
        }
    }

    /// Whether a text is empty or only whitespace; a unit symbol starting with a visible ASCII character (the usual
    /// case) is answered without Unicode's character properties.
    static func isBlank(_ text: String) -> Bool {
        if let first = text.utf8.first, first > 0x20, first < 0x7F { return false }
        return text.allSatisfy(\.isWhitespace)
    }

    private mutating func medication(_ item: PatientEvent.Medication, _ vocabulary: Vocabulary) {
        guard let fact = resolve(item.code, item.path, Self.medicationKinds, item.start, vocabulary) else { return }
        let key = item.product ?? "\(fact.name)|\(item.dose.map(\.formatted) ?? "")|\(item.unit ?? "")|\(item.per ?? "")"
        var daily: Double?
        if let dose = item.dose {
            let reported = PatientEvent.ObservedValue.number(dose)
            if let symbol = item.unit, let unit = UnitTable.unit(symbol), let canonical = fact.unit ?? Self.milligramsPerDay {
                var rate: Unit?
                if unit.dimension == .doseRate {
                    rate = unit
                } else if unit.dimension == .mass, let per = item.per {
                    rate = UnitTable.unit("\(unit.symbol)/\(Self.periods[per] ?? "d")")
                }
                if let rate, let converted = rate.convert(dose, to: canonical), converted > 0 {
                    daily = converted
                    if let flag = fact.plausibility.flagAbove, converted > flag {
                        finding(fact.index, item.code, item.path, "daily dose \(converted.formatted) \(canonical.symbol) is above \(flag.formatted) \(canonical.symbol): likely a unit error; please check", time: item.start, value: reported, unit: symbol, severity: .flagged)
                    }
                } else if unit.dimension == .mass, item.per == nil {
                    finding(fact.index, item.code, item.path, "dose period ('per') missing; daily dose not used", time: item.start, value: reported, unit: symbol)
                } else {
                    finding(fact.index, item.code, item.path, "dose \(dose.formatted) \(symbol) cannot be read as a daily dose", time: item.start, value: reported, unit: symbol)
                }
            } else {
                finding(fact.index, item.code, item.path, item.unit == nil ? "dose unit missing; dose not used" : "unknown dose unit '\(item.unit!)'", time: item.start, value: reported, unit: item.unit)
            }
        }
        let record = MedicationRecord(
            key: key, dailyDose: daily, active: item.status == "active", start: item.start ?? event.time, end: item.end,
            route: item.route?.uppercased(), reportedAt: event.time,
            provenance: Provenance(event: event.id, time: item.start ?? event.time, reportedValue: item.dose.map { .number($0) }, reportedUnit: item.unit))
        medications.append((fact.index, record))
    }
}
