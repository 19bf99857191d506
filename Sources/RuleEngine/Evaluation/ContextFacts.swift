/// Built-in facts that are not vocabulary entries: the evaluation time, pregnancy state, diet and preferences.
/// `at(name, time)` reads them at another time.
package enum ContextFact: String, Sendable, CaseIterable {
    case now
    case pregnancyStatus = "pregnancy.status"
    case gestation = "pregnancy.gestation"
    case trimester = "pregnancy.trimester"
    case pregnancyStart = "pregnancy.start"
    case delivery = "pregnancy.delivery"
    case breastfeeding = "pregnancy.breastfeeding"
    case fetuses = "pregnancy.fetuses"
    case diet
    case preferences

    package var type: ValueType {
        switch self {
        case .now, .pregnancyStart, .delivery: return .time
        case .pregnancyStatus: return .text(values: ["pregnant", "postpartum", "not-pregnant"])
        case .gestation: return .quantity(.duration)
        case .trimester, .fetuses: return .number
        case .breastfeeding: return .bool
        case .diet: return .text(values: ["vegan", "vegetarian", "omnivore"])
        case .preferences: return .textSet
        }
    }

    package var summary: String {
        switch self {
        case .now: return "the evaluation time"
        case .pregnancyStatus: return "pregnant, postpartum or not-pregnant"
        case .gestation: return "gestational age (a duration; compare with weeks, e.g. 28 wk)"
        case .trimester: return "1, 2 or 3 while pregnant (T1 < 14 wk, T2 < 28 wk)"
        case .pregnancyStart: return "estimated start of the current pregnancy"
        case .delivery: return "delivery date of the current or last pregnancy"
        case .breastfeeding: return "whether breastfeeding (postpartum reports)"
        case .fetuses: return "number of fetuses"
        case .diet: return "latest reported diet"
        case .preferences: return "latest reported preferences, e.g. declines-injections"
        }
    }
}

package enum ContextFacts {
    /// Names that vocabulary facts and derived facts may not use.
    package static func isReserved(_ identifier: String) -> Bool {
        ContextFact(rawValue: identifier) != nil || identifier.hasPrefix("pregnancy.")
    }
}
