import Foundation
import Synchronization
import ZeroMQ

/// What one sending client saw: per event (indexed from the first event of its slice) the monotonic send and
/// reply times (0: not sent / no reply), and the reply outcomes.
struct SendResult: Sendable {
    var first: Int
    var sendTimes: [UInt64]
    var replyTimes: [UInt64]
    var accepted = 0
    var duplicate = 0
    var rejected = 0
    var firstRejection: String?
    /// Sending stopped at the scenario's time cap before every event was sent.
    var capped = false
    /// Open loop only: the largest delay of a send behind its scheduled time.
    var maxScheduleLag: UInt64 = 0

    init(first: Int, count: Int) {
        self.first = first
        sendTimes = Array(repeating: 0, count: count)
        replyTimes = Array(repeating: 0, count: count)
    }

    var sent: Int { sendTimes.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }
    var replied: Int { replyTimes.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }

    /// Send-to-reply latencies of the events that got a reply.
    var latencies: [UInt64] {
        zip(sendTimes, replyTimes).compactMap { sent, replied in replied > 0 && sent > 0 ? replied - sent : nil }
    }

    /// How replies are judged: the daemon's ACK (`status`) or any echo.
    enum Mode: Sendable { case daemon, echo }

    mutating func record(_ payload: [UInt8], at time: UInt64, mode: Mode) -> Bool {
        guard let index = payload.eventIndex(), index >= first, index < first + replyTimes.count else { return false }
        let slot = index - first
        guard replyTimes[slot] == 0 else { return false }
        replyTimes[slot] = time
        switch mode {
        case .echo: accepted += 1
        case .daemon:
            switch payload.stringField("status") {
            case "accepted": accepted += 1
            case "duplicate": duplicate += 1
            default:
                rejected += 1
                if firstRejection == nil { firstRejection = String(decoding: payload, as: UTF8.self) }
            }
        }
        return true
    }

    static func merged(_ parts: [SendResult]) -> (latencies: [UInt64], accepted: Int, duplicate: Int, rejected: Int, sent: Int, replied: Int,
                                                  firstSend: UInt64, lastReply: UInt64, replyTimes: [UInt64], capped: Bool, firstRejection: String?) {
        var latencies: [UInt64] = []
        var replyTimes: [UInt64] = []
        var accepted = 0, duplicate = 0, rejected = 0, sent = 0, replied = 0
        var firstSend = UInt64.max, lastReply: UInt64 = 0
        var capped = false
        var firstRejection: String?
        for part in parts {
            latencies += part.latencies
            replyTimes += part.replyTimes.filter { $0 > 0 }
            accepted += part.accepted
            duplicate += part.duplicate
            rejected += part.rejected
            sent += part.sent
            replied += part.replied
            firstSend = min(firstSend, part.sendTimes.filter { $0 > 0 }.min() ?? .max)
            lastReply = max(lastReply, part.replyTimes.max() ?? 0)
            capped = capped || part.capped
            firstRejection = firstRejection ?? part.firstRejection
        }
        return (latencies, accepted, duplicate, rejected, sent, replied, firstSend, lastReply, replyTimes.sorted(), capped, firstRejection)
    }
}

enum Clients {
    /// A DEALER connected to `endpoint`, tuned for pipelining (high-water marks above the window, no linger).
    static func dealer(_ context: ZMQContext, _ endpoint: String, window: Int = 1_000) throws -> ZMQSocket {
        let socket = try ZMQSocket(context: context, type: .dealer, linger: 0)
        try socket.set(.sendHighWaterMark, Int32(max(1_000, window * 2)))
        try socket.set(.receiveHighWaterMark, Int32(max(1_000, window * 2)))
        try socket.set(.immediate, 1)
        try socket.connect(endpoint)
        return socket
    }

    /// Closed loop: keeps up to `window` events in flight, sending the next as soon as a reply frees a slot, until
    /// `events[range]` are all answered. Stops sending at `sendDeadline`; gives up waiting 10 s after it.
    static func windowed(
        context: ZMQContext, endpoint: String, events: [[UInt8]], range: Range<Int>, window: Int, sendDeadline: UInt64, mode: SendResult.Mode
    ) throws -> SendResult {
        let socket = try dealer(context, endpoint, window: window)
        defer { socket.close() }
        var result = SendResult(first: range.lowerBound, count: range.count)
        var next = range.lowerBound
        var inFlight = 0
        while true {
            while inFlight < window, next < range.upperBound, !result.capped {
                try socket.send([events[next]], dontWait: false)
                result.sendTimes[next - range.lowerBound] = nowNanoseconds()
                next += 1
                inFlight += 1
            }
            if inFlight == 0, next == range.upperBound || result.capped { break }
            if try socket.waitForInput(timeout: 100) {
                while let message = try socket.receive(dontWait: true) {
                    let time = nowNanoseconds()
                    if let payload = message.frames.last, result.record(payload, at: time, mode: mode) { inFlight -= 1 }
                }
            }
            let now = nowNanoseconds()
            if now > sendDeadline, next < range.upperBound { result.capped = true }
            if now > sendDeadline + 10_000_000_000 { break }
        }
        return result
    }

