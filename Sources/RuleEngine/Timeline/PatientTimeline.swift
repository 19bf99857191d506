/// Everything known about one patient: normalised records per fact, sorted by time.
///
/// Evaluation reads it "as of" a time: records later than that are invisible, so a result for any past moment
/// is reproducible.
package struct PatientTimeline: Sendable {
    package let patient: String
    package var clinic: String
    package var observations: [[ObservationRecord]]
    /// Only ``apply(_:)`` changes it, so that ``newestMedication`` stays in step.
    package private(set) var medications: [[MedicationRecord]]
    /// Per fact, the index in `medications` of the newest statement of each medication key, kept up to date as
    /// statements arrive: the medications in force as of the latest statement (the daemon's case) are then read
    /// without a pass over every statement ever made, which grows with the patient's history.
    package private(set) var newestMedication: [[String: Int]]
    package var administrations: [[AdministrationRecord]]
    package var statuses: [[StatusRecord]]
    package var reactions: [[ReactionRecord]]
    package var findings: [DataQualityFinding] = []
    /// Only ``apply(_:)`` changes it, so that ``pregnancyHistory`` stays in step.
    package private(set) var pregnancy: [PregnancyRecord] = []
    /// The history built from every report in `pregnancy`, kept up to date as reports arrive: evaluating as of
    /// the latest report or later (the daemon's case) then needs no rebuild, which otherwise costs a pass over the
    /// whole pregnancy history for every event.
    package private(set) var pregnancyHistory = PregnancyHistory([], now: 0)
    package var diet: [(value: String, provenance: Provenance)] = []
    package var preferences: [(values: [String], provenance: Provenance)] = []
    /// Time of the latest event applied.
    package var lastEventTime: Double = -.infinity
    /// Records held, of every kind: what the timeline costs in memory grows with it.
    package private(set) var recordCount = 0

    package init(patient: String, clinic: String, factCount: Int) {
        self.patient = patient
        self.clinic = clinic
        observations = Array(repeating: [], count: factCount)
        medications = Array(repeating: [], count: factCount)
        newestMedication = Array(repeating: [:], count: factCount)
        administrations = Array(repeating: [], count: factCount)
        statuses = Array(repeating: [], count: factCount)
        reactions = Array(repeating: [], count: factCount)
    }

    /// Adds a normalised event's records.
    package mutating func apply(_ event: NormalisedEvent) {
        let e = event.event
        clinic = e.clinic
        lastEventTime = max(lastEventTime, e.time)
        recordCount += event.observations.count + event.medications.count + event.administrations.count
            + event.statuses.count + event.reactions.count + event.findings.count
            + (e.pregnancy == nil ? 0 : 1) + (e.diet == nil ? 0 : 1) + (e.preferences == nil ? 0 : 1)
        for (fact, record) in event.observations { Self.insert(record, into: &observations[fact]) { $0.time } }
        for (fact, record) in event.medications {
            let index = Self.insert(record, into: &medications[fact]) { $0.reportedAt }
            if index == medications[fact].count - 1 {
                newestMedication[fact][record.key] = index  // the usual case: the newest statement
            } else {
                // A statement that arrived late moved the later ones up by one; it is the newest of its key only
                // if no later statement has that key. (Indexing every statement again cost a pass over the
                // patient's whole medication history per late event: 5 % of evaluation when events arrived
                // out of order in the load benchmark.)
                newestMedication[fact] = newestMedication[fact].mapValues { $0 >= index ? $0 + 1 : $0 }
                if (newestMedication[fact][record.key] ?? -1) < index { newestMedication[fact][record.key] = index }
            }
        }
        for (fact, record) in event.administrations { Self.insert(record, into: &administrations[fact]) { $0.time } }
        for (fact, record) in event.statuses { Self.insert(record, into: &statuses[fact]) { $0.reportedAt } }
        for (fact, record) in event.reactions { Self.insert(record, into: &reactions[fact]) { $0.time } }
        for finding in event.findings { Self.insert(finding, into: &findings) { $0.time } }
        let provenance = Provenance(event: e.id, time: e.time)
        if let p = e.pregnancy {
            let record = PregnancyRecord(
                status: p.status, gestationWeeks: p.gestationWeeks, deliveryDate: p.deliveryDate,
                breastfeeding: p.breastfeeding, fetuses: p.fetuses, provenance: provenance)
            let appended = pregnancy.last.map { $0.time <= record.time } ?? true
            Self.insert(record, into: &pregnancy) { $0.time }
            if appended {
                pregnancyHistory.add(record)  // the usual case
            } else {
                pregnancyHistory = PregnancyHistory(pregnancy, now: .infinity)  // a report that arrived late: rebuild
            }
        }
        if let d = e.diet { Self.insert((d, provenance), into: &diet) { $0.provenance.time } }
        if let p = e.preferences { Self.insert((p, provenance), into: &preferences) { $0.provenance.time } }
    }

    /// Inserts keeping the array sorted by `time`; equal times keep arrival order. Events mostly arrive in
    /// order, so this is usually an append. Returns where the item went. Otherwise the place is found by binary
    /// search (a walk back from the end made each late record cost the records after it: one patient's events of
    /// 2,500 observations each, out of order, held up every clinic's alerts for seconds once she had 150,000).
    @discardableResult
    private static func insert<T>(_ item: T, into array: inout [T], time: (T) -> Double) -> Int {
        let t = time(item)
        guard let last = array.last, time(last) > t else {
            array.append(item)  // `insert(_:at:)` at the end still took the general replace-a-range path
            return array.count - 1
        }
        // The first index whose time is later than `t` (after every equal one).
        var low = 0, high = array.count - 1
        while low < high {
            let middle = (low + high) / 2
            if time(array[middle]) > t { high = middle } else { low = middle + 1 }
        }
        array.insert(item, at: low)
        return low
    }
}
