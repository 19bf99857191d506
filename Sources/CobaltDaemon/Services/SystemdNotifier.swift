import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd (`Type=notify`) how the daemon is doing: `READY=1` once every endpoint is bound and the services
/// run, `RELOADING=1` … `READY=1` around each rule reload, `STOPPING=1` when shutdown begins, each with a `STATUS=`
/// line for `systemctl status`.
///
/// The protocol of sd_notify(3), written by hand (libsystemd is not a dependency): one datagram per message to the
/// Unix socket named by `$NOTIFY_SOCKET` — a path, or `@name` in the abstract namespace. Without that variable
/// (not started by systemd) nothing is sent. Like sd_notify, a failure to send is not an error of the daemon's: it
/// is returned for the log, and the daemon goes on. A send waits at most ``sendTimeout`` for room in the socket.
///
/// Once `STOPPING=1` has been sent, later messages (a reload finishing during the drain would say `READY=1`) are
/// dropped. One notifier is shared by everything that reports, so that this holds across them.
public final class SystemdNotifier: Sendable {
    /// The socket's address bytes, nil when there is no (usable) `$NOTIFY_SOCKET`.
    private let address: [UInt8]?
    private let stopping = Mutex(false)
    static let sendTimeout = timeval(tv_sec: 1, tv_usec: 0)

    /// From this process's environment.
    public convenience init() { self.init(environment: ProcessInfo.processInfo.environment) }

    package init(environment: [String: String]) {
        guard let socket = environment["NOTIFY_SOCKET"], socket.hasPrefix("/") || socket.hasPrefix("@") else {
            address = nil
            return
        }
        var bytes = Array(socket.utf8)
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        // sun_path holds 108 bytes, a path's terminating NUL included.
        address = bytes.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) ? bytes : nil
    }

    /// Whether messages go anywhere.
    public var isActive: Bool { address != nil }

    /// Sends one message (`KEY=value` lines; a line break inside a value becomes a space); returns why it could not
    /// be sent, nil when it was, or when there is nothing to send it to or it comes after `STOPPING=1`.
    @discardableResult
    package func notify(_ lines: [String]) -> String? {
        guard let address else { return nil }
        let stops = lines.contains("STOPPING=1")
        let stoppedBefore = stopping.withLock { stopped in
            let before = stopped
            stopped = stopped || stops
            return before
        }
        if stoppedBefore { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var timeout = Self.sendTimeout
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var destination = sockaddr_un()
        destination.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &destination.sun_path) { path in
            path.copyBytes(from: address)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count)
        let message = Array(lines.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n").utf8)
        let (sent, error) = withUnsafePointer(to: &destination) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddr in
                message.withUnsafeBytes { (sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sockaddr, length), errno) }
            }
        }
        guard sent != message.count else { return nil }
        let name = String(decoding: address.map { $0 == 0 ? UInt8(ascii: "@") : $0 }, as: UTF8.self)
        return "sendto \(name): \(String(cString: strerror(error)))"
    }

    /// Sends one message (``notify(_:)``); a failure is logged as a warning, and the daemon goes on.
    func send(_ lines: [String], logger: Logger) {
        if let error = notify(lines) {
            logger.warning("systemd notification not sent", metadata: ["error": "\(error)"])
        }
    }

    /// `MONOTONIC_USEC=…`, which systemd wants beside `RELOADING=1` (since version 253; older ones ignore it).
    package static var monotonicMicroseconds: String {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return "MONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000)"
    }
}
