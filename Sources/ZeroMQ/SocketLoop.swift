internal import CZeroMQ
import Foundation
import Synchronization

/// What a ``SocketLoop`` socket is: type, options, endpoints, and whether and how much it may receive.
public struct SocketSpec: Sendable {
    public var name: String
    public var type: SocketType
    public var bind: [String]
    public var connect: [String]
    /// Sets options; runs on the loop thread before bind/connect.
    public var configure: @Sendable (ZMQSocket) throws -> Void
    /// Inbound messages delivered but not yet released by the consumer before reading pauses (0: never read).
    public var maxInFlight: Int
    /// Handles a message on the loop thread, before it is delivered — for answers that cannot wait (a ZAP reply,
    /// approving an XPUB subscription). Sockets with a handler are always read.
    public var respond: (@Sendable (Message, ZMQSocket) -> Handling)?
    /// Takes each batch of inbound messages on the loop thread, instead of the socket's `inbound` stream: for a
    /// consumer that only queues them, it saves a hop through the concurrency pool. Credit works the same way.
    public var deliver: (@Sendable ([Message]) -> Void)?
    /// For a ROUTER: replies held back per peer whose pipe is full (EAGAIN under `ZMQ_ROUTER_MANDATORY`) while
    /// replies to every other peer go on. Beyond this many, the peer's oldest held reply is dropped and reported
    /// through `onSendError` with `EAGAIN` — a peer that does not read its replies must not grow memory without
    /// bound, nor hold up anyone else.
    public var heldPerPeer: Int
    /// The most one inbound message may hold over all its frames (see ``MessageSize``); larger ones are delivered
    /// as their first frame, marked ``Message/oversized``, for the consumer to refuse.
    public var messageLimit: MessageSize

    /// What a handler did with a message.
    public enum Handling: Sendable {
        /// Send these frames back now.
        case reply([[UInt8]])
        /// Done; nothing to deliver.
        case handled
        /// Deliver it on the socket's inbound stream as usual.
        case deliver
    }

    public init(
        name: String, type: SocketType, bind: [String] = [], connect: [String] = [], maxInFlight: Int = 0,
        respond: (@Sendable (Message, ZMQSocket) -> Handling)? = nil,
        deliver: (@Sendable ([Message]) -> Void)? = nil, heldPerPeer: Int = 1_000, messageLimit: MessageSize = .unlimited,
        configure: @escaping @Sendable (ZMQSocket) throws -> Void = { _ in }
    ) {
        self.name = name
        self.messageLimit = messageLimit
        self.heldPerPeer = heldPerPeer
        self.respond = respond
        self.deliver = deliver
        self.type = type
        self.bind = bind
        self.connect = connect
        self.maxInFlight = maxInFlight
        self.configure = configure
    }
}

/// Owns a group of sockets on one dedicated OS thread running `zmq_poll`. Nothing else touches the sockets.
///
/// Async code talks to it through a mutex-protected command queue plus an `eventfd` that `zmq_poll` watches;
/// inbound messages leave through one `AsyncStream` per socket. Backpressure: a socket with `maxInFlight`
/// delivered-but-unreleased messages is not read until the consumer calls ``release(_:count:)`` — messages then
/// wait in libzmq and in TCP, and are never dropped. No zmq call ever runs on the Swift concurrency pool.
public final class SocketLoop: Sendable {
    public struct Socket: Sendable, Hashable {
        public let index: Int

        public init(_ index: Int) {
            self.index = index
        }
    }

    private enum Command: Sendable {
        case send(Int, [[UInt8]])
        case release(Int, Int)
        case stop
    }

