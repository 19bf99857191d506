/// Where a value came from: the event, the time it refers to, and what was reported before normalisation.
package struct Provenance: Sendable, Equatable {
    package var event: String
    package var time: Double
    package var reportedValue: PatientEvent.ObservedValue?
    package var reportedUnit: String?

    package init(event: String, time: Double, reportedValue: PatientEvent.ObservedValue? = nil, reportedUnit: String? = nil) {
        self.event = event
        self.time = time
        self.reportedValue = reportedValue
        self.reportedUnit = reportedUnit
    }
}

/// A laboratory or qualitative result, normalised to the fact's canonical unit.
package struct ObservationRecord: Sendable, Equatable {
    package enum Value: Sendable, Equatable {
        case number(Double)
        case text(String)
    }

    package var value: Value
    package var provenance: Provenance
    package var time: Double { provenance.time }
}

/// A medication statement. Statements with the same key (product, or code + dose + unit + period) supersede
/// each other, newest report first.
package struct MedicationRecord: Sendable, Equatable {
    package var key: String
    /// Daily dose in the fact's canonical unit (mg/d), when the dose, unit and period were all usable.
    package var dailyDose: Double?
    package var active: Bool
    /// When it started: the stated start, or when it was first reported.
    package var start: Double
    package var end: Double?
    package var route: String?
    /// When this statement was made (the event time).
    package var reportedAt: Double
    package var provenance: Provenance
}

/// A dose given at a time (an injection).
package struct AdministrationRecord: Sendable, Equatable {
    package var route: String?
    package var dose: Double?
    package var provenance: Provenance
    package var time: Double { provenance.time }
}

/// A condition or symptom statement: present/active or not, as of the report time, with an onset.
package struct StatusRecord: Sendable, Equatable {
    package var present: Bool
    /// Onset (symptoms) or diagnosis time (conditions) when stated, else the report time.
    package var onset: Double
    /// When this statement was made (the fact's own time, or the event time).
    package var reportedAt: Double
    package var provenance: Provenance
}

/// A reaction, e.g. urticaria after a B12 injection.
package struct ReactionRecord: Sendable, Equatable {
    package var after: String?
    package var provenance: Provenance
    package var time: Double { provenance.time }
}

/// A pregnancy status report.
package struct PregnancyRecord: Sendable, Equatable {
    package var status: String
    package var gestationWeeks: Double?
    package var deliveryDate: Double?
    package var breastfeeding: Bool?
    package var fetuses: Int?
    package var provenance: Provenance
    package var time: Double { provenance.time }
}

/// A value that could not be used: unknown code, missing or unconvertible unit, implausible value.
package struct DataQualityFinding: Sendable, Equatable {
    package enum Severity: String, Sendable { case rejected, flagged }

    /// The fact, when the code was recognised.
    package var fact: Int?
    package var code: String
    package var path: String
    package var reason: String
    package var severity: Severity
    package var provenance: Provenance
    package var time: Double { provenance.time }
}