    /// Open loop: sends event `i` at `start + i / rate` by the clock, whether or not earlier events have been
    /// answered, and records each reply. The thread sleeps in `zmq_poll` between sends (1 ms resolution), so sends
    /// go out in ticks of about `rate / 1000` events; each event's latency is measured from its actual send time.
    static func paced(
        context: ZMQContext, endpoint: String, events: [[UInt8]], rate: Double, sendDeadline: UInt64, mode: SendResult.Mode,
        waitAfterSending: UInt64 = 30_000_000_000
    ) throws -> SendResult {
        let socket = try dealer(context, endpoint, window: 10_000)
        defer { socket.close() }
        var result = SendResult(first: 0, count: events.count)
        let interval = 1e9 / rate
        let start = nowNanoseconds() + 1_000_000
        var next = 0
        var replied = 0
        var lastSend: UInt64 = 0
        while replied < events.count {
            var now = nowNanoseconds()
            if next < events.count, !result.capped {
                let due = now >= start ? min(events.count, Int(Double(now - start) / interval) + 1) : 0
                while next < due {
                    try socket.send([events[next]], dontWait: false)
                    now = nowNanoseconds()
                    result.sendTimes[next] = now
                    let scheduled = start + UInt64(Double(next) * interval)
                    if now > scheduled { result.maxScheduleLag = max(result.maxScheduleLag, now - scheduled) }
                    lastSend = now
                    next += 1
                }
            }
            while let message = try socket.receive(dontWait: true) {
                let time = nowNanoseconds()
                if let payload = message.frames.last, result.record(payload, at: time, mode: mode) { replied += 1 }
            }
            if replied == events.count { break }
            now = nowNanoseconds()
            if next < events.count, now > sendDeadline { result.capped = true }
            if next == events.count || result.capped, now > lastSend + waitAfterSending { break }
            var timeout = 100
            if next < events.count, !result.capped {
                let nextDue = start + UInt64(Double(next) * interval)
                timeout = nextDue > now ? Int((nextDue - now + 999_999) / 1_000_000) : 0
            }
            if timeout > 0 { _ = try socket.waitForInput(timeout: timeout) }
        }
        return result
    }

    /// One request on a fresh DEALER; the reply's payload, or nil after `timeout` ms.
    static func request(context: ZMQContext, endpoint: String, _ payload: [UInt8], timeout: Int = 10_000) throws -> [UInt8]? {
        let socket = try dealer(context, endpoint)
        defer { socket.close() }
        try socket.send([payload], dontWait: false)
        guard try socket.waitForInput(timeout: timeout), let message = try socket.receive(dontWait: true) else { return nil }
        return message.frames.last
    }
}

// MARK: - Status polling (control endpoint)

struct StatusSample: Sendable {
    var time: UInt64
    var accepted: Int
    var evaluated: Int
    var unevaluated: Int
    var published: Int
}

/// What the poller has seen so far (shared between its thread and the main thread).
final class StatusBoard: Sendable {
    private let samples = Mutex<[StatusSample]>([])
    let stop = Flag()

    func append(_ sample: StatusSample) { samples.withLock { $0.append(sample) } }
    var all: [StatusSample] { samples.withLock { $0 } }
    var latest: StatusSample? { samples.withLock { $0.last } }
}

/// Polls `{"command":"status"}` on the control endpoint every `interval` ms on its own thread until stopped.
final class StatusPoller: Sendable {
    let board = StatusBoard()
    private let worker: Worker<Void>

