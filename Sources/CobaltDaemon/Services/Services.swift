import CobaltStore
import Foundation
import Logging
import RuleEngine
import ServiceLifecycle
import UnixSignals
import Synchronization
import ZeroMQ

/// Messages read from the ingest socket and not yet journaled. The socket loop appends to it on its own thread
/// (see ``SocketSpec/deliver``) and signals `ready`; ingest takes everything there is.
final class PendingMessages: Sendable {
    private let messages = Mutex<[Message]>([])
    let ready: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (ready, signal) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func append(_ batch: [Message]) {
        messages.withLock { $0 += batch }
        signal.yield()
    }

    func takeAll() -> [Message] {
        messages.withLock { list in
            defer { list.removeAll(keepingCapacity: true) }
            return list
        }
    }
}

/// Reads ingest messages, journals them, acknowledges, and wakes the evaluation pipeline. Shut down first: it
/// stops reading (unacknowledged messages are simply retried by senders), then ends the wake-ups.
///
/// Group commit: the socket loop queues what it reads (``PendingMessages``) while the previous transaction is being
/// written; each transaction then takes everything collected. Under load, batches grow on their own and the
/// cost of an fsync is shared; when idle, an event is committed at once. Decoding is pipelined with storing: the
/// next batch is checked and normalised while the previous one commits (commits stay one at a time, in order).
struct IngestService: Service {
    let loop: SocketLoop
    let socket: SocketLoop.Socket
    let pending: PendingMessages
    let processor: IngestProcessor
    let store: any CobaltStore
    let rules: RulesHolder
    let statistics: Statistics
    let audit: AuditLog
    let handOff: HandOff
    let wake: AsyncStream<EvaluationPipeline.Work>.Continuation

    func run() async throws {
        defer { wake.finish() }
        var committing: Task<Void, Never>?
        for await _ in pending.ready.cancelOnGracefulShutdown() {
            let batch = pending.takeAll()
            guard !batch.isEmpty else { continue }
            let prepared = await processor.prepare(batch, bundle: rules.snapshot)
            await committing?.value
            committing = Task { await commit(prepared) }
        }
        await committing?.value
    }

    /// Journals a prepared batch, hands the accepted events to evaluation, and answers.
    private func commit(_ prepared: IngestProcessor.PreparedBatch) async {
        let batch = prepared.messages
        let (replies, accepted, counts, quarantine) = await processor.commit(prepared, store: store)
        if !quarantine.isEmpty {
            // Kept for the integration engineer; counted; audited without the payload.
            try? await store.quarantine(quarantine)
            statistics.recordQuarantined(quarantine.count)
            for item in quarantine {
                audit.record(actor: item.sender ?? "unauthenticated", action: "event.quarantined", detail: "id=\(item.id ?? "-") code=\(item.code) reason=\(item.reason)")
            }
        }
        if !accepted.isEmpty {
            handOff.push(accepted)
            wake.yield(.events)
        }
        loop.send(socket, messages: replies.map(\.frames))
        loop.release(socket, count: batch.count)
        statistics.recordIngest(counts, batch: batch.count)
    }
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

    private func serve(_ socket: SocketLoop.Socket, _ answer: @Sendable (JSONValue, String?) async -> String) async {
        for await batch in loop.inbound[socket.index].cancelOnGracefulShutdown() {
            for message in batch {
                let envelope = Array(message.frames.dropLast())
                let reply: String
                if let payload = message.frames.last, message.frames.count >= 2, let request = try? JSONValue.parse(Data(payload)) {
                    reply = await answer(request, message.userID)
                } else {
                    reply = ReplayHandler.error("expected one JSON frame")
                }
                loop.send(socket, envelope + [Array(reply.utf8)])
            }
            loop.release(socket, count: batch.count)
        }
    }
}

/// Owns the sockets: heartbeats while running; on shutdown (last of all) announces the stop and closes them.
struct SocketService: Service {
    let loop: SocketLoop
    let subscriptions: SocketLoop.Socket
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
            group.addTask {
                // XPUB hands us subscription messages; read them so they never pile up.
                for await batch in loop.inbound[subscriptions.index] { loop.release(subscriptions, count: batch.count) }
            }
            try? await gracefulShutdown()
            group.cancelAll()
            publisher.ops("stop", [])
            await loop.stop()
        }
        context.terminate()
    }
}

/// Reloads the rules on SIGHUP.
struct SignalReloadService: Service {
    let reloader: Reloader

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            _ = await reloader.reload(expect: nil, actor: "signal:SIGHUP")
        }
    }
}
