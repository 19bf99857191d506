#if canImport(Glibc)
import Glibc
#endif
internal import CZeroMQ

/// The socket types Cobalt uses.
public enum SocketType: Sendable {
    case router, dealer, xpub, pub, sub, xsub, req, rep, pair

    var raw: Int32 {
        switch self {
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .xpub: return ZMQ_XPUB
        case .pub: return ZMQ_PUB
        case .sub: return ZMQ_SUB
        case .xsub: return ZMQ_XSUB
        case .req: return ZMQ_REQ
        case .rep: return ZMQ_REP
        case .pair: return ZMQ_PAIR
        }
    }
}

/// A received multipart message.
public struct Message: Sendable, Equatable {
    public var frames: [[UInt8]]
    /// The authenticated identity (ZAP `User-Id`) of the connection, read from a payload frame.
    public var userID: String?
    /// Set when the message was larger than the receiver's limit: `frames` then holds only its first frame (a
    /// ROUTER's routing id, to answer with), and this is how large the whole message was.
    public var oversized: MessageSize?

    public init(frames: [[UInt8]], userID: String? = nil, oversized: MessageSize? = nil) {
        self.frames = frames
        self.userID = userID
        self.oversized = oversized
    }
}

/// A message's size over all its frames: a receive limit, or what an oversized message measured. libzmq's
/// `ZMQ_MAXMSGSIZE` bounds each frame, not the message: without a limit on the whole, a peer could send thousands
/// of frames of the maximum size as one message.
public struct MessageSize: Sendable, Equatable {
    public var frames: Int
    public var bytes: Int

    public init(frames: Int, bytes: Int) {
        self.frames = frames
        self.bytes = bytes
    }

    public static let unlimited = MessageSize(frames: .max, bytes: .max)
}

/// A libzmq socket. **Not thread-safe**: create, use and close it on one thread (a ``SocketLoop`` thread, or a
/// command-line client's main thread). It keeps its ``ZMQContext`` alive.
///
/// Created with a bounded linger (default 1 s) so that terminating the context never waits forever.
public final class ZMQSocket {
    public let context: ZMQContext
    public let type: SocketType
    private(set) var handle: UnsafeMutableRawPointer?
    /// A `zmq_msg_t` kept at a stable heap address for receiving.
    private let message: UnsafeMutablePointer<zmq_msg_t>

