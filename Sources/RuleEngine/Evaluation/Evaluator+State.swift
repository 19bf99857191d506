extension Evaluator {
    /// The buffers of an evaluation, handed from one evaluation to the next by a caller that runs many in a row (a
    /// daemon shard): ``evaluateLazily(_:at:reusing:)`` takes them, ``LazyEvaluation/recycle()`` gives them back.
    /// Each evaluation otherwise allocated six arrays afresh, one of them (the evidence) several kilobytes, which
    /// the allocator serves from its slower paths. They carry nothing from one evaluation to the next: each is
    /// emptied (its capacity kept) before use.
    package struct Scratch {
        var derived: [Value?] = []
        var setBy: [Int?] = []
        var basis: [Range<Int>?] = []
        var evidence: [EvidenceItem] = []
        var currentMedicationCache: [[Int]?] = []
        var fired: [LazyEvaluation.Fired] = []

        package init() {}
    }

    /// The mutable state of one evaluation: the timeline as of `now`, derived facts set so far, and the evidence
    /// read by the rule being evaluated.
    struct State {
        let timeline: PatientTimeline
        let now: Double
        let bundle: RuleBundle
        let pregnancy: PregnancyHistory
        var derived: [Value?]
        /// The index of the rule that set each derived fact.
        var setBy: [Int?]
        /// Where in `evidence` the facts each derived fact was concluded from are recorded.
        var basis: [Range<Int>?]
        /// Every fact read so far, as cheap references; turned into ``Evidence`` only when an alert fires.
        var evidence: [EvidenceItem] = []
        /// Medication statements in force at `now`, per fact (indices), computed once per evaluation.
        var currentMedicationCache: [[Int]?]
        /// The pregnancy state at `now` (`.some(nil)`: none), computed on first use: many rules read pregnancy facts
        /// at `now`, and finding the state copies episodes.
        var pregnancyAtNow: PregnancyHistory.State?? = nil


        init(timeline: consuming PatientTimeline, now: Double, bundle: RuleBundle, reusing scratch: consuming Scratch = Scratch()) {
            self.timeline = timeline
            self.now = now
            self.bundle = bundle
            // The timeline keeps the history of all its reports; it is the one as of `now` unless a report is later.
            if let last = self.timeline.pregnancy.last, last.time > now {
                self.pregnancy = PregnancyHistory(self.timeline.pregnancy, now: now)
            } else {
                self.pregnancy = self.timeline.pregnancyHistory
            }
            // The buffers come from the scratch (emptied, their capacity kept): an evaluation after the first in a
            // shard allocates none of them.
            self.derived = []
            self.setBy = []
            self.basis = []
            self.currentMedicationCache = []
            swap(&derived, &scratch.derived)
            swap(&setBy, &scratch.setBy)
            swap(&basis, &scratch.basis)
            swap(&evidence, &scratch.evidence)
            swap(&currentMedicationCache, &scratch.currentMedicationCache)
            Self.fill(&derived, count: bundle.derived.count)
            Self.fill(&setBy, count: bundle.derived.count)
            Self.fill(&basis, count: bundle.derived.count)
            Self.fill(&currentMedicationCache, count: bundle.vocabulary.facts.count)
            evidence.removeAll(keepingCapacity: true)
            evidence.reserveCapacity(256)
        }

        /// Empties `array` (keeping its capacity) and appends `count` nils. Appended as literal nils:
        /// `Array(repeating: nil, count:)` copied its value into each element through a generic copy (of the largest
        /// payload: a quantity's unit), a call per element per evaluation.
        private static func fill<T>(_ array: inout [T?], count: Int) {
            array.removeAll(keepingCapacity: true)
            array.reserveCapacity(count)
            for _ in 0..<count { array.append(nil) }
        }

        /// Gives its buffers back for the next evaluation (see ``Evaluator/Scratch``).
        mutating func release(into scratch: inout Scratch) {
            swap(&derived, &scratch.derived)
            swap(&setBy, &scratch.setBy)
            swap(&basis, &scratch.basis)
            swap(&evidence, &scratch.evidence)
            swap(&currentMedicationCache, &scratch.currentMedicationCache)
        }

        /// Evaluates code that was not compiled with a rule (tests, tooling): compiles it, then runs it.
        mutating func eval(_ code: Code) -> Value {
            CompiledCode(code).run(&self)
        }

        // MARK: - Context

        mutating func context(_ fact: ContextFact, at t: Double) -> Value {
            let (value, isEvidence): (value: Value, isEvidence: Bool)
            switch fact {
            case .now, .diet, .preferences:
                (value, isEvidence) = contextValue(fact, at: t)
            default:
                guard t == now else {
                    (value, isEvidence) = contextValue(fact, at: t)
                    break
                }
                if pregnancyAtNow == nil { pregnancyAtNow = .some(pregnancy.state(at: now)) }
                (value, isEvidence) = Self.pregnancyValue(fact, pregnancyAtNow!)
            }
            if isEvidence { evidence.append(.context(fact, t)) }
            return value
        }

        /// A context fact's value at `t`, and whether reading it counts as evidence (it was read from a report).
        func contextValue(_ fact: ContextFact, at t: Double) -> (value: Value, isEvidence: Bool) {
            switch fact {
            case .now:
                return (.time(now), false)
            case .diet:
                guard let record = timeline.diet.last(where: { $0.provenance.time <= t }) else { return (.unknown, false) }
                return (.text(record.value), true)
            case .preferences:
                guard let record = timeline.preferences.last(where: { $0.provenance.time <= t }) else { return (.textSet([]), false) }
                return (.textSet(Set(record.values)), true)
            default:
                return Self.pregnancyValue(fact, pregnancy.state(at: t))
            }
        }

        /// A pregnancy context fact's value in a pregnancy state, and whether it counts as evidence.
        private static func pregnancyValue(_ fact: ContextFact, _ state: PregnancyHistory.State?) -> (value: Value, isEvidence: Bool) {
            guard let state else { return (.unknown, false) }
            let value: Value
            switch fact {
            case .pregnancyStatus: value = .text(state.status.rawValue)
            case .gestation: value = state.gestationWeeks.map { .quantity($0, .week) } ?? .unknown
            case .trimester: value = state.trimester.map { .number(Double($0)) } ?? .unknown
            case .pregnancyStart: value = state.episode?.start.map { .time($0) } ?? .unknown
            case .delivery: value = state.episode?.delivery.map { .time($0) } ?? .unknown
            case .breastfeeding: value = state.episode?.breastfeeding.map { .bool($0) } ?? .unknown
            case .fetuses: value = state.episode?.fetuses.map { .number(Double($0)) } ?? .unknown
            case .now, .diet, .preferences: value = .unknown
            }
            return (value, !value.isUnknown)
        }

        // MARK: - Filters

        struct Bounds {
            var lower = -Double.infinity
            var upper = Double.infinity  // exclusive
        }

        mutating func bounds(_ filter: CompiledFilter, asOf: Double? = nil) -> Bounds {
            var b = Bounds()
            if !filter.hasBounds { return b }
            // Called through `?.`, not bound with `if let`: binding copied each closure (a retain and a release).
            if case .time(let t)? = filter.since?.run(&self) { b.lower = max(b.lower, t) }
            if case .time(let t)? = filter.before?.run(&self) { b.upper = min(b.upper, t) }
            if case .quantity(let d, let u)? = filter.within?.run(&self), let seconds = u.convert(d, to: .second) {
                b.lower = max(b.lower, (asOf ?? now) - seconds)
            }
            return b
        }

        /// Medication statements in force at `now`: the newest statement per key (indices into the records).
        mutating func currentMedications(_ fact: Int) -> [Int] {
            if let cached = currentMedicationCache[fact] { return cached }
            let records = timeline.medications[fact]
            var result: [Int] = []
            if let newest = records.last, newest.reportedAt <= now {
                // Every statement is visible: the newest per key is indexed already (same order as the scan below).
                result = timeline.newestMedication[fact].values.sorted(by: >)
            } else {
                var seen: [String] = []
                for index in records.indices.reversed() where records[index].reportedAt <= now && !seen.contains(records[index].key) {
                    seen.append(records[index].key)
                    result.append(index)
                }
            }
            currentMedicationCache[fact] = result
            return result
        }

        func isActive(_ m: MedicationRecord) -> Bool {
            m.active && m.start <= now && (m.end.map { $0 > now } ?? true)
        }

        func medicationMatches(_ m: MedicationRecord, _ filter: CompiledFilter, _ b: Bounds) -> Bool {
            if let route = filter.route, (m.route ?? "ORAL") != route { return false }
            if let minDose = filter.minDose, (m.dailyDose ?? 0) < minDose { return false }
            return m.start >= b.lower && m.start < b.upper
        }

        mutating func matchCount(_ fact: Int, _ filter: CompiledFilter, _ b: Bounds, stopAtFirst: Bool) -> Int {
            let definition = bundle.vocabulary.facts[fact]
            var count = 0
            func inWindow(_ t: Double) -> Bool { t <= now && t >= b.lower && t < b.upper }
            switch definition.kind {
            case .observation:
                let records = timeline.observations[fact]
                for index in records.indices.reversed() where inWindow(records[index].time) {
                    if count == 0 { evidence.append(.observation(fact, index)) }
                    count += 1
                    if stopAtFirst { break }
                }
            case .medication:
                for index in currentMedications(fact) {
                    let m = timeline.medications[fact][index]
                    guard isActive(m), medicationMatches(m, filter, b) else { continue }
                    if count == 0 { evidence.append(.medication(fact, index)) }
                    count += 1
                    if stopAtFirst { break }
                }
            case .administration:
                let records = timeline.administrations[fact]
                for index in records.indices.reversed() where inWindow(records[index].time) {
                    if let route = filter.route, records[index].route != route { continue }
                    if count == 0 { evidence.append(.administration(fact, index)) }
                    count += 1
                    if stopAtFirst { break }
                }
                // A medication statement can also record cobalamin given by injection.
                for index in currentMedications(fact) where count == 0 || !stopAtFirst {
                    let m = timeline.medications[fact][index]
                    guard isActive(m), medicationMatches(m, filter, b) else { continue }
                    if count == 0 { evidence.append(.medication(fact, index)) }
                    count += 1
                }
            case .condition, .symptom:
                let records = timeline.statuses[fact]
                if let index = records.lastIndex(where: { $0.reportedAt <= now }), records[index].present, inWindow(records[index].onset) {
                    evidence.append(.status(fact, index))
                    count = 1
                }
            case .reaction:
                let records = timeline.reactions[fact]
                for index in records.indices.reversed() where inWindow(records[index].time) {
                    if let after = filter.after, records[index].after != after { continue }
                    if count == 0 { evidence.append(.reaction(fact, index)) }
                    count += 1
                    if stopAtFirst { break }
                }
            }
            return count
        }

        func observationEvidence(_ definition: FactDefinition, _ record: ObservationRecord) -> Evidence {
            let value: Value
            switch record.value {
            case .number(let n): value = .quantity(n, definition.unit ?? .one)
            case .text(let t): value = .text(t)
            }
            return Evidence(
                fact: definition.name, value: value, reportedValue: record.provenance.reportedValue,
                reportedUnit: record.provenance.reportedUnit, time: record.time, event: record.provenance.event)
        }

        func medicationEvidence(_ definition: FactDefinition, _ m: MedicationRecord) -> Evidence {
            let value: Value = m.dailyDose.map { .quantity($0, definition.unit ?? .one) } ?? .text(m.active ? "active" : "stopped")
            return Evidence(
                fact: definition.name, value: value, reportedValue: m.provenance.reportedValue,
                reportedUnit: m.provenance.reportedUnit, time: m.start, event: m.provenance.event)
        }

        // MARK: - Fact functions

        mutating func latest(_ fact: Int, _ filter: CompiledFilter, asOf: Double, _ attribute: ObservationAttribute) -> Value {
            let b = bounds(filter, asOf: asOf)
            // The record is read in place: copying it (its provenance strings) cost retains and releases per read.
            guard let index = timeline.observations[fact].lastIndex(where: { $0.time <= asOf && $0.time >= b.lower && $0.time < b.upper })
            else { return .unknown }
            evidence.append(.observation(fact, index))
            let value: Value
            switch timeline.observations[fact][index].value {
            case .number(let n): value = .quantity(n, bundle.vocabulary.facts[fact].unit ?? .one)
            case .text(let t): value = .text(t)
            }
            switch attribute {
            case .value: return value
            case .time: return .time(timeline.observations[fact][index].time)
            case .age: return .quantity((now - timeline.observations[fact][index].time) / 86_400, .day)
            case .reported:
                let provenance = timeline.observations[fact][index].provenance
                let reported: String
                switch provenance.reportedValue {
                case .number(let n)?: reported = n.formatted
                case .text(let t)?: reported = t
                case nil: reported = value.display
                }
                let unit = provenance.reportedUnit.map { " \($0)" } ?? ""
                return .text(reported + unit)
            }
        }

        mutating func recordTime(_ facts: [Int], _ filter: CompiledFilter, first: Bool) -> Value {
            let b = bounds(filter)
            var best: Double?
            var bestItem: EvidenceItem?
            func consider(_ t: Double, _ item: EvidenceItem) {
                guard t <= now, t >= b.lower, t < b.upper else { return }
                if best == nil || (first ? t < best! : t > best!) {
                    best = t
                    bestItem = item
                }
            }
            for fact in facts {
                let definition = bundle.vocabulary.facts[fact]
                switch definition.kind {
                case .observation:
                    for (index, r) in timeline.observations[fact].enumerated() { consider(r.time, .observation(fact, index)) }
                case .medication, .administration:
                    for (index, m) in timeline.medications[fact].enumerated() where m.reportedAt <= now {
                        if let route = filter.route, (m.route ?? "ORAL") != route { continue }
                        if let minDose = filter.minDose, (m.dailyDose ?? 0) < minDose { continue }
                        consider(m.start, .medication(fact, index))
                    }
                    for (index, r) in timeline.administrations[fact].enumerated() {
                        if let route = filter.route, r.route != route { continue }
                        if filter.minDose != nil { continue }
                        consider(r.time, .administration(fact, index))
                    }
                case .condition, .symptom:
                    for (index, r) in timeline.statuses[fact].enumerated() where r.present && r.reportedAt <= now {
                        consider(r.onset, .status(fact, index))
                    }
                case .reaction:
                    for (index, r) in timeline.reactions[fact].enumerated() where filter.after.map({ $0 == r.after }) ?? true {
                        consider(r.time, .reaction(fact, index))
                    }
                }
            }
            guard let best else { return .unknown }
            if let bestItem { evidence.append(bestItem) }
            return .time(best)
        }

        mutating func dailyDose(_ facts: [Int], _ filter: CompiledFilter, _ unit: Unit) -> Value {
            let b = bounds(filter)
            var total = 0.0
            for fact in facts {
                for index in currentMedications(fact) {
                    let m = timeline.medications[fact][index]
                    guard isActive(m), medicationMatches(m, filter, b), let dose = m.dailyDose else { continue }
                    total += dose
                    evidence.append(.medication(fact, index))
                }
            }
            // Doses each finite can still sum past the largest number: no dose anyone takes.
            return total.isFinite ? .quantity(total, unit) : .unknown
        }

        mutating func findings(
            _ facts: [Int]?, _ filter: CompiledFilter, _ severity: DataQualityFinding.Severity?, _ asText: Bool
        ) -> Value {
            let b = bounds(filter)
            var texts: [String] = []
            for (index, finding) in timeline.findings.enumerated() where finding.time <= now && finding.time >= b.lower && finding.time < b.upper {
                if let severity, finding.severity != severity { continue }
                if let facts {
                    guard let fact = finding.fact, facts.contains(fact) else { continue }
                }
                evidence.append(.finding(index))
                if !asText { return .bool(true) }  // a condition needs no text
                let name = finding.fact.map { bundle.vocabulary.facts[$0].name } ?? finding.code
                var reported = ""
                switch finding.provenance.reportedValue {
                case .number(let n)?: reported = n.formatted
                case .text(let t)?: reported = t
                case nil: break
                }
                if let unit = finding.provenance.reportedUnit { reported += reported.isEmpty ? unit : " \(unit)" }
                texts.append("\(name)\(reported.isEmpty ? "" : " \(reported)"): \(finding.reason)")
            }
            if asText { return .text(texts.isEmpty ? "none" : texts.joined(separator: "; ")) }
            return .bool(false)
        }
    }
}
