internal import CZeroMQ
import Synchronization

/// A libzmq context. Thread-safe (as libzmq's context is); every socket keeps its context alive.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let terminated = Mutex(false)

    public init() throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
    }

    /// Whether libzmq was built with a capability, e.g. `"curve"`.
    public static func has(_ capability: String) -> Bool {
        zmq_has(capability) == 1
    }

    /// libzmq's version as `major.minor.patch`.
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Makes every blocking call on this context's sockets return `ETERM`, so their threads can close them.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    /// Terminates the context; waits for sockets to close (their linger is bounded), retrying on EINTR.
    public func terminate() {
        let first = terminated.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    deinit {
        terminate()
    }
}

