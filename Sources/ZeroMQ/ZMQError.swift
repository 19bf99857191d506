internal import CZeroMQ

/// A failed libzmq call: the operation, the errno it set, and libzmq's description.
public struct ZMQError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The errno value (`EAGAIN`, `EHOSTUNREACH`, `ETERM`, …).
    public let code: Int32
    /// What was being done, e.g. `bind tcp://127.0.0.1:5570`.
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// Captures the calling thread's `zmq_errno()`.
    static func last(_ operation: String) -> ZMQError {
        ZMQError(code: zmq_errno(), operation: operation)
    }

    public var message: String { String(cString: zmq_strerror(code)) }
    public var description: String { "\(operation): \(message) (errno \(code))" }

    public static let wouldBlock = EAGAIN
    public static let interrupted = EINTR
    public static let terminated = ETERM_CODE
    public static let hostUnreachable = EHOSTUNREACH
}

let ETERM_CODE: Int32 = ETERM  // libzmq's own error code (ZMQ_HAUSNUMERO + 53)
