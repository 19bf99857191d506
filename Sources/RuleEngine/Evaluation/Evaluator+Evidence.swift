/// A fact read during evaluation, recorded as a cheap reference into the timeline (or a derived-fact slot).
/// Full ``Evidence`` values, with their strings, are built only for alerts that fire.
enum EvidenceItem: Hashable {
    case observation(Int, Int)
    case medication(Int, Int)
    case administration(Int, Int)
    case status(Int, Int)
    case reaction(Int, Int)
    case finding(Int)
    case derived(Int)
    case context(ContextFact, Double)
}

extension Evaluator.State {
    /// The evidence recorded in `range`, with each derived fact followed by what it was concluded from;
    /// each fact appears once (duplicates are found on the small references, before any string is built).
    func materialize(_ range: Range<Int>) -> [Evidence] {
        var out: [Evidence] = []
        // Sized for the common case up front: growing from empty rehashes several times for a dozen items.
        var seen = Set<EvidenceItem>(minimumCapacity: 2 * range.count)
        var stack: [Range<Int>] = [range]
        var cursor: [Int] = [range.lowerBound]
        while let top = stack.last {
            let position = cursor[cursor.count - 1]
            guard position < top.upperBound else {
                stack.removeLast()
                cursor.removeLast()
                continue
            }
            cursor[cursor.count - 1] = position + 1
            let item = evidence[position]
            guard seen.insert(item).inserted else { continue }
            if case .derived(let slot) = item {
                let fact = bundle.derived[slot]
                out.append(Evidence(fact: fact.name, value: derived[slot] ?? fact.defaultValue, rule: setBy[slot].map { bundle.rules[$0].id } ?? "default"))
                if let basis = basis[slot], !basis.isEmpty {
                    stack.append(basis)
                    cursor.append(basis.lowerBound)
                }
                continue
            }
            out.append(makeEvidence(item))
        }
        return out
    }

    private func makeEvidence(_ item: EvidenceItem) -> Evidence {
        let facts = bundle.vocabulary.facts
        switch item {
        case .observation(let fact, let index):
            return observationEvidence(facts[fact], timeline.observations[fact][index])
        case .medication(let fact, let index):
            return medicationEvidence(facts[fact], timeline.medications[fact][index])
        case .administration(let fact, let index):
            let r = timeline.administrations[fact][index]
            return Evidence(fact: facts[fact].name, value: .text(r.route ?? "given"), time: r.time, event: r.provenance.event)
        case .status(let fact, let index):
            let r = timeline.statuses[fact][index]
            return Evidence(
                fact: facts[fact].name, value: .text(facts[fact].kind == .condition ? "active" : "present"), time: r.onset,
                event: r.provenance.event)
        case .reaction(let fact, let index):
            let r = timeline.reactions[fact][index]
            return Evidence(fact: facts[fact].name, value: .text(r.after.map { "after \($0)" } ?? "recorded"), time: r.time, event: r.provenance.event)
        case .finding(let index):
            let finding = timeline.findings[index]
            return Evidence(
                fact: finding.fact.map { facts[$0].name } ?? finding.code, value: .text(finding.severity.rawValue),
                reportedValue: finding.provenance.reportedValue, reportedUnit: finding.provenance.reportedUnit,
                time: finding.time, event: finding.provenance.event, note: finding.reason)
        case .context(let fact, let time):
            let value = contextValue(fact, at: time).value
            var event: String?
            switch fact {
            case .diet: event = timeline.diet.last(where: { $0.provenance.time <= time })?.provenance.event
            case .preferences: event = timeline.preferences.last(where: { $0.provenance.time <= time })?.provenance.event
            case .now: event = nil
            default: event = pregnancy.state(at: time)?.episode?.provenance.event
            }
            return Evidence(fact: fact.rawValue, value: value, time: time == now ? nil : time, event: event)
        case .derived:
            return Evidence(fact: "", value: .unknown)
        }
    }
}
