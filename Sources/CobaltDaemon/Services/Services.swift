import CobaltStore
import Foundation
import Logging
import RuleEngine
import ServiceLifecycle
import UnixSignals
import Synchronization
import ZeroMQ

/// Items passed from one thread to the next in order: `put` never waits; `takeAll` waits for at least one and
/// takes everything there is. Bounded by the ingest socket's credit: messages are not read past
/// `limits.max_in_flight` until answered.
///
/// Two of them on the ingest path: the messages read from the socket (the socket loop puts them on its own
/// thread, see ``SocketSpec/deliver``), and the journal thread's work (``JournalQueue``). (Evaluation is
/// reached through ``HandOff`` instead, which is bounded by its own capacity and makes ingest wait for
/// evaluation when it is full.)
final class ThreadQueue<Item>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Item] = []
    private var closed = false
    private var discardOnClose = false

    func put(_ item: Item) { put(contentsOf: CollectionOfOne(item)) }

    /// Like ``put(_:)`` while the queue is open; once it is closed, keeps nothing and returns false.
    func putIfOpen(_ item: Item) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return false }
        items.append(item)
        condition.signal()
        return true
    }

    func put(contentsOf more: some Sequence<Item>) {
        condition.lock()
        items += more
        condition.signal()
        condition.unlock()
    }

    /// Everything there is, after waiting for at least one item; nil once closed and empty — or at once after
    /// `close(discardingRest: true)`.
    func takeAll() -> [Item]? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty, !closed { condition.wait() }
        guard !items.isEmpty, !(closed && discardOnClose) else { return nil }
        defer { items.removeAll(keepingCapacity: true) }
        return items
    }

    /// Ends the queue. With `discardingRest`, what is left is never taken (unanswered messages: their senders
    /// send them again); otherwise it is taken first.
    func close(discardingRest: Bool = false) {
        condition.lock()
        closed = true
        discardOnClose = discardingRest
        condition.broadcast()
        condition.unlock()
    }
}

/// Reads ingest messages, journals them, acknowledges, and wakes the evaluation pipeline. Shut down first: it
/// stops reading (unacknowledged messages are simply retried by senders), then ends the wake-ups.
///
/// Two threads of its own, not the concurrency pool: `cobalt-ingest` checks and normalises what has arrived
/// (with idle pool threads helping, see ``IngestProcessor/prepare(_:bundle:)``) while `cobalt-journal` commits
/// and answers; each transaction takes everything checked meanwhile, so an event waits for at most the
/// transaction being written, then is written with everything that arrived with it. The journal thread also
/// writes the evaluation pipeline's commits (``JournalQueue``). (On the pool, an
/// acknowledgement waited for a free pool thread after every step, behind evaluation work when there was a
/// backlog.)
///
/// Group commit: the socket loop queues what it reads (a ``ThreadQueue``) while the previous transaction is being
/// written; each transaction then takes everything collected. Under load, batches grow on their own and the
/// cost of an fsync is shared; when idle, an event is committed at once. Commits stay one at a time, in order.
struct IngestService: Service {
    let loop: SocketLoop
    let socket: SocketLoop.Socket
    let pending: ThreadQueue<Message>
    let journal: JournalQueue
    let processor: IngestProcessor
    let store: any CobaltStore
    let rules: RulesHolder
    let statistics: Statistics
    let audit: AuditLog
    let handOff: HandOff
    let wake: AsyncStream<EvaluationPipeline.Work>.Continuation
    /// The most recent rejected messages kept in quarantine (`limits.quarantine_rows`).
    let quarantineRows: Int
    let logger: Logger
    /// What the log says about 503s (used on the journal thread only).
    let journalFailures = JournalFailureLog()

    func run() async throws {
        defer { wake.finish() }
        async let checked: Void = onThread(named: "cobalt-ingest") {
            while let batch = pending.takeAll() {
                // Backpressure: nothing more is checked while evaluation is a full hand-off behind.
                handOff.reserve(batch.count)
                journal.work.put(.batch(processor.prepare(batch, bundle: rules.snapshot)))
            }
            journal.work.close()
        }
        async let journaled: Void = onThread(named: "cobalt-journal") {
            while let work = journal.work.takeAll() { journal.write(work, commit: commit) }
        }
        try? await gracefulShutdown()
        pending.close(discardingRest: true)
        _ = await (checked, journaled)
    }

