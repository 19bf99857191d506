/// What kind of record a fact is, which decides how expressions read it.
package enum FactKind: String, Sendable, CaseIterable {
    case observation, medication, administration, condition, symptom, reaction
}

/// One fact of the vocabulary: a wire name, the name rules use, its kind, canonical unit, codes and checks.
/// A class: immutable once loaded and read on every fact access during evaluation, so it is shared, not copied.
package final class FactDefinition: Sendable {
    /// Dense index used by timelines and compiled rules.
    package let index: Int
    /// The name on the wire (`bariatric-surgery.roux-en-y`).
    package let name: String
    /// The name in expressions: the wire name with `-` replaced by `_` (`bariatric_surgery.roux_en_y`).
    package let identifier: String
    package let kind: FactKind
    /// Canonical unit of numeric values (observations) or of the daily dose (medications, e.g. `mg/d`).
    package let unit: Unit?
    /// Allowed values of a qualitative observation (`positive`, `negative`).
    package let values: [String]?
    /// Analyte-specific conversions into the canonical unit, keyed by the dimension they bridge from.
    package let conversions: [AnalyteConversion]
    package let plausibility: Plausibility
    package let description: String
    package let codes: [String]
    package let location: SourceLocation

    package init(
        index: Int, name: String, identifier: String, kind: FactKind, unit: Unit?, values: [String]?,
        conversions: [AnalyteConversion], plausibility: Plausibility, description: String, codes: [String],
        location: SourceLocation
    ) {
        self.index = index
        self.name = name
        self.identifier = identifier
        self.kind = kind
        self.unit = unit
        self.values = values
        self.conversions = conversions
        self.plausibility = plausibility
        self.description = description
        self.codes = codes
        self.location = location
    }

    /// The expression name for a wire name.
    package static func identifier(for name: String) -> String {
        name.replacingAll("-", with: "_")
    }
}

/// Converts a value reported in a unit of another dimension (pmol/L) into the canonical unit (ng/L).
package struct AnalyteConversion: Sendable {
    /// The unit the factor is stated for; any unit of the same dimension is converted to it first.
    package let from: Unit
    /// value(canonical) = value(from) × factor.
    package let factor: Double
    /// True when the factor was written as a divisor (`divide: 2.266`); the division is then done exactly.
    package let divides: Bool
    package let divisor: Double

    package func apply(_ value: Double) -> Double {
        divides ? value / divisor : value * factor
    }
}

/// Plausibility limits in the canonical unit. A value outside is rejected (treated as missing); a value above
/// `flagAbove` is accepted but reported as a likely unit error.
package struct Plausibility: Sendable {
    package var min: Double?
    package var max: Double?
    package var above: Double?
    package var below: Double?
    package var flagAbove: Double?

    package init(min: Double? = nil, max: Double? = nil, above: Double? = nil, below: Double? = nil, flagAbove: Double? = nil) {
        self.min = min
        self.max = max
        self.above = above
        self.below = below
        self.flagAbove = flagAbove
    }

    /// Why a canonical value is implausible, or `nil` when it is plausible.
    package func violation(_ value: Double, unit: Unit?) -> String? {
        // The unit's text only when there is something to say: every lab value passes through here.
        func u() -> String { unit.map { " \($0.symbol)" } ?? "" }
        if let above, !(value > above) { return "must be above \(above.formatted)\(u())" }
        if let below, !(value < below) { return "must be below \(below.formatted)\(u())" }
        if let min, value < min { return "below the plausible minimum of \(min.formatted)\(u())" }
        if let max, value > max { return "above the plausible maximum of \(max.formatted)\(u())" }
        return nil
    }
}

/// The vocabulary: maps names and coded concepts to facts. Data, loaded from `Rules/vocabulary.yaml`.
package struct Vocabulary: Sendable {
    package let version: String
    package let facts: [FactDefinition]
    private let byName: [String: Int]
    private let byIdentifier: [String: Int]
    private let byCode: [String: Int]
    /// Codes deliberately not mapped, with the reason (e.g. LOINC 16695-9, B12 in whole blood).
    package let excludedCodes: [String: String]

    package init(version: String, facts: [FactDefinition], excludedCodes: [String: String]) {
        self.version = version
        self.facts = facts
        self.excludedCodes = excludedCodes
        var byName: [String: Int] = [:]
        var byIdentifier: [String: Int] = [:]
        var byCode: [String: Int] = [:]
        for fact in facts {
            byName[fact.name] = fact.index
            byIdentifier[fact.identifier] = fact.index
            for code in fact.codes { byCode[code.lowercased()] = fact.index }
        }
        self.byName = byName
        self.byIdentifier = byIdentifier
        self.byCode = byCode
    }

    /// The fact for an expression identifier (`b12.total`, `pernicious_anaemia`).
    package func fact(identifier: String) -> FactDefinition? {
        byIdentifier[identifier].map { facts[$0] }
    }

    /// Resolves a code as sent in an event.
    package func resolve(_ code: PatientEvent.Code) -> Resolution {
        if let system = code.system {
            var key = "\(system):\(code.code)".lowercased()
            while true {
                if let index = byCode[key] { return .fact(facts[index]) }
                if let reason = excludedCodes[key] { return .excluded(reason) }
                // ICD-10 is a hierarchy: a code stands for every code below it (E10 covers E10.9 and E10.65), so
                // a code not listed is looked up as its parents, down to the three-character category.
                guard system == "icd10", let parent = Self.icd10Parent(key) else { return .unknown }
                key = parent
            }
        }
        if let index = byName[code.code] { return .fact(facts[index]) }
        return .unknown
    }

    /// `icd10:e10.65` → `icd10:e10.6` → `icd10:e10`; nil at the three-character category, and for anything longer
    /// than an ICD-10 code can be (7 characters and a dot): walking a 260 KB "code" back one character at a time,
    /// each step counting the whole string, held ingest for minutes.
    static func icd10Parent(_ key: String) -> String? {
        let prefix = "icd10:"
        guard key.hasPrefix(prefix), key.utf8.count > prefix.utf8.count + 3, key.utf8.count <= prefix.utf8.count + 8 else { return nil }
        var parent = String(key.dropLast())
        if parent.hasSuffix(".") { parent.removeLast() }
        return parent
    }

    package enum Resolution {
        case fact(FactDefinition)
        case excluded(String)
        case unknown
    }

    /// All expression identifiers, for "did you mean" suggestions.
    package var identifiers: [String] { facts.map(\.identifier) }
}
