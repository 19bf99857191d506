/// A patient event as sent by an EHR integration engine (INTERFACES.md §1), validated for shape but not yet
/// mapped through the vocabulary. Times are seconds since the epoch.
package struct PatientEvent: Sendable, Equatable {
    package var id: String
    package var patient: String
    package var clinic: String
    package var time: Double
    package var observations: [Observation] = []
    package var medications: [Medication] = []
    package var administrations: [Administration] = []
    package var conditions: [Condition] = []
    package var symptoms: [Symptom] = []
    package var reactions: [Reaction] = []
    package var pregnancy: Pregnancy?
    package var diet: String?
    package var preferences: [String]?
    /// Non-fatal remarks (unknown fields), with their paths.
    package var warnings: [FieldError] = []

    /// A code as sent: a vocabulary name, or a coded concept in a terminology.
    package struct Code: Sendable, Hashable, CustomStringConvertible {
        package var system: String?
        package var code: String

        package init(system: String?, code: String) {
            self.system = system
            self.code = code
        }

        package var description: String { system.map { "\($0):\(code)" } ?? code }
    }

    package enum ObservedValue: Sendable, Equatable {
        case number(Double)
        case text(String)
    }

    package struct Observation: Sendable, Equatable {
        package var code: Code
        package var value: ObservedValue
        package var unit: String?
        package var time: Double?
        package var path: String
    }

    package struct Medication: Sendable, Equatable {
        package var code: Code
        package var dose: Double?
        package var unit: String?
        package var per: String?
        package var status: String
        package var start: Double?
        package var end: Double?
        package var route: String?
        package var product: String?
        package var path: String
    }

    package struct Administration: Sendable, Equatable {
        package var code: Code
        package var dose: Double?
        package var unit: String?
        package var route: String?
        package var time: Double?
        package var path: String
    }

    package struct Condition: Sendable, Equatable {
        package var code: Code
        package var status: String
        package var time: Double?
        package var path: String
    }

    package struct Symptom: Sendable, Equatable {
        package var code: Code
        package var status: String
        package var onset: Double?
        package var time: Double?
        package var path: String
    }

    package struct Reaction: Sendable, Equatable {
        package var code: Code
        package var after: String?
        package var time: Double?
        package var path: String
    }

    package struct Pregnancy: Sendable, Equatable {
        package var status: String
        package var gestationWeeks: Double?
        package var deliveryDate: Double?
        package var breastfeeding: Bool?
        package var fetuses: Int?
    }
}