    /// Journals a prepared batch, hands the accepted events to evaluation, and answers.
    private func commit(_ prepared: IngestProcessor.PreparedBatch, journal: ([IncomingEvent]) throws -> [JournalOutcome]) {
        let batch = prepared.messages
        var storeError: (any Error)?
        let (replies, accepted, counts, quarantine) = processor.commit(prepared) { events in
            do { return try journal(events) } catch {
                storeError = error
                throw error
            }
        }
        if let storeError {
            journalFailures.failed(storeError, refused: counts.unavailable, logger: logger)
        } else if counts.accepted + counts.duplicate + counts.conflict > 0 {
            // Evaluation failed too, most likely, and waits for a retry that backs off to 30 s: now, instead.
            if journalFailures.succeeded(logger: logger) { wake.yield(.storeWritable) }
        }
        if !quarantine.isEmpty {
            // Kept for the integration engineer; counted; audited without the payload. The senders already have
            // their rejections, so a failed write loses only this copy — said in the log, without the payloads.
            do {
                try store.quarantine(quarantine, keeping: quarantineRows)
            } catch {
                logger.error("quarantine records not written", metadata: ["records": "\(quarantine.count)", "error": "\(error)"])
            }
            statistics.recordQuarantined(quarantine.count)
            for item in quarantine {
                audit.record(actor: item.sender ?? "unauthenticated", action: "event.quarantined", detail: "id=\(item.id ?? "-") code=\(item.code) reason=\(item.reason)")
            }
        }
        // Counted before the answers go out: a sender that asks for `status` (or a scrape) as soon as it is answered
        // sees its events counted.
        statistics.recordIngest(counts, batch: batch.count)
        loop.send(socket, messages: replies.map(\.frames))
        loop.release(socket, count: batch.count)
        // After the answers. Never waits: ingest waited for room before checking (see HandOff).
        handOff.push(accepted, reserved: batch.count)
        if !accepted.isEmpty { wake.yield(.events) }
    }
}

/// Says in the log when ingest answers 503 because the journal could not be written — a full disk, a read-only
/// file system, a database file deleted under the daemon — and when it writes again: the senders are told to retry,
/// but the operator must learn that events are being refused, and why. An error line at the first failure, then at
/// most one per ``interval`` while it lasts (with the events refused since the last one), and a line when a journal
/// transaction commits again after a logged failure. A store that flaps at the edge of a full disk (a small batch
/// fits, a large one does not) writes at most one line of each kind per interval. No patient data: SQLite's message
/// and the statement, without its values. Used by the journal thread alone.
final class JournalFailureLog: @unchecked Sendable {
    static let interval: Duration = .seconds(10)
    private var lastLine: ContinuousClock.Instant?
    /// An error line was written since the last line saying the journal is written again.
    private var failureLogged = false
    /// A journal transaction failed since the last one that committed.
    private var failing = false
    private var refusedSinceLine = 0
    private var refusedInOutage = 0

    func failed(_ error: any Error, refused: Int, logger: Logger) {
        failing = true
        refusedSinceLine += refused
        refusedInOutage += refused
        let now = ContinuousClock.now
        if let lastLine, now - lastLine < Self.interval { return }
        logger.error("the journal cannot be written: events are answered 503 (retry with the same id)", metadata: [
            "error": "\(error)", "refused": "\(refusedSinceLine)", "refused_since_failing": "\(refusedInOutage)",
        ])
        lastLine = now
        failureLogged = true
        refusedSinceLine = 0
    }

    /// A journal transaction committed; returns whether one had failed before it (the store works again).
    func succeeded(logger: Logger) -> Bool {
        guard failing else { return false }
        failing = false
        if failureLogged {
            logger.notice("the journal is written again: events are acknowledged", metadata: ["refused_while_failing": "\(refusedInOutage)"])
            failureLogged = false
        }
        refusedSinceLine = 0
        refusedInOutage = 0
        return true
    }
}

