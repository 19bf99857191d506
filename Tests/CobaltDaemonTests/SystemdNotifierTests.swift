@testable import CobaltDaemon
import CobaltTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A Unix datagram socket standing in for systemd's notification socket: a path, or `@name` (abstract).
final class NotifySocket {
    let name: String
    private let fd: Int32

    init(_ name: String) throws {
        self.name = name
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EINVAL) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw POSIXError(.ENAMETOOLONG) }
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EINVAL) }  // deinit closes fd
    }

    deinit { close(fd) }

    /// The next message, or nil after `timeout` seconds without one.
    func receive(timeout: Double = 10) -> String? {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&poll, 1, Int32(timeout * 1_000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count < 0 ? nil : String(decoding: buffer.prefix(count), as: UTF8.self)
    }

    /// Messages until one contains `line` (that one included), or nil if none comes in time.
    func receive(until line: String, timeout: Double = 60) -> [String]? {
        let deadline = Date().addingTimeInterval(timeout)
        var messages: [String] = []
        while let message = receive(timeout: max(0, deadline.timeIntervalSinceNow)) {
            messages.append(message)
            if message.split(separator: "\n").contains(Substring(line)) { return messages }
        }
        return nil
    }
}

@Suite struct SystemdNotifierTests {
    /// Messages reach a socket given as a path or in the abstract namespace (`@…`), one datagram each, lines
    /// joined by newlines; without a usable `NOTIFY_SOCKET` nothing is active and nothing is sent; nothing after
    /// `STOPPING=1`.
    @Test func sendsToPathsAndAbstractSocketsOnly() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        for name in [scratch.path + "/notify", "@cobalt-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"] {
            let socket = try NotifySocket(name)
            let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name])
            #expect(notifier.isActive)
            #expect(notifier.notify(["READY=1", "STATUS=serving"]) == nil)
            #expect(socket.receive() == "READY=1\nSTATUS=serving")
        }
        for unusable in [[:], ["NOTIFY_SOCKET": ""], ["NOTIFY_SOCKET": "relative/notify"],
                         ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 120)]] {
            let notifier = SystemdNotifier(environment: unusable)
            #expect(!notifier.isActive && notifier.notify(["READY=1"]) == nil, "\(unusable)")
        }
        // A value's line break cannot start a line of its own; after STOPPING=1 nothing more is said (a reload
        // finishing during the drain would say READY=1).
        let socket = try NotifySocket(scratch.path + "/stopping")
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.name])
        notifier.notify(["READY=1", "STATUS=rules 1\nREADY=0"])
        notifier.notify(["STOPPING=1"])
        notifier.notify(["READY=1", "STATUS=serving"])
        #expect(socket.receive() == "READY=1\nSTATUS=rules 1 READY=0")
        #expect(socket.receive() == "STOPPING=1")
        #expect(socket.receive(timeout: 0.2) == nil)
        // A socket that is not there: the reason comes back for the log (sd_notify's caller goes on, too).
        let missing = SystemdNotifier(environment: ["NOTIFY_SOCKET": scratch.path + "/gone"])
        #expect(missing.notify(["READY=1"])?.contains("/gone") == true)
    }
}
