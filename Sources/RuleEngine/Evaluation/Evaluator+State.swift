extension Evaluator {
    /// The mutable state of one evaluation: the timeline as of `now`, derived facts set so far, and the evidence
    /// read by the rule being evaluated.
    struct State {
        let timeline: PatientTimeline
        let now: Double
        let bundle: RuleBundle
        let pregnancy: PregnancyHistory
        var derived: [Value?]
        var setBy: [String?]
        /// The evidence each derived fact was concluded from.
        var basis: [[Evidence]]
        var evidence: [Evidence] = []

        init(timeline: PatientTimeline, now: Double, bundle: RuleBundle) {
            self.timeline = timeline
            self.now = now
            self.bundle = bundle
            self.pregnancy = PregnancyHistory(timeline.pregnancy, now: now)
            self.derived = Array(repeating: nil, count: bundle.derived.count)
            self.setBy = Array(repeating: nil, count: bundle.derived.count)
            self.basis = Array(repeating: [], count: bundle.derived.count)
            evidence.reserveCapacity(32)
        }

        /// Renders a template; the facts its placeholders read count as evidence.
        mutating func render(_ template: Template) -> String {
            var out = ""
            for part in template.parts {
                switch part {
                case .text(let text): out += text
                case .code(let code): out += eval(code).display
                }
            }
            return out
        }

        mutating func eval(_ code: Code) -> Value {
            switch code {
            case .constant(let value):
                return value
            case .derived(let slot):
                let fact = bundle.derived[slot]
                let value = derived[slot] ?? fact.defaultValue
                evidence.append(Evidence(fact: fact.name, value: value, rule: setBy[slot] ?? "default"))
                evidence.append(contentsOf: basis[slot])
                return value
            case .context(let fact, let at):
                var time = now
                if let at {
                    guard case .time(let t) = eval(at) else { return .unknown }
                    time = t
                }
                return context(fact, at: time)
            case .latest(let fact, let filter, let at, let attribute):
                var asOf = now
                if let at {
                    guard case .time(let t) = eval(at) else { return .unknown }
                    asOf = min(t, now)
                }
                return latest(fact, filter, asOf: asOf, attribute)
            case .exists(let facts, let filter):
                let bounds = self.bounds(filter)
                for fact in facts where matchCount(fact, filter, bounds, stopAtFirst: true) > 0 { return .bool(true) }
                return .bool(false)
            case .count(let facts, let filter):
                let bounds = self.bounds(filter)
                return .number(Double(facts.reduce(0) { $0 + matchCount($1, filter, bounds, stopAtFirst: false) }))
            case .firstTime(let facts, let filter), .lastTime(let facts, let filter):
                var first = true
                if case .lastTime = code { first = false }
                return recordTime(facts, filter, first: first)
            case .dailyDose(let facts, let filter, let unit):
                return dailyDose(facts, filter, unit)
            case .findings(let facts, let filter, let severity, let asText):
                return findings(facts, filter, severity, asText)
            case .known(let inner):
                return .bool(!eval(inner).isUnknown)
            case .isUnknown(let inner):
                return .bool(eval(inner).isUnknown)
            case .earliest(let codes):
                var best: Double?
                for code in codes {
                    if case .time(let t) = eval(code), best.map({ t < $0 }) ?? true { best = t }
                }
                return best.map { .time($0) } ?? .unknown
            case .coalesce(let codes):
                for code in codes {
                    let value = eval(code)
                    if !value.isUnknown { return value }
                }
                return .unknown
            case .minimum(let codes), .maximum(let codes):
                var best: Value?
                let wantLess: ComparisonOperator
                if case .minimum = code { wantLess = .less } else { wantLess = .greater }
                for code in codes {
                    let value = eval(code)
                    if value.isUnknown { return .unknown }
                    if let current = best {
                        if case .bool(true) = Evaluator.compare(wantLess, value, current) { best = value }
                    } else {
                        best = value
                    }
                }
                return best ?? .unknown
            case .not(let inner):
                switch eval(inner) {
                case .bool(let b): return .bool(!b)
                default: return .unknown
                }
            case .and(let terms):
                var sawUnknown = false
                for term in terms {
                    switch eval(term) {
                    case .bool(false): return .bool(false)
                    case .bool(true): continue
                    default: sawUnknown = true
                    }
                }
                return sawUnknown ? .unknown : .bool(true)
            case .or(let terms):
                var sawUnknown = false
                for term in terms {
                    switch eval(term) {
                    case .bool(true): return .bool(true)
                    case .bool(false): continue
                    default: sawUnknown = true
                    }
                }
                return sawUnknown ? .unknown : .bool(false)
            case .compare(let op, let lhs, let rhs):
                return Evaluator.compare(op, eval(lhs), eval(rhs))
            case .arithmetic(let op, let lhs, let rhs):
                return Evaluator.arithmetic(op, eval(lhs), eval(rhs))
            case .negate(let inner):
                return Evaluator.negate(eval(inner))
            case .template(let template):
                return .text(render(template))
            case .member(let element, let collection, let negated):
                guard case .text(let text) = eval(element), case .textSet(let set) = eval(collection) else { return .unknown }
                return .bool(set.contains(text) != negated)
            }
        }

        // MARK: - Context

        mutating func context(_ fact: ContextFact, at t: Double) -> Value {
            switch fact {
            case .now:
                return .time(now)
            case .diet:
                guard let record = timeline.diet.last(where: { $0.provenance.time <= t }) else { return .unknown }
                evidence.append(Evidence(fact: "diet", value: .text(record.value), time: record.provenance.time, event: record.provenance.event))
                return .text(record.value)
            case .preferences:
                guard let record = timeline.preferences.last(where: { $0.provenance.time <= t }) else { return .textSet([]) }
                let value = Value.textSet(Set(record.values))
                evidence.append(Evidence(fact: "preferences", value: value, time: record.provenance.time, event: record.provenance.event))
                return value
            default:
                break
            }
            guard let state = pregnancy.state(at: t) else { return .unknown }
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
            if !value.isUnknown {
                evidence.append(Evidence(fact: fact.rawValue, value: value, time: t == now ? nil : t, event: state.episode?.provenance.event))
            }
            return value
        }

        // MARK: - Filters

        struct Bounds {
            var lower = -Double.infinity
            var upper = Double.infinity  // exclusive
        }

        mutating func bounds(_ filter: Filter, asOf: Double? = nil) -> Bounds {
            var b = Bounds()
            if filter.isEmpty { return b }
            if let since = filter.since, case .time(let t) = eval(since) { b.lower = max(b.lower, t) }
            if let before = filter.before, case .time(let t) = eval(before) { b.upper = min(b.upper, t) }
            if let within = filter.within, case .quantity(let d, let u) = eval(within), let seconds = u.convert(d, to: .second) {
                b.lower = max(b.lower, (asOf ?? now) - seconds)
            }
            return b
        }

        /// Medication statements in force at `now`: the newest statement per key.
        func currentMedications(_ fact: Int) -> [MedicationRecord] {
            let records = timeline.medications[fact]
            var seen: [String] = []
            var result: [MedicationRecord] = []
            for record in records.reversed() where record.reportedAt <= now && !seen.contains(record.key) {
                seen.append(record.key)
                result.append(record)
            }
            return result
        }

        func isActive(_ m: MedicationRecord) -> Bool {
            m.active && m.start <= now && (m.end.map { $0 > now } ?? true)
        }

        func medicationMatches(_ m: MedicationRecord, _ filter: Filter, _ b: Bounds) -> Bool {
            if let route = filter.route, (m.route ?? "ORAL") != route { return false }
            if let minDose = filter.minDose, (m.dailyDose ?? 0) < minDose { return false }
            return m.start >= b.lower && m.start < b.upper
        }

        /// The latest statement of a condition or symptom at `now`, when it says present/active.
        func currentStatus(_ fact: Int) -> StatusRecord? {
            guard let record = timeline.statuses[fact].last(where: { $0.reportedAt <= now }), record.present else { return nil }
            return record
        }

        mutating func matchCount(_ fact: Int, _ filter: Filter, _ b: Bounds, stopAtFirst: Bool) -> Int {
            let definition = bundle.vocabulary.facts[fact]
            var count = 0
            func inWindow(_ t: Double) -> Bool { t <= now && t >= b.lower && t < b.upper }
            switch definition.kind {
            case .observation:
                for record in timeline.observations[fact].reversed() where inWindow(record.time) {
                    if count == 0 { evidence.append(observationEvidence(definition, record)) }
                    count += 1
                    if stopAtFirst { break }
                }
            case .medication:
                for m in currentMedications(fact) where isActive(m) && medicationMatches(m, filter, b) {
                    if count == 0 { evidence.append(medicationEvidence(definition, m)) }
                    count += 1
                    if stopAtFirst { break }
                }
            case .administration:
                for record in timeline.administrations[fact].reversed() where inWindow(record.time) {
                    if let route = filter.route, record.route != route { continue }
                    if count == 0 {
                        evidence.append(Evidence(
                            fact: definition.name, value: .text(record.route ?? "given"), time: record.time, event: record.provenance.event))
                    }
                    count += 1
                    if stopAtFirst { break }
                }
                // A medication statement can also record cobalamin given by injection.
                for m in currentMedications(fact) where count == 0 || !stopAtFirst {
                    guard isActive(m), medicationMatches(m, filter, b) else { continue }
                    if count == 0 { evidence.append(medicationEvidence(definition, m)) }
                    count += 1
                }
            case .condition, .symptom:
                if let record = currentStatus(fact), inWindow(record.onset) {
                    evidence.append(Evidence(
                        fact: definition.name, value: .text(definition.kind == .condition ? "active" : "present"),
                        time: record.onset, event: record.provenance.event))
                    count = 1
                }
            case .reaction:
                for record in timeline.reactions[fact].reversed() where inWindow(record.time) {
                    if let after = filter.after, record.after != after { continue }
                    if count == 0 {
                        evidence.append(Evidence(
                            fact: definition.name, value: .text(record.after.map { "after \($0)" } ?? "recorded"), time: record.time,
                            event: record.provenance.event))
                    }
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

        mutating func latest(_ fact: Int, _ filter: Filter, asOf: Double, _ attribute: ObservationAttribute) -> Value {
            let definition = bundle.vocabulary.facts[fact]
            let b = bounds(filter, asOf: asOf)
            guard let record = timeline.observations[fact].last(where: { $0.time <= asOf && $0.time >= b.lower && $0.time < b.upper })
            else { return .unknown }
            let item = observationEvidence(definition, record)
            evidence.append(item)
            switch attribute {
            case .value: return item.value
            case .time: return .time(record.time)
            case .age: return .quantity((now - record.time) / 86_400, .day)
            case .reported:
                let reported: String
                switch record.provenance.reportedValue {
                case .number(let n)?: reported = n.formatted
                case .text(let t)?: reported = t
                case nil: reported = item.value.display
                }
                let unit = record.provenance.reportedUnit.map { " \($0)" } ?? ""
                return .text(reported + unit)
            }
        }

        mutating func recordTime(_ facts: [Int], _ filter: Filter, first: Bool) -> Value {
            let b = bounds(filter)
            var best: Double?
            var bestEvidence: Evidence?
            func consider(_ t: Double, _ e: @autoclosure () -> Evidence) {
                guard t <= now, t >= b.lower, t < b.upper else { return }
                if best == nil || (first ? t < best! : t > best!) {
                    best = t
                    bestEvidence = e()
                }
            }
            for fact in facts {
                let definition = bundle.vocabulary.facts[fact]
                switch definition.kind {
                case .observation:
                    for r in timeline.observations[fact] { consider(r.time, observationEvidence(definition, r)) }
                case .medication, .administration:
                    for m in timeline.medications[fact] where m.reportedAt <= now {
                        if let route = filter.route, (m.route ?? "ORAL") != route { continue }
                        if let minDose = filter.minDose, (m.dailyDose ?? 0) < minDose { continue }
                        consider(m.start, medicationEvidence(definition, m))
                    }
                    for r in timeline.administrations[fact] {
                        if let route = filter.route, r.route != route { continue }
                        if filter.minDose != nil { continue }
                        consider(r.time, Evidence(fact: definition.name, value: .text(r.route ?? "given"), time: r.time, event: r.provenance.event))
                    }
                case .condition, .symptom:
                    for r in timeline.statuses[fact] where r.present && r.reportedAt <= now {
                        consider(r.onset, Evidence(fact: definition.name, value: .text("present"), time: r.onset, event: r.provenance.event))
                    }
                case .reaction:
                    for r in timeline.reactions[fact] where filter.after.map({ $0 == r.after }) ?? true {
                        consider(r.time, Evidence(fact: definition.name, value: .text("recorded"), time: r.time, event: r.provenance.event))
                    }
                }
            }
            guard let best else { return .unknown }
            if let bestEvidence { evidence.append(bestEvidence) }
            return .time(best)
        }

        mutating func dailyDose(_ facts: [Int], _ filter: Filter, _ unit: Unit) -> Value {
            let b = bounds(filter)
            var total = 0.0
            for fact in facts {
                let definition = bundle.vocabulary.facts[fact]
                for m in currentMedications(fact) where isActive(m) && medicationMatches(m, filter, b) {
                    guard let dose = m.dailyDose else { continue }
                    total += dose
                    evidence.append(medicationEvidence(definition, m))
                }
            }
            return .quantity(total, unit)
        }

        mutating func findings(
            _ facts: [Int]?, _ filter: Filter, _ severity: DataQualityFinding.Severity?, _ asText: Bool
        ) -> Value {
            let b = bounds(filter)
            var texts: [String] = []
            for finding in timeline.findings where finding.time <= now && finding.time >= b.lower && finding.time < b.upper {
                if let severity, finding.severity != severity { continue }
                if let facts {
                    guard let fact = finding.fact, facts.contains(fact) else { continue }
                }
                let name = finding.fact.map { bundle.vocabulary.facts[$0].name } ?? finding.code
                var reported = ""
                switch finding.provenance.reportedValue {
                case .number(let n)?: reported = n.formatted
                case .text(let t)?: reported = t
                case nil: break
                }
                if let unit = finding.provenance.reportedUnit { reported += reported.isEmpty ? unit : " \(unit)" }
                evidence.append(Evidence(
                    fact: name, value: .text(finding.severity.rawValue), reportedValue: finding.provenance.reportedValue,
                    reportedUnit: finding.provenance.reportedUnit, time: finding.time, event: finding.provenance.event,
                    note: finding.reason))
                texts.append("\(name)\(reported.isEmpty ? "" : " \(reported)"): \(finding.reason)")
                if !asText { return .bool(true) }
            }
            if asText { return .text(texts.isEmpty ? "none" : texts.joined(separator: "; ")) }
            return .bool(false)
        }
    }
}