    private struct State: Sendable {
        var commands: [Command] = []
        var endpoints: [[String]] = []
        var ended = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Inbound messages per socket, in batches of what one poll cycle read (streams of sockets with
    /// `maxInFlight == 0` stay empty). Each message counts against the socket's credit until released.
    public let inbound: [AsyncStream<[Message]>]
    private let continuations: [AsyncStream<[Message]>.Continuation]
    private let specs: [SocketSpec]
    private let state = Mutex(State())
    private let wakeFD: Int32
    private let onSendError: @Sendable (String, ZMQError) -> Void

    private init(specs: [SocketSpec], wakeFD: Int32, onSendError: @escaping @Sendable (String, ZMQError) -> Void) {
        var streams: [AsyncStream<[Message]>] = []
        var continuations: [AsyncStream<[Message]>.Continuation] = []
        for _ in specs {
            let (stream, continuation) = AsyncStream<[Message]>.makeStream(bufferingPolicy: .unbounded)
            streams.append(stream)
            continuations.append(continuation)
        }
        self.inbound = streams
        self.continuations = continuations
        self.specs = specs
        self.wakeFD = wakeFD
        self.onSendError = onSendError
    }

    /// The endpoints actually bound, per socket (ephemeral ports resolved).
    public var endpoints: [[String]] { state.withLock { $0.endpoints } }

    /// Creates, configures and binds the sockets on a new thread; throws if any option, bind or connect fails.
    public static func start(
        context: ZMQContext, name: String, specs: [SocketSpec],
        onSendError: @escaping @Sendable (String, ZMQError) -> Void = { _, _ in }
    ) async throws -> SocketLoop {
        let wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeFD >= 0 else { throw ZMQError(code: errno, operation: "eventfd") }
        let loop = SocketLoop(specs: specs, wakeFD: wakeFD, onSendError: onSendError)
        try await withCheckedThrowingContinuation { (started: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                // Named from inside: on Linux, a name set before start does not reach the kernel, and the thread
                // would show in `top` and `perf` under its creator's name.
                nameCurrentThread(name)
                loop.run(context: context, started: started)
            }
            thread.start()
        }
        return loop
    }

    /// Queues a message for sending on a socket (from any thread or task).
    public func send(_ socket: Socket, _ frames: [[UInt8]]) {
        post([.send(socket.index, frames)])
    }

    /// Queues several messages at once (one lock, at most one wake-up).
    public func send(_ socket: Socket, messages: [[[UInt8]]]) {
        guard !messages.isEmpty else { return }
        post(messages.map { .send(socket.index, $0) })
    }

    /// Returns receive credit after the consumer has finished with `count` messages.
    public func release(_ socket: Socket, count: Int = 1) {
        post([.release(socket.index, count)])
    }

    /// Sends what is queued, closes every socket on the loop thread, and waits until the thread has ended.
    public func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ended = state.withLock { state -> Bool in
                if !state.ended { state.waiters.append(continuation) }
                return state.ended
            }
            if ended { continuation.resume() } else { post([.stop]) }
        }
    }

    /// Queues commands for the loop thread, waking it only if the queue was empty: otherwise a wake-up is already
    /// on its way (whoever queued first wrote the eventfd after queuing), and the loop takes the whole queue after
    /// reading the eventfd.
    private func post(_ commands: [Command]) {
        let (ended, wasEmpty) = state.withLock { state -> (Bool, Bool) in
            let wasEmpty = state.commands.isEmpty
            if !state.ended { state.commands += commands }
            return (state.ended, wasEmpty)
        }
        guard !ended, wasEmpty else { return }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: - The loop thread

    private func run(context: ZMQContext, started: CheckedContinuation<Void, any Error>) {
        var sockets: [ZMQSocket] = []
        var endpoints: [[String]] = []
        do {
            for spec in specs {
                let socket = try ZMQSocket(context: context, type: spec.type)
                sockets.append(socket)
                try spec.configure(socket)
                var bound: [String] = []
                for endpoint in spec.bind {
                    try socket.bind(endpoint)
                    bound.append(try socket.lastEndpoint)
                }
                for endpoint in spec.connect { try socket.connect(endpoint) }
                endpoints.append(bound)
            }
        } catch {
            for socket in sockets { socket.close() }
            end()
            started.resume(throwing: error)
            return
        }
        state.withLock { $0.endpoints = endpoints }
        started.resume()
        serve(sockets)
        for socket in sockets { socket.close() }
        end()
    }

    private func end() {
        for continuation in continuations { continuation.finish() }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.ended = true
            defer { state.waiters = [] }
            return state.waiters
        }
        close(wakeFD)
        for waiter in waiters { waiter.resume() }
    }