    public init(context: ZMQContext, type: SocketType, linger: Int32 = 1_000) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.raw) else { throw ZMQError.last("zmq_socket") }
        self.context = context
        self.type = type
        self.handle = handle
        message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        try set(.linger, linger)
    }

    deinit {
        close()
        message.deallocate()
    }

    /// Closes the socket (idempotent).
    public func close() {
        guard let handle else { return }
        zmq_close(handle)
        self.handle = nil
    }

    private func live(_ operation: String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(code: ENOTSOCK, operation: operation) }
        return handle
    }

    // MARK: Options

    public func set(_ option: SocketOption<Int32>, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(try live(option.name), option.code, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("set \(option.name)")
        }
    }

    public func set(_ option: SocketOption<Int64>, _ value: Int64) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(try live(option.name), option.code, &v, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("set \(option.name)")
        }
    }

    public func set(_ option: SocketOption<[UInt8]>, _ value: [UInt8]) throws(ZMQError) {
        let handle = try live(option.name)
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option.code, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw ZMQError.last("set \(option.name)") }
    }

    /// Sets a Z85 key option: 40 characters, passed with the terminating NUL (41 bytes).
    public func set(_ option: SocketOption<String>, _ value: String) throws(ZMQError) {
        guard value.utf8.count == 40 else { throw ZMQError(code: EINVAL, operation: "set \(option.name): Z85 keys are 40 characters") }
        let handle = try live(option.name)
        let bytes = Array(value.utf8) + [0]
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option.code, $0.baseAddress, 41) }
        guard rc == 0 else { throw ZMQError.last("set \(option.name)") }
    }

    public func get(_ option: SocketOption<Int32>) throws(ZMQError) -> Int32 {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(try live(option.name), option.code, &v, &size) == 0 else { throw ZMQError.last("get \(option.name)") }
        return v
    }

    public func get(_ option: SocketOption<Int64>) throws(ZMQError) -> Int64 {
        var v: Int64 = 0
        var size = MemoryLayout<Int64>.size
        guard zmq_getsockopt(try live(option.name), option.code, &v, &size) == 0 else { throw ZMQError.last("get \(option.name)") }
        return v
    }

    public func get(_ option: SocketOption<[UInt8]>) throws(ZMQError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 256)
        var size = buffer.count
        let handle = try live(option.name)
        let rc = buffer.withUnsafeMutableBytes { zmq_getsockopt(handle, option.code, $0.baseAddress, &size) }
        guard rc == 0 else { throw ZMQError.last("get \(option.name)") }
        return Array(buffer.prefix(size))
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*` to the ephemeral port).
    public var lastEndpoint: String {
        get throws(ZMQError) {
            let bytes = try get(.lastEndpoint)
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    // MARK: Connections

    public func bind(_ endpoint: String) throws(ZMQError) {
        guard zmq_bind(try live("bind"), endpoint) == 0 else { throw ZMQError.last("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(try live("connect"), endpoint) == 0 else { throw ZMQError.last("connect \(endpoint)") }
    }

    /// Publishes this socket's `events` (``MonitorEvent``) on a PAIR socket libzmq binds at `endpoint` (inproc),
    /// for a PAIR socket of the same context to connect to and read (``MonitorEvent/init(_:)``).
    public func monitor(_ endpoint: String, events: Int32) throws(ZMQError) {
        guard zmq_socket_monitor(try live("monitor"), endpoint, events) == 0 else { throw ZMQError.last("monitor \(endpoint)") }
    }

    // MARK: Messages

    /// Sends a multipart message. Returns `false` when it would block (`EAGAIN` with `dontWait`).
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = true) throws(ZMQError) -> Bool {
        let handle = try live("send")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if index < frames.count - 1 { flags |= ZMQ_SNDMORE }
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            if rc < 0 {
                let error = ZMQError.last("send")
                // Only the first frame can fail with EAGAIN; libzmq queues the rest atomically with it.
                if error.code == EAGAIN && index == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Receives one multipart message; `nil` when none is waiting (`EAGAIN` with `dontWait`, or a timeout). A
    /// message beyond `limit` is read to its end but kept only as its first frame, marked ``Message/oversized``.
    public func receive(dontWait: Bool = true, limit: MessageSize = .unlimited) throws(ZMQError) -> Message? {
        let handle = try live("receive")
        var frames: [[UInt8]] = []
        var userID: String?
        var (count, bytes) = (0, 0)
        while true {
            zmq_msg_init(message)
            defer { zmq_msg_close(message) }
            let rc = zmq_msg_recv(message, handle, frames.isEmpty && dontWait ? ZMQ_DONTWAIT : 0)
            if rc < 0 {
                let error = ZMQError.last("receive")
                if error.code == EAGAIN && frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(message)
            count += 1
            bytes += size
            if count == 1 || (count <= limit.frames && bytes <= limit.bytes) {
                if let data = zmq_msg_data(message), size > 0 {
                    frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
                } else {
                    frames.append([])
                }
            } else if frames.count > 1 {
                frames.removeSubrange(1...)  // over the limit: keep only what identifies the sender
            }
            if userID == nil, let property = zmq_msg_gets(message, "User-Id") {
                let value = String(cString: property)
                if !value.isEmpty { userID = value }
            }
            // Read `more` before the message is closed.
            let more = zmq_msg_more(message) != 0
            if !more { break }
        }
        guard count <= limit.frames, bytes <= limit.bytes else {
            return Message(frames: Array(frames.prefix(1)), userID: userID, oversized: MessageSize(frames: count, bytes: bytes))
        }
        return Message(frames: frames, userID: userID)
    }

    /// Whether a message can be read now, without waiting (`ZMQ_EVENTS` has `ZMQ_POLLIN`).
    public var hasInput: Bool {
        ((try? get(.events)) ?? 0) & Int32(ZMQ_POLLIN) != 0
    }

    /// Polls this single socket for input up to `timeout` milliseconds (−1 waits forever).
    public func waitForInput(timeout: Int) throws(ZMQError) -> Bool {
        var item = zmq_pollitem_t(socket: try live("poll"), fd: -1, events: Int16(ZMQ_POLLIN), revents: 0)
        let rc = zmq_poll(&item, 1, timeout)
        if rc < 0 { throw ZMQError.last("poll") }
        return rc > 0 && (item.revents & Int16(ZMQ_POLLIN)) != 0
    }
}

/// One event read from a socket monitor (libzmq's version 1 format: a frame of a 16-bit event number and a 32-bit
/// value in the machine's byte order, then a frame with the endpoint the event is about).
public struct MonitorEvent: Sendable, Equatable {
    public var event: Int32
    /// The event's value: for a failed handshake, the protocol error (`ZMQ_PROTOCOL_ERROR_*`) or errno.
    public var value: UInt32
    public var endpoint: String

    /// Handshakes that failed before authentication: the peer's mechanism or keys did not match (a plain-TCP
    /// client against a CURVE server, a wrong server key). Refused by libzmq before any ZAP request.
    public static let handshakeFailedBeforeAuthentication = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL

    public init?(_ message: Message) {
        guard message.frames.count == 2, message.frames[0].count == 6 else { return nil }
        let head = message.frames[0]
        event = Int32(UInt16(head[0]) | UInt16(head[1]) << 8)
        value = UInt32(head[2]) | UInt32(head[3]) << 8 | UInt32(head[4]) << 16 | UInt32(head[5]) << 24
        endpoint = String(decoding: message.frames[1], as: UTF8.self)
    }

    /// What a failed handshake's value means, in words.
    public var reason: String {
        switch value {
        case UInt32(bitPattern: ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH): "security mechanism mismatch (plain TCP against CURVE?)"
        case UInt32(bitPattern: ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC): "CURVE handshake failed (wrong server key?)"
        // A peer that gives up mid-handshake (a plain-TCP client, after the server's greeting) may end it first.
        default: event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            ? "handshake failed: \(String(cString: strerror(Int32(bitPattern: value))))"
            : "handshake failed (protocol error \(String(value, radix: 16)))"
        }
    }
}

