/// One fact that an alert or decision used: its normalised value and unit, what was reported, when, and from
/// which event (or, for a derived fact, which rule set it).
package struct Evidence: Sendable, Equatable {
    package var fact: String
    package var value: Value
    package var reportedValue: PatientEvent.ObservedValue?
    package var reportedUnit: String?
    package var time: Double?
    package var event: String?
    /// For derived facts: the rule that set the value.
    package var rule: String?
    /// For data-quality findings: why the value was not used.
    package var note: String?

    package init(
        fact: String, value: Value, reportedValue: PatientEvent.ObservedValue? = nil, reportedUnit: String? = nil,
        time: Double? = nil, event: String? = nil, rule: String? = nil, note: String? = nil
    ) {
        self.fact = fact
        self.value = value
        self.reportedValue = reportedValue
        self.reportedUnit = reportedUnit
        self.time = time
        self.event = event
        self.rule = rule
        self.note = note
    }
}

/// An alert raised by a rule, with its rendered text and the evidence behind it.
package struct Alert: Sendable, Equatable {
    package var id: String
    package var rule: String
    package var ruleset: String
    package var category: String
    package var severity: String
    package var summary: String
    package var detail: String
    package var recommendation: String
    package var citations: [String]
    package var evidence: [Evidence]
}

/// The result of evaluating one patient's timeline at a time (INTERFACES.md §2).
package struct EvaluationResult: Sendable, Equatable {
    package var patient: String
    package var clinic: String
    package var at: Double
    package var rulesetVersion: String
    package var rulesetHash: String
    /// Published derived facts in declaration order.
    package var decisions: [(name: String, value: Value)]
    package var alerts: [Alert]
    /// Alerts of rule sets in `testing` status: evaluated and logged, never published.
    package var shadowAlerts: [Alert]
    /// Every derived fact, published or not (for rule tests and explanations).
    package var derived: [(name: String, value: Value)] = []

    package static func == (lhs: EvaluationResult, rhs: EvaluationResult) -> Bool {
        lhs.patient == rhs.patient && lhs.clinic == rhs.clinic && lhs.at == rhs.at
            && lhs.rulesetVersion == rhs.rulesetVersion && lhs.rulesetHash == rhs.rulesetHash
            && lhs.decisions.map(\.name) == rhs.decisions.map(\.name)
            && lhs.decisions.map(\.value) == rhs.decisions.map(\.value) && lhs.alerts == rhs.alerts
            && lhs.shadowAlerts == rhs.shadowAlerts
    }

    /// The value of a published decision.
    package func decision(_ name: String) -> Value? {
        decisions.first { $0.name == name }?.value
    }

    /// The value of any derived fact, published or not.
    package func derivedValue(_ name: String) -> Value? {
        derived.first { $0.name == name }?.value
    }
}
