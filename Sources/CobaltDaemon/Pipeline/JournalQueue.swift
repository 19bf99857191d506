import CobaltStore

/// What the `cobalt-journal` thread writes: batches checked by ingest, and the evaluation pipeline's commits.
/// Each transaction takes everything waiting (``CobaltStore/journal(_:with:)``), so an evaluation commit rides on
/// the next journal batch's fsync instead of paying one of its own, and an acknowledgement never waits behind a
/// separate evaluation transaction on the one SQLite writer. (At 5,000 events/s, before, evaluation commits were
/// nearly as many as the journal's: twice the fsyncs.) With no batch waiting, a commit is written on its own at
/// once; no commit waits for traffic.
///
/// Ingest closes the queue when it stops (it stops first); the pipeline's last commits then go to the store
/// directly.
final class JournalQueue: EvaluationCommitting {
    enum Work {
        case batch(IngestProcessor.PreparedBatch)
        /// Resumed with nil if the queue was closed before the commit got in.
        case evaluation(EvaluationCommit, CheckedContinuation<[PublishedAlert]?, any Error>)
    }

    let work = ThreadQueue<Work>()
    private let store: any CobaltStore

    init(store: any CobaltStore) {
        self.store = store
    }

    func commitEvaluations(
        _ evaluations: [(eventSeq: Int64, changes: [AlertChange])], through: Int64, at time: String
    ) async throws -> [PublishedAlert] {
        let commit = EvaluationCommit(evaluations, through: through, at: time)
        let published: [PublishedAlert]? = try await withCheckedThrowingContinuation { continuation in
            if !work.putIfOpen(.evaluation(commit, continuation)) { continuation.resume(returning: nil) }
        }
        if let published { return published }
        return try await store.commitEvaluations(evaluations, through: through, at: time)
    }
}

extension JournalQueue {
    /// One round of the journal thread: everything checked while the previous transaction was being written, with
    /// the evaluation commits waiting, in one transaction (two if the vocabulary changed in between). `commit`
    /// journals each batch through the function it is given (which it calls at most once, only if the batch has
    /// a valid event) and answers; the evaluation commits are resumed after the answers.
    func write(
        _ work: [Work],
        commit: (IngestProcessor.PreparedBatch, _ journal: ([IncomingEvent]) throws -> [JournalOutcome]) -> Void
    ) {
        var batches: [IngestProcessor.PreparedBatch] = []
        var commits: [EvaluationCommit] = []
        var waiting: [CheckedContinuation<[PublishedAlert]?, any Error>] = []
        for item in work {
            switch item {
            case .batch(let batch): batches.append(batch)
            case .evaluation(let evaluation, let continuation):
                commits.append(evaluation)
                waiting.append(continuation)
            }
        }
        var written: [Result<[PublishedAlert], any Error>]?
        func journal(_ events: [IncomingEvent]) throws -> [JournalOutcome] {
            guard written == nil, !commits.isEmpty else { return try store.journal(events) }
            do {
                let (outcomes, published) = try store.journal(events, with: commits)
                written = published.map { .success($0) }
                return outcomes
            } catch {
                // Each part is tried alone: an evaluation commit that fails must not stop ingest, and a batch that
                // fails (a full disk refusing a large batch) must not cost evaluation a failure and its retry.
                guard !events.isEmpty else {
                    written = commits.map { _ in .failure(error) }
                    return []
                }
                do {
                    written = try store.journal([], with: commits).published.map { .success($0) }
                } catch {
                    written = commits.map { _ in .failure(error) }
                }
                return try store.journal(events)
            }
        }
        for batch in IngestProcessor.PreparedBatch.merged(batches) { commit(batch, journal) }
        if written == nil, !commits.isEmpty {
            // No batch, or none with a valid event: the commits alone.
            _ = try? journal([])
        }
        for (continuation, result) in zip(waiting, written ?? []) { continuation.resume(with: result.map { $0 }) }
    }
}
