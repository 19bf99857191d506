import CobaltStore
import RuleEngine

/// What the evaluation pipeline keeps in memory for a patient: her timeline with every journaled event applied
/// up to `lastSeq`, and her open alerts.
///
/// A class, owned by one place at a time (the cache, or the shard evaluating her events, which takes it out and
/// puts it back): handing it over is one reference, where a struct was copied field by field (about seventeen
/// retains and releases) each time it moved between the cache, a shard and back.
final class PatientEntry {
    var timeline: PatientTimeline
    /// The journal sequence number of the last event applied.
    var lastSeq: Int64
    var states: [String: AlertState]
    /// The digests of her alerts as last computed, so that an alert firing unchanged is not hashed again.
    var digests = DigestMemo()
    var lastUse: UInt64 = 0

    init(timeline: PatientTimeline, lastSeq: Int64, states: [String: AlertState]) {
        self.timeline = timeline
        self.lastSeq = lastSeq
        self.states = states
    }

    /// Keeps the cached alert states in step with the changes about to be committed.
    func apply(_ changes: [AlertChange]) {
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

    /// Takes a patient's entry out: the caller then owns it, mutates it in place, and puts it back.
    mutating func take(_ patient: String) -> PatientEntry? {
        guard let entry = entries.removeValue(forKey: patient) else { return nil }
        records -= entry.timeline.recordCount
        return entry
    }

    /// Puts an entry in (or back), as the most recently used.
    mutating func put(_ patient: String, _ entry: PatientEntry) {
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
    /// the cache) runs once per tenth of the cache, not after every chunk. Returns how many patients it evicted.
    @discardableResult
    mutating func evictIfNeeded() -> Int {
        guard entries.count > capacity || records > recordCapacity else { return 0 }
        let patients = capacity - capacity / 10
        let records = recordCapacity - recordCapacity / 10
        var evicted = 0
        for (patient, _) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            guard entries.count > patients || self.records > records else { break }
            remove(patient)
            evicted += 1
        }
        return evicted
    }
}

/// Tells when the patient cache is too small for the patients in play, once per window, from the counters.
///
/// A patient evicted from the cache is rebuilt from the journal on her next event, which costs a pass over her
/// whole history: the price of a cache smaller than the patients sending events (the working set) is paid again
/// on every event, and evaluation slows with the length of the histories (in `DaemonLoad`, 1,000 patients with
/// 200 events each in a cache of 2,000,000 records: from about 18,000 to about 200 events/s). Nothing is lost
/// or evaluated differently; it is only slow, so it has to be said. After a start every patient is loaded once,
/// which is not thrashing: the warning needs evictions in the same window. Windows are short (10 s), so that a
/// cache that starts thrashing is noticed soon, and warnings are at least a minute apart.
struct CachePressure {
    struct Counts: Equatable {
        var evaluated = 0
        var loaded = 0
        var evicted = 0
        var historyRead = 0
    }

    /// What a window that thrashed saw.
    struct Warning: Equatable {
        var window: Duration
        var counts: Counts
    }

    /// The span each check covers.
    let window: Duration
    /// The shortest time between two warnings.
    let quiet: Duration
    /// Patients rebuilt per evaluated event, at least, for a window to count as thrashing.
    static let threshold = 0.1
    private var start: (at: ContinuousClock.Instant, totals: Counts)?
    private var lastWarning: ContinuousClock.Instant?

    init(window: Duration = .seconds(10), quiet: Duration = .seconds(60)) {
        self.window = window
        self.quiet = quiet
    }

    /// Takes the running totals; when a window has just ended and thrashed, returns what it saw, unless a warning
    /// was given less than `quiet` ago.
    mutating func check(_ totals: Counts, at now: ContinuousClock.Instant) -> Warning? {
        guard let start else {
            self.start = (now, totals)
            return nil
        }
        guard now - start.at >= window else { return nil }
        self.start = (now, totals)
        let seen = Counts(
            evaluated: totals.evaluated - start.totals.evaluated, loaded: totals.loaded - start.totals.loaded,
            evicted: totals.evicted - start.totals.evicted, historyRead: totals.historyRead - start.totals.historyRead)
        let thrashed = seen.evicted > 0 && seen.evaluated > 0 && Double(seen.loaded) >= Self.threshold * Double(seen.evaluated)
        guard thrashed, lastWarning.map({ now - $0 >= quiet }) ?? true else { return nil }
        lastWarning = now
        return Warning(window: now - start.at, counts: seen)
    }
}