/// Runs `body` on a thread of its own, never on the Swift concurrency pool (blocking work: zmq clients, SQLite
/// commits), and returns its result when it has finished. A name is set from inside the thread, so that the
/// kernel, `top` and `perf` show it.
package func onThread<T: Sendable, E: Error>(
    named name: String? = nil, _ body: @escaping @Sendable () throws(E) -> T
) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { finished in
        let thread = Thread {
            if let name { nameCurrentThread(name) }
            finished.resume(returning: Result { () throws(E) -> T in try body() })
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    return try result.get()
}

/// Runs the evaluation pipeline until ingest has stopped and everything journaled is evaluated.
struct EvaluationService: Service {
    let pipeline: EvaluationPipeline
    let work: AsyncStream<EvaluationPipeline.Work>

    func run() async throws {
        await pipeline.run(work: work)
        // The work stream ends when ingest stops, which can be a moment before the service group has seen ingest
        // finish; returning now would count as finishing out of turn (and fail the shutdown). Wait for our turn.
        try? await gracefulShutdown()
    }
}

/// Answers replay and control requests.
struct RequestService: Service {
    let loop: SocketLoop
    let replaySocket: SocketLoop.Socket
    let controlSocket: SocketLoop.Socket
    let replay: ReplayHandler
    let control: ControlHandler

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await serve(replaySocket) { await replay.reply(to: $0, userID: $1) } }
            group.addTask { await serve(controlSocket) { await control.reply(to: $0, userID: $1) } }
        }
    }

    /// Answers each request in a task of its own (at most the socket's credit at a time), so that a `status` is
    /// not kept waiting behind a reload that re-evaluates open alerts; reloads queue among themselves.
    private func serve(_ socket: SocketLoop.Socket, _ answer: @escaping @Sendable (JSONValue, String?) async -> String) async {
        await withDiscardingTaskGroup { group in
            for await batch in loop.inbound[socket.index].cancelOnGracefulShutdown() {
                for message in batch {
                    group.addTask {
                        let envelope = message.oversized == nil ? Array(message.frames.dropLast()) : message.frames
                        let reply: String
                        if let size = message.oversized {
                            reply = ReplayHandler.error("\(Daemon.asSent(size, message)) is over the limit; send one JSON frame")
                        } else if let payload = message.frames.last, message.frames.count >= 2 {
                            do throws(EventDecodingError) {
                                reply = await answer(try JSONValue.parse(payload), message.userID)
                            } catch {
                                reply = ReplayHandler.error("malformed JSON: \(error.errors.first?.message ?? "")")
                            }
                        } else {
                            reply = ReplayHandler.error("expected one JSON frame")
                        }
                        loop.send(socket, envelope + [Array(reply.utf8)])
                        loop.release(socket)
                    }
                }
            }
        }
    }
}

/// Owns the sockets: heartbeats while running; on shutdown (last of all) announces the stop and closes them.
struct SocketService: Service {
    let loop: SocketLoop
    let publisher: Publisher
    let heartbeat: Duration
    let context: ZMQContext

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: heartbeat)
                    publisher.heartbeat()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
            publisher.ops("stop", [])
            await loop.stop()
        }
        context.terminate()
    }
}

/// Reloads the rules on SIGHUP. The signal is trapped when the daemon starts (`signals`, made in `Daemon.start`),
/// not when this service's task gets to run: systemd hears READY=1 as soon as the group runs, and a
/// `systemctl reload` right after must not fall into the gap (SIGHUP is ignored until trapped).
struct SignalReloadService: Service {
    let reloader: Reloader
    let signals: UnixSignalsSequence

    func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            _ = await reloader.reload(expect: nil, actor: "signal:SIGHUP")
        }
    }
}

/// Tells systemd `READY=1` once the service group runs (every endpoint is bound by then), and `STOPPING=1` as soon
/// as shutdown begins: it is the group's last service, so the first to hear of the shutdown (services stop in
/// reverse order).
struct SystemdService: Service {
    let notifier: SystemdNotifier
    let status: String
    let logger: Logger

    func run() async throws {
        notifier.send(["READY=1", "STATUS=\(status)", "MAINPID=\(getpid())"], logger: logger)
        try? await gracefulShutdown()
        notifier.send(["STOPPING=1", "STATUS=stopping: ingest closes, then everything journaled is evaluated"], logger: logger)
    }
}