    private func serve(_ sockets: [ZMQSocket]) {
        var inFlight = Array(repeating: 0, count: sockets.count)
        var pending: [[[[UInt8]]]] = Array(repeating: [], count: sockets.count)
        var held = Array(repeating: HeldReplies(), count: sockets.count)
        var items = [zmq_pollitem_t](repeating: zmq_pollitem_t(), count: sockets.count + 1)
        while true {
            for (i, socket) in sockets.enumerated() {
                var events: Int16 = 0
                if inFlight[i] < specs[i].maxInFlight || specs[i].respond != nil { events |= Int16(ZMQ_POLLIN) }
                if !pending[i].isEmpty { events |= Int16(ZMQ_POLLOUT) }
                items[i] = zmq_pollitem_t(socket: socket.handle, fd: -1, events: events, revents: 0)
            }
            items[sockets.count] = zmq_pollitem_t(socket: nil, fd: wakeFD, events: Int16(ZMQ_POLLIN), revents: 0)
            // Held replies are retried every 10 ms: a ROUTER's POLLOUT says only that *some* peer has room.
            let timeout = held.contains { !$0.isEmpty } ? 10 : 1_000
            if zmq_poll(&items, Int32(items.count), timeout) < 0 {
                if zmq_errno() == EINTR { continue }
                return  // ETERM: the context is shutting down
            }
            if items[sockets.count].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
            }
            let commands = state.withLock { state -> [Command] in
                defer { state.commands.removeAll(keepingCapacity: true) }
                return state.commands
            }
            for command in commands {
                switch command {
                case .send(let index, let frames): pending[index].append(frames)
                case .release(let index, let count): inFlight[index] = max(0, inFlight[index] - count)
                case .stop:
                    flush(sockets, &pending, &held)
                    return
                }
            }
            flush(sockets, &pending, &held)
            for (i, socket) in sockets.enumerated() where specs[i].maxInFlight > 0 || specs[i].respond != nil {
                var batch: [Message] = []
                while inFlight[i] < specs[i].maxInFlight || specs[i].respond != nil, batch.count < 1_024 {
                    do {
                        guard let message = try socket.receive(dontWait: true, limit: specs[i].messageLimit) else { break }
                        if let respond = specs[i].respond {
                            switch respond(message, socket) {
                            case .reply(let frames):
                                if (try? socket.send(frames, dontWait: true)) != true { onSendError(specs[i].name, ZMQError(code: EAGAIN, operation: "reply")) }
                                continue
                            case .handled:
                                continue
                            case .deliver:
                                break
                            }
                        }
                        guard specs[i].maxInFlight > 0 else { continue }
                        inFlight[i] += 1
                        batch.append(message)
                    } catch {
                        if error.code == ETERM_CODE { return }
                        break
                    }
                }
                if !batch.isEmpty {
                    if let deliver = specs[i].deliver { deliver(batch) } else { continuations[i].yield(batch) }
                }
            }
        }
    }

    /// Sends what is queued. A ROUTER's reply to a peer whose pipe is full is held for that peer (with every later
    /// reply to it, so its replies keep their order) and the others go on; other sockets stop at the first EAGAIN
    /// and continue when `zmq_poll` reports room.
    private func flush(_ sockets: [ZMQSocket], _ pending: inout [[[[UInt8]]]], _ held: inout [HeldReplies]) {
        for (i, socket) in sockets.enumerated() where !pending[i].isEmpty || !held[i].isEmpty {
            let routed = specs[i].type == .router
            if routed {
                held[i].retry { frames in send(frames, on: socket, i) }
            }
            var sent = 0
            for frames in pending[i] {
                if routed, let peer = frames.first, held[i].holds(peer) {
                    hold(frames, for: peer, in: &held[i], i)
                } else if !send(frames, on: socket, i) {
                    guard routed, let peer = frames.first else { break }
                    hold(frames, for: peer, in: &held[i], i)
                }
                sent += 1
            }
            pending[i].removeFirst(sent)
        }
    }

    /// Sends one message without blocking: false on EAGAIN; any other error (EHOSTUNREACH: the peer of a ROUTER
    /// reply is gone, and a sender retries with the same id) is reported and the message counts as done.
    private func send(_ frames: [[UInt8]], on socket: ZMQSocket, _ index: Int) -> Bool {
        do {
            return try socket.send(frames, dontWait: true)
        } catch {
            onSendError(specs[index].name, error)
            return true
        }
    }

    private func hold(_ frames: [[UInt8]], for peer: [UInt8], in held: inout HeldReplies, _ index: Int) {
        if held.append(frames, for: peer, limit: specs[index].heldPerPeer) {
            onSendError(specs[index].name, ZMQError(code: EAGAIN, operation: "send (the peer does not read its replies; the oldest held reply was dropped)"))
        }
    }
}

/// Replies of one ROUTER socket waiting for their peers' pipes to have room, in order per peer.
struct HeldReplies {
    /// One peer's replies: `replies[start...]` are waiting (dropping the oldest moves `start`, not the array).
    private struct Queue {
        var replies: [[[UInt8]]] = []
        var start = 0
        var count: Int { replies.count - start }

        mutating func dropFirst(_ n: Int) {
            start += n
            if start > 64, start * 2 > replies.count {
                replies.removeFirst(start)
                start = 0
            }
        }
    }

    private var byPeer: [[UInt8]: Queue] = [:]

    var isEmpty: Bool { byPeer.isEmpty }

    /// Whether replies to `peer` are waiting (asked once per reply: nothing is hashed while nothing is held).
    func holds(_ peer: [UInt8]) -> Bool { !byPeer.isEmpty && byPeer[peer] != nil }

    /// Appends a reply for `peer`; true if the peer's oldest reply was dropped to stay within `limit`.
    mutating func append(_ frames: [[UInt8]], for peer: [UInt8], limit: Int) -> Bool {
        byPeer[peer, default: Queue()].replies.append(frames)
        guard byPeer[peer]!.count > max(limit, 1) else { return false }
        byPeer[peer]!.dropFirst(1)
        return true
    }

    /// Sends each peer's replies in order until one does not go (`send` returns false); peers left with nothing
    /// are forgotten.
    mutating func retry(_ send: ([[UInt8]]) -> Bool) {
        for (peer, var queue) in byPeer {
            var sent = 0
            while sent < queue.count, send(queue.replies[queue.start + sent]) { sent += 1 }
            queue.dropFirst(sent)
            byPeer[peer] = queue.count == 0 ? nil : queue
        }
    }
}
