/// Builds patient timelines from events and evaluates them: the offline path used by `cobalt eval` and by
/// rule tests. The daemon applies the same ``NormalisedEvent`` and ``Evaluator`` per event.
package enum Timelines {
    /// Groups events by patient (first-seen order), applies them in time order, and evaluates each patient at
    /// `at`, or at the time of the latest event overall when `at` is nil.
    package static func evaluate(_ events: [PatientEvent], bundle: RuleBundle, at: Double? = nil) -> [EvaluationResult] {
        var order: [String] = []
        var timelines: [String: PatientTimeline] = [:]
        for event in events.sorted(by: { $0.time < $1.time }) {
            if timelines[event.patient] == nil {
                order.append(event.patient)
                timelines[event.patient] = PatientTimeline(
                    patient: event.patient, clinic: event.clinic, factCount: bundle.vocabulary.facts.count)
            }
            timelines[event.patient]!.apply(NormalisedEvent(event, vocabulary: bundle.vocabulary))
        }
        let asOf = at ?? events.map(\.time).max() ?? 0
        let evaluator = Evaluator(bundle: bundle)
        let firstSeen = events.reduce(into: [String]()) { if !$0.contains($1.patient) { $0.append($1.patient) } }
        return firstSeen.compactMap { timelines[$0] }.map { evaluator.evaluate($0, at: asOf) }
    }
}
