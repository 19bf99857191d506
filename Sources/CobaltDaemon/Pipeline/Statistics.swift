import CobaltStore
import Metrics
import Synchronization

/// Counters for `status` and metrics (swift-metrics; Prometheus-style names). Created once, shared.
final class Statistics: Sendable {
    struct Snapshot: Sendable, Equatable {
        var received = 0
        var accepted = 0
        var duplicate = 0
        var rejected = 0
        /// Of `rejected`: valid events answered 503 because the journal could not be written (the store failed).
        var unavailable = 0
        var evaluated = 0
        var published = 0
        var handOffOverflows = 0
        /// How long ingest waited for evaluation to take what it had handed over (see ``HandOff``).
        var ingestWaited: Duration = .zero
        /// Patients whose timeline was built from the journal: first seen since the start, or evicted before.
        var patientsLoaded = 0
        /// Patients evicted from the cache (its bounds, `limits.patient_cache` and `limits.patient_cache_records`).
        var patientsEvicted = 0
        /// Journaled events read back to build those timelines.
        var historyEventsRead = 0

        /// What ``CachePressure`` watches.
        var cachePressure: CachePressure.Counts {
            CachePressure.Counts(evaluated: evaluated, loaded: patientsLoaded, evicted: patientsEvicted, historyRead: historyEventsRead)
        }
    }

    private let counts = Mutex(Snapshot())
    private let published = LabelledCounters("cobalt_alerts_published_total", dimensions: ["clinic", "severity", "status"])
    private let shadowAlerts = LabelledCounters("cobalt_shadow_alerts_total", dimensions: ["rule"])
    private let received = Counter(label: "cobalt_events_received_total")
    private let accepted = Counter(label: "cobalt_events_accepted_total")
    private let duplicates = Counter(label: "cobalt_events_duplicate_total")
    private let rejected = Counter(label: "cobalt_events_rejected_total")
    private let unavailable = Counter(label: "cobalt_events_unavailable_total")
    private let evaluated = Counter(label: "cobalt_events_evaluated_total")
    private let batchSize = Recorder(label: "cobalt_commit_batch_size")
    /// Per event, averaged over each evaluation batch.
    private let evaluationLatency = Timer(label: "cobalt_evaluation_duration_seconds")
    private let quarantined = Counter(label: "cobalt_events_quarantined_total")
    private let handOffOverflows = Counter(label: "cobalt_handoff_overflows_total")
    private let ingestWaited = FloatingPointCounter(label: "cobalt_ingest_waited_for_evaluation_seconds_total")
    private let patientsLoaded = Counter(label: "cobalt_patients_loaded_total")
    private let patientsEvicted = Counter(label: "cobalt_patients_evicted_total")
    private let historyEventsRead = Counter(label: "cobalt_history_events_read_total")
    private let reevaluationPause = Timer(label: "cobalt_reload_evaluation_pause_seconds")
    private let reloadDuration = Timer(label: "cobalt_reload_duration_seconds")
    private let reloads = LabelledCounters("cobalt_reloads_total", dimensions: ["outcome"], initial: [["live"], ["refused"], ["unchanged"]])

    var snapshot: Snapshot { counts.withLock { $0 } }

    func recordQuarantined(_ count: Int) {
        quarantined.increment(by: count)
    }

    /// Evaluation fell more than the hand-off's capacity behind ingest and reads the journal instead.
    func recordHandOffOverflow() {
        counts.withLock { $0.handOffOverflows += 1 }
        handOffOverflows.increment()
    }

    /// Ingest waited this long for evaluation to make room (backpressure: evaluation is the slower stage).
    func recordIngestWaited(_ duration: Duration) {
        guard duration > .zero else { return }
        counts.withLock { $0.ingestWaited += duration }
        ingestWaited.increment(by: duration.timeInterval)
    }

    /// Patients' timelines built from the journal, from this many journaled events.
    func recordPatientsLoaded(_ count: Int, events: Int) {
        counts.withLock {
            $0.patientsLoaded += count
            $0.historyEventsRead += events
        }
        patientsLoaded.increment(by: count)
        historyEventsRead.increment(by: events)
    }

    func recordPatientsEvicted(_ count: Int) {
        guard count > 0 else { return }
        counts.withLock { $0.patientsEvicted += count }
        patientsEvicted.increment(by: count)
    }

    func recordShadow(rule: String) {
        shadowAlerts.increment([rule])
    }

    /// How long event evaluation waited while open alerts were re-evaluated after a rule change.
    func recordReevaluationPause(_ pause: Duration) {
        reevaluationPause.record(duration: pause)
    }

    func recordReload(outcome: String, duration: Duration) {
        reloads.increment([outcome])
        reloadDuration.record(duration: duration)
    }

    func recordIngest(_ c: IngestProcessor.Counts, batch: Int) {
        let rejectedCount = c.invalid + c.conflict + c.tooLarge + c.unavailable
        counts.withLock {
            $0.received += batch
            $0.accepted += c.accepted
            $0.duplicate += c.duplicate
            $0.rejected += rejectedCount
            $0.unavailable += c.unavailable
        }
        received.increment(by: batch)
        accepted.increment(by: c.accepted)
        duplicates.increment(by: c.duplicate)
        rejected.increment(by: rejectedCount)
        unavailable.increment(by: c.unavailable)
        batchSize.record(batch)
    }

    func recordEvaluated(_ count: Int, duration: Duration, changes: [AlertChange]) {
        counts.withLock {
            $0.evaluated += count
            $0.published += changes.count
        }
        evaluated.increment(by: count)
        if count > 0 {  // a re-evaluation after a reload has no events; it is timed as a pause instead
            evaluationLatency.record(duration: duration / count)
        }
        guard !changes.isEmpty else { return }
        var tally: [[String]: Int] = [:]
        for change in changes { tally[[change.clinic, change.severity, change.status.rawValue], default: 0] += 1 }
        for (values, count) in tally { published.increment(values, by: count) }
    }
}

/// Counters of one label with dimensions, made once per distinct set of values: asking the metrics factory for a
/// counter costs a lock and a lookup, and these are counted per alert (or per refused handshake).
final class LabelledCounters: Sendable {
    private let label: String
    private let dimensions: [String]
    private let known: Mutex<[[String]: Counter]>

    /// `initial`: value sets made now, so that they show at zero from the start (as Prometheus advises for
    /// counters whose values are known in advance); others are made when first counted.
    init(_ label: String, dimensions: [String], initial: [[String]] = []) {
        self.label = label
        self.dimensions = dimensions
        known = Mutex(Dictionary(uniqueKeysWithValues: initial.map { ($0, Counter(label: label, dimensions: Array(zip(dimensions, $0)))) }))
    }

    /// Adds `count` to the counter whose dimension values are `values` (in the order of `dimensions`).
    func increment(_ values: [String], by count: Int = 1) {
        let counter = known.withLock { known in
            if let counter = known[values] { return counter }
            let counter = Counter(label: label, dimensions: Array(zip(dimensions, values)))
            known[values] = counter
            return counter
        }
        counter.increment(by: count)
    }
}
