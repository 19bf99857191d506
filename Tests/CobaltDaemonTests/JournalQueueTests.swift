@testable import CobaltDaemon
import CobaltStore
import CobaltTestSupport
import RuleEngine
import Testing
import ZeroMQ

/// The journal thread's round of work, with a real store: evaluation commits ride on the batch written with them;
/// one that fails fails alone, and the batch is still journaled and answered.
@Suite(.timeLimit(.minutes(1))) struct JournalQueueTests {
    private let bundle: RuleBundle
    private let processor = IngestProcessor(maxEventBytes: 65_536)

    init() throws {
        bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
    }

    private func batch(_ ids: [String], patient: String? = nil) -> IngestProcessor.PreparedBatch {
        processor.prepare(
            ids.map { Message(frames: [Array("peer-\($0)".utf8), Array(deficientEvent(id: $0, patient: patient ?? "p-\($0)").utf8)]) },
            bundle: bundle)
    }

    private func alert(_ patient: String) -> AlertChange {
        AlertChange(
            patient: patient, rule: "r1", clinic: "north", alertID: "a-\(patient)", status: .firing, digest: "d",
            body: #"{"rule":"r1"}"#)
    }

    /// Submits an evaluation commit and takes the journal thread's work once it is queued, with `batches` added.
    private func round(
        _ queue: JournalQueue, commit evaluations: [(eventSeq: Int64, changes: [AlertChange])], through: Int64,
        with batches: [IngestProcessor.PreparedBatch]
    ) async -> (statuses: [String], evaluation: Result<[PublishedAlert], any Error>) {
        let committed = Task {
            try await queue.commitEvaluations(evaluations, through: through, at: "2026-11-22T09:00:00.000Z")
        }
        let statuses = await onThread { () -> [String] in
            let work = queue.work.takeAll() ?? []
            var statuses: [String] = []
            queue.write(work + batches.map { .batch($0) }) { batch, journal in
                let (replies, _, _, _) = processor.commit(batch, journal: journal)
                statuses += replies.map { (try? object($0.json))?["status"]?.stringValue ?? "?" }
            }
            return statuses
        }
        return (statuses, await committed.result)
    }

    @Test func evaluationCommitsRideOnTheBatchAndOneThatFailsStopsNoEvent() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let database = scratch.path + "/cobalt.db"
        let store = try SQLiteStore(path: database)
        let queue = JournalQueue(store: store)

        // Written together: the batch's event and the alert.
        let together = await round(queue, commit: [(1, [alert("p-e1")])], through: 1, with: [batch(["e1"])])
        #expect(together.statuses == ["accepted"])
        #expect((try? together.evaluation.get())?.map(\.seq) == [1])

        // The alert log refuses inserts: the evaluation commit fails, the events are journaled all the same.
        try await runSQL(injectedFailure("INSERT", on: "alert_log"), database: database)
        let failing = await round(queue, commit: [(2, [alert("p-e2")])], through: 2, with: [batch(["e2", "e3"])])
        #expect(failing.statuses == ["accepted", "accepted"])
        #expect(throws: (any Error).self) { try failing.evaluation.get() }
        #expect(try await store.evaluatedThrough() == 1)

        // No batch: the commit is written alone, and nothing of the failed one was kept (seq 2 is next).
        try await runSQL(injectedFailureOff, database: database)
        let alone = await round(queue, commit: [(2, [alert("p-e2")])], through: 3, with: [])
        #expect(alone.statuses.isEmpty)
        #expect((try? alone.evaluation.get())?.map(\.seq) == [2])
        #expect(try await store.counts() == StoreCounts(events: 3, unevaluated: 0, alerts: 2))

        // Once ingest has closed the queue, commits go to the store directly.
        queue.work.close()
        #expect(queue.work.takeAll() == nil)
        let late = try await queue.commitEvaluations([(3, [alert("p-e3")])], through: 3, at: "2026-11-22T09:00:00.000Z")
        #expect(late.map(\.seq) == [3])
    }

    /// The other way round: a batch that fails (here a trigger refuses one patient's events; a full disk refusing a
    /// large batch would too) answers 503, and the evaluation commit that shared its transaction is written alone
    /// rather than failed (which would cost evaluation a failure, a reload of its cache and a retry).
    @Test func aBatchThatFailsDoesNotFailTheEvaluationCommitWithIt() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let database = scratch.path + "/cobalt.db"
        let store = try SQLiteStore(path: database)
        let queue = JournalQueue(store: store)
        #expect(await round(queue, commit: [], through: 0, with: [batch(["e1"])]).statuses == ["accepted"])
        try await runSQL(injectedFailure("INSERT", on: "events", where: "NEW.patient = 'poison'"), database: database)
        let shared = await round(queue, commit: [(1, [alert("p-e1")])], through: 1, with: [batch(["x1"], patient: "poison")])
        #expect(shared.statuses == ["rejected"])
        #expect((try? shared.evaluation.get())?.map(\.seq) == [1], "\(shared.evaluation)")
        #expect(try await store.evaluatedThrough() == 1)
    }
}