    init(context: ZMQContext, endpoint: String, intervalMilliseconds: Int) {
        let board = self.board
        worker = Worker("status-poller") {
            guard let socket = try? Clients.dealer(context, endpoint) else { return }
            defer { socket.close() }
            let request = Array(#"{"command":"status"}"#.utf8)
            while !board.stop.isSet {
                let asked = nowNanoseconds()
                guard (try? socket.send([request], dontWait: false)) == true else { return }
                if (try? socket.waitForInput(timeout: 5_000)) == true, let message = try? socket.receive(dontWait: true),
                    let payload = message.frames.last
                {
                    board.append(StatusSample(
                        time: nowNanoseconds(), accepted: payload.intField("accepted") ?? -1, evaluated: payload.intField("evaluated") ?? -1,
                        unevaluated: payload.intField("unevaluated") ?? -1, published: payload.intField("published") ?? -1))
                }
                let elapsed = (nowNanoseconds() - asked) / 1_000_000
                if elapsed < UInt64(intervalMilliseconds) { usleep(UInt32((UInt64(intervalMilliseconds) - elapsed) * 1_000)) }
            }
        }
    }

    /// Waits until a sample shows `evaluated ≥ target`, or until `deadline`; returns that sample's time (or nil).
    func waitForEvaluated(_ target: Int, deadline: UInt64) -> UInt64? {
        while nowNanoseconds() < deadline {
            if let sample = board.latest, sample.evaluated >= target { return sample.time }
            usleep(20_000)
        }
        return nil
    }

    func stop() {
        board.stop.set()
        _ = try? worker.join()
    }
}

// MARK: - Alert subscriber

struct AlertRecord: Sendable {
    var patient: String
    var status: String
    var time: UInt64
}

/// A SUB socket subscribed to `clinic/` (every clinic's alerts and heartbeats) on its own thread; records each
/// alert's patient, status and arrival time.
final class AlertSubscriber: Sendable {
    private let records = Mutex<[AlertRecord]>([])
    private let count = Atomic<Int>(0)
    private let stopFlag = Flag()
    private let ready = Handoff<String>()
    private var worker: Worker<Void>? { workerBox.withLock { $0 } }
    private let workerBox = Mutex<Worker<Void>?>(nil)

    init(context: ZMQContext, endpoint: String) throws {
        let box = self
        workerBox.withLock { $0 = Worker("alert-subscriber") { box.run(context: context, endpoint: endpoint) } }
        guard let outcome = ready.take(timeoutSeconds: 10), outcome.isEmpty else {
            stop()
            throw BenchmarkError("subscriber: \(ready.take(timeoutSeconds: 0) ?? "did not start")")
        }
    }

    private func run(context: ZMQContext, endpoint: String) {
        let socket: ZMQSocket
        do {
            socket = try ZMQSocket(context: context, type: .sub, linger: 0)
            try socket.set(.receiveHighWaterMark, 1_000_000)
            try socket.set(.subscribe, Array("clinic/".utf8))
            try socket.connect(endpoint)
        } catch {
            ready.put("\(error)")
            return
        }
        defer { socket.close() }
        ready.put("")
        var local: [AlertRecord] = []
        local.reserveCapacity(100_000)
        while !stopFlag.isSet {
            guard (try? socket.waitForInput(timeout: 50)) == true else { continue }
            while let message = try? socket.receive(dontWait: true) {
                let time = nowNanoseconds()
                guard message.frames.count == 2, message.frames[0].count > 6, message.frames[0].suffix(6).elementsEqual("/alert".utf8) else { continue }
                let body = message.frames[1]
                guard let patient = body.stringField("patient") else { continue }
                local.append(AlertRecord(patient: String(patient), status: String(body.stringField("status") ?? "?"), time: time))
                count.add(1, ordering: .relaxed)
            }
            if !local.isEmpty {
                let batch = local
                records.withLock { $0.append(contentsOf: batch) }
                local.removeAll(keepingCapacity: true)
            }
        }
    }

    var received: Int { count.load(ordering: .relaxed) }
    var all: [AlertRecord] { records.withLock { $0 } }

    func stop() {
        stopFlag.set()
        _ = try? worker?.join()
    }
}

// MARK: - Echo baseline

/// A bare ROUTER on its own thread that sends every message straight back (routing id and payload), so the
/// DEALER client sees the same envelope and bytes as with the daemon, minus all the daemon's work.
final class EchoServer: Sendable {
    let endpoint: String
    private let stopFlag = Flag()
    private let worker: Worker<Int>

    init(context: ZMQContext) throws {
        let ready = Handoff<String>()
        let stopFlag = self.stopFlag
        worker = Worker("echo-router") {
            let socket = try ZMQSocket(context: context, type: .router, linger: 0)
            defer { socket.close() }
            do {
                try socket.set(.sendHighWaterMark, 100_000)
                try socket.set(.receiveHighWaterMark, 100_000)
                try socket.bind("tcp://127.0.0.1:*")
                ready.put(try socket.lastEndpoint)
            } catch {
                ready.put("")
                throw error
            }
            var echoed = 0
            while !stopFlag.isSet {
                guard try socket.waitForInput(timeout: 50) else { continue }
                while let message = try socket.receive(dontWait: true) {
                    try socket.send(message.frames, dontWait: false)
                    echoed += 1
                }
            }
            return echoed
        }
        guard let bound = ready.take(timeoutSeconds: 10), !bound.isEmpty else {
            stopFlag.set()
            throw BenchmarkError("echo server did not bind")
        }
        endpoint = bound
    }

    @discardableResult
    func stop() -> Int {
        stopFlag.set()
        return (try? worker.join()) ?? -1
    }
}
