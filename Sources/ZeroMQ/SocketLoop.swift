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
        deliver: (@Sendable ([Message]) -> Void)? = nil,
        configure: @escaping @Sendable (ZMQSocket) throws -> Void = { _ in }
    ) {
        self.name = name
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
        var items = [zmq_pollitem_t](repeating: zmq_pollitem_t(), count: sockets.count + 1)
        while true {
            for (i, socket) in sockets.enumerated() {
                var events: Int16 = 0
                if inFlight[i] < specs[i].maxInFlight || specs[i].respond != nil { events |= Int16(ZMQ_POLLIN) }
                if !pending[i].isEmpty { events |= Int16(ZMQ_POLLOUT) }
                items[i] = zmq_pollitem_t(socket: socket.handle, fd: -1, events: events, revents: 0)
            }
            items[sockets.count] = zmq_pollitem_t(socket: nil, fd: wakeFD, events: Int16(ZMQ_POLLIN), revents: 0)
            if zmq_poll(&items, Int32(items.count), 1_000) < 0 {
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
                    flush(sockets, &pending)
                    return
                }
            }
            flush(sockets, &pending)
            for (i, socket) in sockets.enumerated() where specs[i].maxInFlight > 0 || specs[i].respond != nil {
                var batch: [Message] = []
                while inFlight[i] < specs[i].maxInFlight || specs[i].respond != nil, batch.count < 1_024 {
                    do {
                        guard let message = try socket.receive(dontWait: true) else { break }
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

    private func flush(_ sockets: [ZMQSocket], _ pending: inout [[[[UInt8]]]]) {
        for (i, socket) in sockets.enumerated() where !pending[i].isEmpty {
            var sent = 0
            for frames in pending[i] {
                do {
                    guard try socket.send(frames, dontWait: true) else { break }
                } catch {
                    // EHOSTUNREACH: the peer of a ROUTER reply is gone; a sender retries with the same id.
                    onSendError(specs[i].name, error)
                }
                sent += 1
            }
            pending[i].removeFirst(sent)
        }
    }
}
