import CobaltStore
import Foundation
import Logging
import RuleEngine

/// Evaluates journaled events once each, in journal order, and publishes the alert changes.
///
/// The journal is the queue: on start (and after a crash) the pipeline first evaluates every journaled but
/// unevaluated event; afterwards ingest hands it each commit's events, decoded, through a bounded ``HandOff``
/// (falling back to the journal when that overflows). Alert log rows and the evaluation watermark of a batch
/// commit in one transaction, so after `kill -9` no alert change is committed twice and nothing acknowledged is
/// skipped (chunks that change nothing may leave the watermark behind; see ``watermarkDeferral``). Memory is
/// bounded by configuration: ``PatientCache`` keeps at most so many patients and so many timeline records; others
/// are rebuilt from the journal when needed.
actor EvaluationPipeline {
    /// What a re-evaluation after a rule change did, and how long event evaluation waited for it.
    struct Reevaluation: Sendable {
        var patients: Int
        var changes: Int
        /// The longest time event evaluation waited for one chunk.
        var pause: Duration
    }

    /// Time budget of one re-evaluation chunk: bounds how long events wait behind a re-evaluation, whatever the
    /// size of the rule set (at least one patient per chunk).
    static let reevaluationBudget: Duration = .milliseconds(20)

    /// Evaluation work per transaction: a batch is committed after this long (at least one event), so that the
    /// one SQLite writer is never held long by evaluation — ingest's commits (and so ACKs) wait for it — and
    /// other work queued for the pipeline (a reload's re-evaluation) runs between commits.
    static let commitBudget: Duration = .milliseconds(2)

    /// Evaluation work per transaction while catching up: when more events are waiting than one ``commitBudget``
    /// chunk holds, acknowledgements are already queueing behind the backlog, and fewer, larger transactions
    /// evaluate it sooner. Measured on the 100,000-event burst from one client (docs/benchmarks.md, session 4):
    /// all evaluated 7.9–8.3 s after the first send, against 9.7–9.9 s with 2 ms chunks, with 8–14 % less CPU
    /// (from four clients, within the noise). At the steady rates of the latency scenarios nothing waits, and
    /// chunks stay at ``commitBudget``.
    static let backlogCommitBudget: Duration = .milliseconds(10)

    /// The pipeline's own work queue, for work it puts back behind what has arrived (a re-evaluation's next chunk,
    /// a retry after a failure).
    private let requeue: AsyncStream<Work>.Continuation

    /// Work for the pipeline's loop. Only the loop evaluates, one item at a time: actor methods can interleave at
    /// every `await`, so two drains started from different places would evaluate the same events twice.
    enum Work: Sendable {
        /// New events were journaled.
        case events
        /// The rules changed: re-evaluate patients with open alerts, a chunk at a time. The continuation (a
        /// reload waiting) hears how it went; a failed re-evaluation is tried again until it succeeds.
        case reevaluate(CheckedContinuation<Reevaluation, any Error>?)
        /// The next chunk of a re-evaluation, queued behind the event work that arrived meanwhile.
        case reevaluateRemaining(ReevaluationProgress)
        /// The journal committed again after failing (a full disk freed): a scheduled evaluation retry runs now,
        /// not when its back-off (up to ``retryLimit``) ends.
        case storeWritable
    }

    /// Patients with open alerts read from the store at a time for a re-evaluation: memory stays bounded
    /// however many patients have open alerts.
    static let reevaluationPage = 1_000

    /// A re-evaluation in progress: the patients left in the page read last, whether more may follow it, and
    /// what has been done so far.
    struct ReevaluationProgress: Sendable {
        var remaining: [(patient: String, clinic: String)]
        /// The last patient of the page read last, or nil when that page was the last.
        var nextAfter: String?
        var done: Reevaluation
        var continuation: CheckedContinuation<Reevaluation, any Error>?
        /// The rule set it started under, and its generation (``RulesHolder``): recorded as re-evaluated at the
        /// end only if that generation is still running, with no swap announced (so every chunk ran under it, and
        /// no reload's forgetting can land before the record).
        var ruleSet: String
        var generation: UInt64
    }

    private let store: any CobaltStore
    /// Where alert changes are committed: the daemon's journal thread (``JournalQueue``), or the store.
    private let committer: any EvaluationCommitting
    private let handOff: HandOff
    /// Whether journaled events may be missing from the hand-off: at start, after it overflowed, after a failure.
    private var readJournal = true
    private let rules: RulesHolder
    private let publisher: Publisher
    private let batchSize: Int
    /// Parallel evaluation shards (by patient).
    private let workers: Int
    /// Events per transaction, adjusted to take about ``commitBudget``, and about ``backlogCommitBudget``.
    private var chunkSize = 32
    private var backlogChunkSize = 32
    private var perEventEstimate: Duration = .zero
    /// Events evaluated without changes since the watermark was last committed, and since when.
    private var deferredEvents = 0
    private var deferredSince = ContinuousClock.now

    /// A chunk that changes no alert commits nothing: the watermark waits for the next commit, at most this many
    /// events or ``watermarkDeferralTime``. Safe because evaluation is deterministic: after a crash, those events
    /// are evaluated again against the same stored alert states and change nothing again. It saves a transaction
    /// and an fsync for most chunks at moderate rates.
    static let watermarkDeferral = 2_000
    static let watermarkDeferralTime: Duration = .seconds(1)
    private let logger: Logger
    private let statistics: Statistics
    private var cache: PatientCache
    private var cachePressure = CachePressure()
    /// The vocabulary the cached timelines were built with.
    private var cachedVocabulary: String?
    /// Every event up to this one is evaluated and its alert changes committed (or it changed nothing): what
    /// `status` reports.
    private(set) var lastEvaluated: Int64 = 0
    /// Every event up to this one is evaluated in memory: ahead of ``lastEvaluated`` while ``inFlight`` commits.
    private var cursor: Int64 = 0
    /// The commits of chunks that changed alerts, oldest first, running while later chunks are evaluated (see
    /// ``evaluate(_:)``). Each waits for the one before it to succeed before it writes, and publishes its alerts
    /// itself, so commits — the per-clinic sequence numbers they assign, and what subscribers receive — stay in
    /// journal order, and nothing commits after a commit that failed.
    private var inFlight: [InFlightCommit] = []
    /// Commits queued at most: evaluation waits for the oldest only when this many are waiting. With one, the
    /// pipeline stalled whenever a commit (queued on the one SQLite writer behind a journal transaction, then an
    /// fsync) took longer than evaluating the next chunk: 17 % of the time under saturating load.
    static let commitsInFlight = 4

    private struct InFlightCommit {
        let task: Task<Void, any Error>
        /// Where evaluation starts again if it fails: the cursor before its chunk.
        let restart: Int64
        /// Evaluated through this event once it succeeds: its chunk, then chunks after it that changed nothing.
        var through: Int64
        /// Events evaluated (its chunk and those after it) and how long that took: counted once it succeeds,
        /// since if it fails they are evaluated again.
        var events: Int
        var evaluation: Duration
        let changes: [AlertChange]
    }

    init(
        store: any CobaltStore, committer: (any EvaluationCommitting)? = nil, handOff: HandOff, rules: RulesHolder,
        publisher: Publisher, cacheCapacity: Int,
        cacheRecords: Int = .max, batchSize: Int,
        workers: Int = 1,
        statistics: Statistics, logger: Logger, requeue: AsyncStream<Work>.Continuation
    ) {
        self.requeue = requeue
        self.store = store
        self.committer = committer ?? store
        self.handOff = handOff
        self.rules = rules
        self.publisher = publisher
        cache = PatientCache(capacity: cacheCapacity, recordCapacity: cacheRecords)
        self.batchSize = batchSize
        self.workers = max(1, workers)
        self.statistics = statistics
        self.logger = logger
    }

    /// Evaluates everything journaled and not yet evaluated, then handles work items in order until `work`
    /// finishes; then drains once more and returns.
    func run(work: AsyncStream<Work>) async {
        await drainLogged()
        // Open alerts last re-evaluated under other rules (the rules changed while the daemon was down, or a
        // reload's re-evaluation never finished): re-evaluated before anything else is queued behind them.
        await startReevaluation(nil, onlyIfStale: true)
        for await item in work {
            switch item {
            case .events:
                // While a retry is scheduled, new events wait for it (they would fail the same way, each time
                // reading the journal again and logging another error).
                if !retryPending { await drainLogged() }
            case .reevaluate(let continuation):
                if continuation == nil { reevaluationRetryPending = false }
                await startReevaluation(continuation)
            case .reevaluateRemaining(let progress):
                await reevaluate(progress)
            case .storeWritable:
                guard retryPending else { continue }
                retryDue(retryTicket)
                nextRetry = Self.retryDelay
                await drainLogged()
            }
        }
        await drainLogged()
        await commitDeferredWatermark()
    }

    /// Commits a watermark left behind by chunks that changed nothing (on the way out).
    private func commitDeferredWatermark() async {
        guard deferredEvents > 0 else { return }
        do {
            _ = try await committer.commitEvaluations([], through: lastEvaluated, at: Timestamp.formatMilliseconds(Date().timeIntervalSince1970))
            deferredEvents = 0
        } catch {
            logger.warning("the evaluation watermark was not saved; some events will be evaluated again at start", metadata: ["error": "\(error)"])
        }
    }

    /// After a failed evaluation (the store could not be read or written), the pipeline tries again after this
    /// long, then twice as long each time up to ``retryLimit``, without waiting for a new event: acknowledged
    /// events must not wait for the next sender to be evaluated.
    static let retryDelay: Duration = .milliseconds(500)
    static let retryLimit: Duration = .seconds(30)
    private var nextRetry = retryDelay
    private var retryPending = false
    /// Which scheduled retry is the current one: a retry run early (``Work/storeWritable``) makes its timer's stale.
    private var retryTicket = 0

    private func drainLogged() async {
        do {
            try await drain()
            nextRetry = Self.retryDelay
        } catch {
            cache.removeAll()
            readJournal = true
            guard !retryPending else {
                logger.error("evaluation failed; a retry is scheduled", metadata: ["error": "\(error)"])
                return
            }
            let delay = nextRetry
            nextRetry = min(nextRetry * 2, Self.retryLimit)
            retryPending = true
            logger.error("evaluation failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
            // One retry pending at a time; the loop evaluates it in turn, like any other work.
            let ticket = retryTicket
            Task {
                try? await Task.sleep(for: delay)
                if await self.retryDue(ticket) { requeue.yield(.events) }
            }
        }
    }

    /// Ends the pending retry if `ticket` is still the current one; returns whether it was.
    @discardableResult
    private func retryDue(_ ticket: Int) -> Bool {
        guard ticket == retryTicket, retryPending else { return false }
        retryTicket += 1
        retryPending = false
        return true
    }

    /// Whether ``lastEvaluated`` holds the store's watermark yet.
    private var watermarkRead = false

    /// Reads the store's watermark once. Until it has been read nothing is evaluated or re-evaluated: from 0, a
    /// re-evaluation would judge every patient with open alerts on an empty history (her events before seq 1) —
    /// resolving her alerts, then raising them again as new with her next event — and `status` would count every
    /// journaled event as unevaluated. A failure is retried like any failed evaluation (``drainLogged()``). (It used
    /// to be read once at start, and a failure left it at 0.)
    private func readWatermarkIfNeeded() async throws {
        guard !watermarkRead else { return }
        lastEvaluated = try await store.evaluatedThrough()
        cursor = lastEvaluated
        watermarkRead = true
    }

    /// Evaluates all unevaluated events, in journal order, and waits for the last commit. Called only from the loop
    /// (see ``Work``), so no commit is in flight when other work runs.
    private func drain() async throws {
        try await readWatermarkIfNeeded()
        do {
            try await evaluateUnevaluated()
            try await finishCommits()
        } catch {
            // Chunks in flight may still have committed; if so, they count.
            try? await finishCommits()
            throw error
        }
    }

    private func evaluateUnevaluated() async throws {
        while true {
            if readJournal {
                while true {
                    let stored = try await store.unevaluated(after: cursor, limit: batchSize)
                    guard !stored.isEmpty else { break }
                    let bundle = rules.snapshot
                    try await evaluateAll(ArraySlice(stored.map { Self.journaled($0, vocabulary: bundle.vocabulary, hash: bundle.vocabularyHash) }))
                }
                readJournal = false
            }
            let (handed, overflowed, waited) = handOff.take()
            statistics.recordIngestWaited(waited)
            // Anything already read from the journal is skipped (sequence numbers only grow).
            let fresh = handed.drop { $0.seq <= cursor }
            if !fresh.isEmpty { try await evaluateAll(fresh) }
            if overflowed {
                // Ingest left out the events after these (no room); they are in the journal.
                statistics.recordHandOffOverflow()
                readJournal = true
                continue
            }
            guard !fresh.isEmpty else { return }
        }
    }

    /// Evaluates events in order, a transaction at a time (see ``commitBudget``).
    private func evaluateAll(_ events: ArraySlice<JournaledEvent>) async throws {
        var rest = events
        while !rest.isEmpty {
            rest = rest.dropFirst(try await evaluate(rest.prefix(batchSize)))
        }
    }

    /// A journal row as the pipeline evaluates it.
    static func journaled(_ stored: StoredEvent, vocabulary: Vocabulary, hash: String) -> JournaledEvent {
        JournaledEvent(
            seq: stored.seq, patient: stored.patient, clinic: stored.clinic,
            event: decode(stored.body).map { NormalisedEvent($0, vocabulary: vocabulary) }, vocabularyHash: hash)
    }

    /// Evaluates the first events of `batch` — about ``commitBudget`` of work (``backlogCommitBudget`` when more
    /// than that is waiting), at least one event — and commits them; returns how many.
    ///
    /// Patients are independent, so the events are split into ``workers`` shards by patient and evaluated in
    /// parallel (a patient's events stay in one shard, in journal order); the changes are then committed in journal
    /// order, so sequence numbers come out exactly as from a single worker.
    ///
    /// A chunk that changes alerts is committed while the next ones are evaluated (``inFlight``).
    private func evaluate(_ batch: ArraySlice<JournaledEvent>) async throws -> Int {
        let bundle = rules.snapshot
        if cachedVocabulary != bundle.vocabularyHash {
            // A new vocabulary may map codes differently: rebuild timelines from the journal.
            cache.removeAll()
            cachedVocabulary = bundle.vocabularyHash
        }
        let started = ContinuousClock.now
        let chunk = Array(batch.prefix(batch.count > chunkSize ? backlogChunkSize : chunkSize))
        let shards = (0..<min(workers, chunk.count)).map { _ in Shard() }
        func shard(_ patient: String) -> Shard {
            shards.count == 1 ? shards[0] : shards[Int(UInt(bitPattern: patient.hashValue) % UInt(shards.count))]
        }
        var cold: [(patient: String, clinic: String)] = []
        var seenCold: Set<String> = []
        for (offset, event) in chunk.enumerated() {
            let shard = shard(event.patient)
            shard.events.append((offset, event))
            // Taken out of the cache, so that the shard is its only owner while it mutates it.
            if let cached = cache.take(event.patient) {
                shard.entries[event.patient] = cached
            } else if shard.entries[event.patient] == nil, seenCold.insert(event.patient).inserted {
                cold.append((event.patient, event.clinic))
            }
        }
        if !cold.isEmpty {
            // Patients not in memory: their earlier events and open alerts, for the whole chunk in two queries.
            // A commit in flight that changes one of their alerts (a patient evicted since its chunk) must land
            // first; for any other patient the store is already current. (Waiting for every commit in flight
            // cost each new patient a commit's fsync, and the first event of every patient after a start.)
            if inFlight.contains(where: { $0.changes.contains { seenCold.contains($0.patient) } }) {
                try await finishCommits()
            }
            for (patient, entry) in try await Self.loadEntries(
                cold, before: chunk[0].seq, bundle: bundle, store: store, statistics: statistics) {
                shard(patient).entries[patient] = entry
            }
        }
        let busy = shards.filter { !$0.events.isEmpty }
        let context = Shard.Context(bundle: bundle, store: store, statistics: statistics, logger: logger)
        if busy.count == 1 {
            try await busy[0].run(context)
        } else {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for shard in busy { group.addTask { try await shard.run(context) } }
                try await group.waitForAll()
            }
        }
        adjustChunkSize(evaluated: chunk.count, in: ContinuousClock.now - started)
        var evaluations = chunk.map { (eventSeq: $0.seq, changes: [AlertChange]()) }
        for shard in busy {
            for (offset, changes) in shard.changes { evaluations[offset].changes = changes }
            for (patient, entry) in shard.entries { cache.put(patient, entry) }
        }
        let evaluation = ContinuousClock.now - started
        let through = chunk[chunk.count - 1].seq
        if evaluations.allSatisfy({ $0.changes.isEmpty }), deferredEvents + chunk.count <= Self.watermarkDeferral,
            deferredEvents == 0 || ContinuousClock.now - deferredSince < Self.watermarkDeferralTime
        {
            if deferredEvents == 0 { deferredSince = ContinuousClock.now }
            deferredEvents += chunk.count
            cursor = through
            if inFlight.isEmpty {
                lastEvaluated = through
                statistics.recordEvaluated(chunk.count, duration: evaluation, changes: [])
            } else {
                // Done when the commit before it succeeds.
                inFlight[inFlight.count - 1].through = through
                inFlight[inFlight.count - 1].events += chunk.count
                inFlight[inFlight.count - 1].evaluation += evaluation
            }
            evictIfNeeded()
            return chunk.count
        }
        // Committed while the next chunks are evaluated: a commit waits for the one SQLite writer and an fsync,
        // and evaluation waiting with it left the cores idle for that long.
        while inFlight.count >= Self.commitsInFlight { try await finishOldestCommit() }
        let evaluatedAt = Timestamp.formatMilliseconds(Date().timeIntervalSince1970)
        let (committer, publisher, previous) = (committer, publisher, inFlight.last?.task)
        inFlight.append(InFlightCommit(
            task: Task { [evaluations] in
                try await previous?.value  // in journal order; none after one that failed
                publisher.publish(try await committer.commitEvaluations(evaluations, through: through, at: evaluatedAt))
            },
            restart: cursor, through: through, events: chunk.count, evaluation: evaluation,
            changes: evaluations.flatMap(\.changes)))
        deferredEvents = 0  // the commit carries the watermark
        cursor = through
        evictIfNeeded()
        return chunk.count
    }

    /// Keeps the cache to its bounds, and says so (at most once a minute) when it is too small for the patients in
    /// play: each event then rebuilds its patient from the journal (see ``CachePressure``).
    private func evictIfNeeded() {
        statistics.recordPatientsEvicted(cache.evictIfNeeded())
        guard let warning = cachePressure.check(statistics.snapshot.cachePressure, at: .now) else { return }
        let seen = warning.counts
        logger.warning("patient cache too small for the patients in play: evicted patients are rebuilt from the journal, and evaluation slows with their histories; raise limits.patient_cache_records (about 170 bytes each) or limits.patient_cache", metadata: [
            "window": "\(warning.window)", "events_evaluated": "\(seen.evaluated)", "patients_loaded": "\(seen.loaded)",
            "patients_evicted": "\(seen.evicted)", "history_events_read": "\(seen.historyRead)",
            "limits.patient_cache": "\(cache.capacity)", "limits.patient_cache_records": "\(cache.recordCapacity)",
        ])
    }

    /// Waits for every commit in flight (see ``finishOldestCommit()``).
    private func finishCommits() async throws {
        while !inFlight.isEmpty { try await finishOldestCommit() }
    }

    /// Waits for the oldest commit in flight (which published its alerts when it succeeded) and counts its events
    /// as evaluated; if it failed, forgets the commits after it (they fail too, without writing), rewinds
    /// evaluation to before its chunk (the cached states ran ahead of the store: the caller forgets them) and
    /// throws.
    private func finishOldestCommit() async throws {
        let commit = inFlight.removeFirst()
        do {
            try await commit.task.value
        } catch {
            for later in inFlight { _ = await later.task.result }
            inFlight = []
            cursor = commit.restart
            lastEvaluated = commit.restart
            throw error
        }
        lastEvaluated = commit.through
        statistics.recordEvaluated(commit.events, duration: commit.evaluation, changes: commit.changes)
    }

    /// Sizes the next chunk so that evaluating it (all shards, before the commit) takes about ``commitBudget``,
    /// from an average over recent chunks. The commit is left out on purpose: it waits for the writer and an
    /// fsync, and counting that wait would shrink chunks, multiply commits, and so lengthen the waits.
    private func adjustChunkSize(evaluated count: Int, in elapsed: Duration) {
        let perEvent = max(elapsed / count, .microseconds(1))
        perEventEstimate = perEventEstimate == .zero ? perEvent : (perEventEstimate * 3 + perEvent) / 4
        chunkSize = max(1, min(batchSize, Int(Self.commitBudget / perEventEstimate)))
        backlogChunkSize = max(1, min(batchSize, Int(Self.backlogCommitBudget / perEventEstimate)))
    }

    /// One shard's events and patient entries, owned by exactly one task while it runs (the pipeline fills it
    /// before and reads it after), so its timelines are mutated in place, never copied.
    private final class Shard: @unchecked Sendable {
        struct Context: Sendable {
            let bundle: RuleBundle
            let store: any CobaltStore
            let statistics: Statistics
            let logger: Logger
        }

        var events: [(offset: Int, event: JournaledEvent)] = []
        var entries: [String: PatientEntry] = [:]
        var changes: [(offset: Int, changes: [AlertChange])] = []

        func run(_ context: Context) async throws {
            let bundle = context.bundle
            let evaluator = Evaluator(bundle: bundle)
            var scratch = Evaluator.Scratch()  // one evaluation's buffers, reused by the next
            for (offset, stored) in events {
                guard let event = stored.event else {
                    context.logger.error("journaled event cannot be decoded; marked evaluated without alerts", metadata: ["event.seq": "\(stored.seq)"])
                    continue
                }
                let entry: PatientEntry
                if let cached = entries.removeValue(forKey: stored.patient), cached.lastSeq < stored.seq {
                    entry = cached
                } else {
                    entry = try await EvaluationPipeline.loadEntry(
                        patient: stored.patient, clinic: stored.clinic, before: stored.seq, bundle: bundle, store: context.store,
                        statistics: context.statistics)
                }
                if stored.vocabularyHash == bundle.vocabularyHash {
                    entry.timeline.apply(event)
                } else {
                    // Normalised by ingest before a vocabulary change went live.
                    entry.timeline.apply(NormalisedEvent(event.event, vocabulary: bundle.vocabulary))
                }
                entry.lastSeq = stored.seq
                let evaluation = evaluator.evaluateLazily(entry.timeline, reusing: consume scratch)
                let changes = AlertLifecycle.changes(previous: entry.states, evaluation: evaluation, memo: &entry.digests)
                for index in 0..<evaluation.count where evaluation.isShadow(index) {
                    // Rule sets in `testing` run in shadow: evaluated and counted, never published. The count per
                    // rule is the signal; a line per event is only for debugging (at info, a candidate rule set
                    // that fires on most events wrote a line per event: 65,000 in the reload benchmark).
                    context.statistics.recordShadow(rule: evaluation.rule(index))
                    context.logger.debug("shadow alert", metadata: ["rule.id": "\(evaluation.rule(index))", "event.seq": "\(stored.seq)"])
                }
                scratch = (consume evaluation).recycle()
                entry.apply(changes)
                entries[stored.patient] = entry
                self.changes.append((offset, changes))
            }
        }
    }

    /// The patient's timeline with every journaled event before `seq` applied. A cached entry is taken out of the
    /// cache (the caller puts it back), so that applying an event mutates its arrays in place instead of copying
    /// them.
    private func entry(for patient: String, clinic: String, before seq: Int64, bundle: RuleBundle) async throws -> PatientEntry {
        if let entry = cache.take(patient), entry.lastSeq < seq { return entry }
        return try await Self.loadEntry(patient: patient, clinic: clinic, before: seq, bundle: bundle, store: store, statistics: statistics)
    }

    /// Rebuilds a patient's entry from the journal (every event before `seq`) and the stored alert states.
    private static func loadEntry(
        patient: String, clinic: String, before seq: Int64, bundle: RuleBundle, store: any CobaltStore, statistics: Statistics
    ) async throws -> PatientEntry {
        try await loadEntries([(patient, clinic)], before: seq, bundle: bundle, store: store, statistics: statistics)[patient]!
    }

    /// Rebuilds patients' entries from the journal (every event before `seq`) and the stored alert states; counted,
    /// so that a cache too small for the patients in play (each event then rebuilds its patient) shows.
    private static func loadEntries(
        _ patients: [(patient: String, clinic: String)], before seq: Int64, bundle: RuleBundle, store: any CobaltStore,
        statistics: Statistics
    ) async throws -> [String: PatientEntry] {
        var entries: [String: PatientEntry] = [:]
        for (patient, clinic) in patients {
            entries[patient] = PatientEntry(
                timeline: PatientTimeline(patient: patient, clinic: clinic, factCount: bundle.vocabulary.facts.count),
                lastSeq: 0, states: [:])
        }
        let names = patients.map(\.patient)
        let history = try await store.events(patients: names, through: seq - 1)
        statistics.recordPatientsLoaded(patients.count, events: history.count)
        for stored in history {
            if let event = decode(stored.body) { entries[stored.patient]?.timeline.apply(NormalisedEvent(event, vocabulary: bundle.vocabulary)) }
            entries[stored.patient]?.lastSeq = stored.seq
        }
        for state in try await store.alertStates(patients: names) { entries[state.patient]?.states[state.rule] = state }
        return entries
    }

    /// After a rule-set change: evaluates patients with open alerts under the current rules, so a threshold change
    /// resolves or raises alerts without waiting for the next result. Patients without open alerts are evaluated
    /// under the new rules with their next event. Works a chunk at a time: after each chunk, the rest is queued
    /// behind the event work that arrived meanwhile, so events wait at most one chunk (``reevaluationBudget``). Each patient is evaluated
    /// as of the events the pipeline has already evaluated.
    /// Starts re-evaluating every patient with open alerts under the running rules; with `onlyIfStale`, only if
    /// the store does not record that they were re-evaluated under these rules already.
    private func startReevaluation(_ continuation: CheckedContinuation<Reevaluation, any Error>?, onlyIfStale: Bool = false) async {
        do {
            try await readWatermarkIfNeeded()
            let (running, generation) = rules.versioned
            let ruleSet = running.hash
            let recorded = try await store.reevaluatedRuleSet()
            if onlyIfStale, recorded == ruleSet { return }
            // Alerts are about to change under `ruleSet`: if this is stopped part-way, the set recorded before must
            // not pass for the one open alerts agree with (a start on it would re-evaluate nothing).
            if recorded != nil { try await store.forgetReevaluated() }
            let patients = try await openAlertsPage(after: nil)
            if onlyIfStale, !patients.remaining.isEmpty {
                logger.info("re-evaluating open alerts last re-evaluated under other rules", metadata: [
                    "ruleset.hash": "\(ruleSet)",
                ])
            }
            await reevaluate(ReevaluationProgress(
                remaining: patients.remaining, nextAfter: patients.nextAfter,
                done: Reevaluation(patients: 0, changes: 0, pause: .zero), continuation: continuation, ruleSet: ruleSet,
                generation: generation))
        } catch {
            reevaluationFailed(error, continuation)
        }
    }

    /// A page of patients with open alerts after `patient`, and where the next page starts (nil: none follows).
    private func openAlertsPage(after patient: String?) async throws -> (remaining: [(patient: String, clinic: String)], nextAfter: String?) {
        let page = try await store.patientsWithOpenAlerts(after: patient, limit: Self.reevaluationPage)
        return (page, page.count < Self.reevaluationPage ? nil : page.last?.patient)
    }

    /// Whether a re-evaluation is scheduled to be tried again, and after how long the next one would be.
    private var reevaluationRetryPending = false
    private var nextReevaluationRetry = retryDelay

    /// Tells the reload waiting (if any), and tries the whole re-evaluation again later (patients already
    /// re-evaluated change nothing the second time): open alerts must not keep what older rules concluded until
    /// each patient's next event, which may never come.
    private func reevaluationFailed(_ error: any Error, _ continuation: CheckedContinuation<Reevaluation, any Error>?) {
        continuation?.resume(throwing: error)
        guard !reevaluationRetryPending else { return }
        reevaluationRetryPending = true
        let delay = nextReevaluationRetry
        nextReevaluationRetry = min(nextReevaluationRetry * 2, Self.retryLimit)
        logger.error("re-evaluating open alerts failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
        let requeue = requeue
        Task {
            try? await Task.sleep(for: delay)
            requeue.yield(.reevaluate(nil))
        }
    }

    private func reevaluate(_ progress: ReevaluationProgress) async {
        var progress = progress
        let started = ContinuousClock.now
        do {
            let (count, changes) = try await reevaluate(progress.remaining, until: started + Self.reevaluationBudget)
            progress.remaining.removeFirst(count)
            let pause = ContinuousClock.now - started
            progress.done.patients += count
            progress.done.changes += changes
            progress.done.pause = max(progress.done.pause, pause)
            // A re-evaluation with no patient (the first start, rules with no open alerts) made nothing wait.
            if count > 0 { statistics.recordReevaluationPause(pause) }
            if progress.remaining.isEmpty, let after = progress.nextAfter {
                // Patients whose alerts opened meanwhile after this point are in a later page, and the ones
                // before it were evaluated under these rules with their event.
                (progress.remaining, progress.nextAfter) = try await openAlertsPage(after: after)
            }
        } catch {
            reevaluationFailed(error, progress.continuation)
            return
        }
        if !progress.remaining.isEmpty, case .enqueued = requeue.yield(.reevaluateRemaining(progress)) {
            return
        }
        if !progress.remaining.isEmpty {
            // No queue to come back through (stopping): the rest waits for the next start, which re-evaluates
            // open alerts again since this run records nothing. (Finishing here could outlast the service
            // manager's stop timeout with many open alerts.)
            let left = "\(progress.remaining.count)\(progress.nextAfter == nil ? "" : " or more")"
            logger.info("stopping: open alerts not yet re-evaluated are re-evaluated at the next start", metadata: [
                "patients_left": "\(left)",
            ])
            progress.continuation?.resume(throwing: ConfigurationError(
                "the daemon is stopping; \(left) patients with open alerts are re-evaluated at the next start"))
            return
        }
        if rules.isCurrent(progress.generation) {
            // Otherwise the rules changed (or are changing) meanwhile, and the re-evaluation queued for that change
            // records it. Asked again inside the record's transaction: a reload may announce itself in between.
            do {
                try await store.recordReevaluated(ruleSet: progress.ruleSet) { [rules, generation = progress.generation] in
                    rules.isCurrent(generation)
                }
            } catch {
                logger.warning("open alerts were re-evaluated, but the store did not record it; they will be again at start", metadata: ["error": "\(error)"])
            }
        }
        nextReevaluationRetry = Self.retryDelay
        logger.info("open alerts re-evaluated under the new rules", metadata: [
            "patients": "\(progress.done.patients)", "changes": "\(progress.done.changes)",
            "ruleset.hash": "\(rules.snapshot.hash)", "longest_pause": "\(progress.done.pause)",
        ])
        progress.continuation?.resume(returning: progress.done)
    }

    /// Re-evaluates patients in order until the deadline (at least one), commits the changes; returns how many
    /// patients were re-evaluated and how many alerts changed.
    private func reevaluate(
        _ candidates: [(patient: String, clinic: String)], until deadline: ContinuousClock.Instant
    ) async throws -> (patients: Int, changes: Int) {
        let bundle = rules.snapshot
        if cachedVocabulary != bundle.vocabularyHash {
            cache.removeAll()
            cachedVocabulary = bundle.vocabularyHash
        }
        let evaluator = Evaluator(bundle: bundle)
        var evaluations: [(eventSeq: Int64, changes: [AlertChange])] = []
        var patients: [(patient: String, clinic: String)] = []
        let published: [PublishedAlert]
        do {
            for (patient, clinic) in candidates {
                if !patients.isEmpty, ContinuousClock.now >= deadline { break }
                patients.append((patient, clinic))
                let entry = try await entry(for: patient, clinic: clinic, before: lastEvaluated + 1, bundle: bundle)
                let changes = AlertLifecycle.changes(
                    previous: entry.states, evaluation: evaluator.evaluateLazily(entry.timeline), memo: &entry.digests)
                if !changes.isEmpty { evaluations.append((0, changes)) }
                entry.apply(changes)
                cache.put(patient, entry)
            }
            // Carries the watermark too, in case chunks without changes left it behind.
            published = try await committer.commitEvaluations(
                evaluations, through: lastEvaluated, at: Timestamp.formatMilliseconds(Date().timeIntervalSince1970))
            deferredEvents = 0
        } catch {
            // The states of the patients already re-evaluated in this chunk ran ahead of the store, whether the
            // commit failed or a later patient could not be loaded: forget them, so they are loaded as stored.
            for (patient, _) in patients { cache.remove(patient) }
            throw error
        }
        publisher.publish(published)
        statistics.recordEvaluated(0, duration: .zero, changes: evaluations.flatMap(\.changes))
        // Re-evaluation loads every patient with open alerts, possibly many more than the cache holds.
        evictIfNeeded()
        return (patients.count, published.count)
    }

    var cachedPatients: Int { cache.count }
    var cachedRecords: Int { cache.records }

    static func decode(_ body: String) -> PatientEvent? {
        try? EventDecoder.decodeJournaled(Data(body.utf8))
    }
}
