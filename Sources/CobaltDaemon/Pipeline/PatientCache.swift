import CobaltStore
import RuleEngine

/// What the evaluation pipeline keeps in memory for a patient: her timeline with every journaled event applied
/// up to `lastSeq`, and her open alerts.
struct PatientEntry {
    var timeline: PatientTimeline
    /// The journal sequence number of the last event applied.
    var lastSeq: Int64
    var states: [String: AlertState]
    var lastUse: UInt64 = 0

    /// Keeps the cached alert states in step with the changes about to be committed.
    mutating func apply(_ changes: [AlertChange]) {
        for change in changes {
            switch change.status {
            case .firing, .updated:
                states[change.rule] = AlertState(
                    patient: change.patient, rule: change.rule, clinic: change.clinic, alertID: change.alertID,
                    digest: change.digest, body: change.body, severity: change.severity)
            case .resolved:
                states[change.rule] = nil
            }
        }
    }
}

/// The patients in memory, bounded two ways: by patients (`limits.patient_cache`) and by the records their
/// timelines hold (`limits.patient_cache_records`) — a timeline grows with the patient's history, so a bound on
/// patients alone leaves memory to the length of histories. The least recently used go first; an evicted
/// patient is rebuilt from the journal when her next event comes (and evaluated exactly as if she had stayed).
struct PatientCache {
    /// Most patients kept.
    let capacity: Int
    /// Most timeline records kept, over all patients.
    let recordCapacity: Int
    private var entries: [String: PatientEntry] = [:]
    /// Timeline records held by the entries in the cache (not by those taken out).
    private(set) var records = 0
    private var clock: UInt64 = 0

    init(capacity: Int, recordCapacity: Int) {
        self.capacity = max(1, capacity)
        self.recordCapacity = max(1, recordCapacity)
    }

    var count: Int { entries.count }

    /// Takes a patient's entry out: the caller then owns the only copy, mutates it in place, and puts it back.
    mutating func take(_ patient: String) -> PatientEntry? {
        guard let entry = entries.removeValue(forKey: patient) else { return nil }
        records -= entry.timeline.recordCount
        return entry
    }

    /// Puts an entry in (or back), as the most recently used.
    mutating func put(_ patient: String, _ entry: consuming PatientEntry) {
        clock += 1
        entry.lastUse = clock
        records += entry.timeline.recordCount
        if let replaced = entries.updateValue(entry, forKey: patient) { records -= replaced.timeline.recordCount }
    }

    mutating func remove(_ patient: String) { _ = take(patient) }

    mutating func removeAll() {
        entries.removeAll()
        records = 0
    }

    /// When over either bound, evicts the least recently used down to 90 % of it, so that eviction (which sorts
    /// the cache) runs once per tenth of the cache, not after every chunk.
    mutating func evictIfNeeded() {
        guard entries.count > capacity || records > recordCapacity else { return }
        let patients = capacity - capacity / 10
        let records = recordCapacity - recordCapacity / 10
        for (patient, _) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            guard entries.count > patients || self.records > records else { break }
            remove(patient)
        }
    }
}
