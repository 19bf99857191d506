import Foundation
import Synchronization
import Testing
import ZeroMQ

/// Runs blocking zmq client code on its own thread, never on the Swift concurrency pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }.start()
    }
}

/// A value behind a lock, in a class: for closures that outlive their scope, which cannot capture a `Mutex`.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Receives with a timeout (milliseconds), or nil. The default is generous: a message that must come may take seconds
/// on a busy machine (2 s was not always enough); pass a short one where nothing must come.
func receive(_ socket: ZMQSocket, timeout: Int = 60_000) throws -> Message? {
    guard try socket.waitForInput(timeout: timeout) else { return nil }
    return try socket.receive(dontWait: true)
}

@Suite(.timeLimit(.minutes(3))) struct ZMQSocketTests {
    @Test func typedOptionsRoundTrip() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context: context, type: .router)
        try socket.set(.maxMessageSize, 65_536)
        #expect(try socket.get(.maxMessageSize) == 65_536)
        try socket.set(.receiveHighWaterMark, 10)
        #expect(try socket.get(.receiveHighWaterMark) == 10)
        #expect(try socket.get(.linger) == 1_000)
        try socket.set(.routingID, Array("abc".utf8))
        #expect(try socket.get(.routingID) == Array("abc".utf8))
        #expect(ZMQContext.has("curve"))
    }

    @Test func errorsCarryErrno() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context: context, type: .router)
        #expect {
            try socket.bind("tcp://not-an-address:-1")
        } throws: { error in
            let error = error as! ZMQError
            return error.code != 0 && error.operation == "bind tcp://not-an-address:-1" && !error.message.isEmpty
        }
        #expect(throws: ZMQError.self) { try socket.set(.curveServerKey, "too short") }
    }

    @Test func routerDealerRoundTripOnAnEphemeralPort() async throws {
        let reply = try await onThread { () -> [String] in
            let context = try ZMQContext()
            let router = try ZMQSocket(context: context, type: .router)
            try router.bind("tcp://127.0.0.1:*")
            let endpoint = try router.lastEndpoint
            precondition(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.connect(endpoint)
            #expect(try dealer.receive(dontWait: true) == nil)  // EAGAIN is nil, not an error
            try dealer.send([Array("hello".utf8), Array("world".utf8)])
            let request = try #require(try receive(router))
            #expect(request.frames.count == 3)  // routing id + two frames
            try router.send([request.frames[0], Array("ok".utf8)])
            let answer = try #require(try receive(dealer))
            return answer.frames.map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(reply == ["ok"])
    }

    /// A CURVE server's monitor reports a plain-TCP client's failed handshake, read back as a ``MonitorEvent`` with
    /// the server's endpoint; a good handshake is not reported (only failures are asked for).
    @Test func aMonitorReportsFailedHandshakes() async throws {
        let events = try await onThread { () -> [MonitorEvent] in
            let context = try ZMQContext()
            let keys = try CurveKeyPair.generate()
            let server = try ZMQSocket(context: context, type: .router)
            try server.set(.curveServer, 1)
            try server.set(.curveSecretKey, keys.secretKey)
            try server.monitor("inproc://test.monitor", events: MonitorEvent.handshakeFailedBeforeAuthentication)
            try server.bind("tcp://127.0.0.1:*")
            let endpoint = try server.lastEndpoint
            let monitor = try ZMQSocket(context: context, type: .pair)
            try monitor.connect("inproc://test.monitor")
            let good = try ZMQSocket(context: context, type: .dealer)
            let client = try CurveKeyPair.generate()
            try good.set(.curveServerKey, keys.publicKey)
            try good.set(.curvePublicKey, client.publicKey)
            try good.set(.curveSecretKey, client.secretKey)
            try good.connect(endpoint)
            try good.send([Array("hi".utf8)])
            _ = try #require(try receive(server))  // the good client's handshake is done
            let plain = try ZMQSocket(context: context, type: .dealer)
            try plain.connect(endpoint)
            try plain.send([Array("hi".utf8)])
            var events: [MonitorEvent] = []
            if let message = try receive(monitor) { events.append(try #require(MonitorEvent(message))) }
            while let message = try receive(monitor, timeout: 300) { events.append(try #require(MonitorEvent(message))) }
            return events
        }
        #expect(!events.isEmpty && events.allSatisfy { $0.endpoint.hasPrefix("tcp://127.0.0.1:") }, "\(events)")
        #expect(events.allSatisfy { ($0.event & MonitorEvent.handshakeFailedBeforeAuthentication) != 0 }, "\(events)")
    }

    @Test func oversizedMessagesAreNeverDelivered() async throws {
        let result = try await onThread { () -> (Message?, Message?) in
            let context = try ZMQContext()
            let router = try ZMQSocket(context: context, type: .router)
            try router.set(.maxMessageSize, 1_024)
            try router.bind("tcp://127.0.0.1:*")
            let small = try ZMQSocket(context: context, type: .dealer)
            try small.connect(try router.lastEndpoint)
            let big = try ZMQSocket(context: context, type: .dealer)
            try big.connect(try router.lastEndpoint)
            try big.send([[UInt8](repeating: 1, count: 4_096)])
            let oversized = try receive(router, timeout: 500)
            try small.send([[UInt8](repeating: 2, count: 100)])
            return (oversized, try receive(router))
        }
        #expect(result.0 == nil)
        #expect(result.1?.frames.last?.count == 100)
    }

    /// libzmq's size limit is per frame, so a message of many frames each under it gets through whole; a receive
    /// with a ``MessageSize`` limit keeps only its first frame (the routing id, to answer with) and says how large it
    /// was — whether too many frames or too many bytes — and the next message arrives intact.
    @Test func messagesOverTheWholeMessageLimitKeepOnlyTheirRoutingID() async throws {
        let results = try await onThread { () -> [Message?] in
            let context = try ZMQContext()
            let router = try ZMQSocket(context: context, type: .router)
            try router.set(.maxMessageSize, 1_024)
            try router.bind("tcp://127.0.0.1:*")
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.set(.routingID, Array("sender".utf8))
            try dealer.connect(try router.lastEndpoint)
            let limit = MessageSize(frames: 4, bytes: 2_000)
            func next() throws -> Message? {
                guard try router.waitForInput(timeout: 60_000) else { return nil }
                return try router.receive(dontWait: true, limit: limit)
            }
            var received: [Message?] = []
            try dealer.send(Array(repeating: [UInt8](repeating: 7, count: 1_000), count: 50))  // 50 frames, each allowed
            received.append(try next())
            try dealer.send([[UInt8](repeating: 1, count: 1_000), [UInt8](repeating: 2, count: 1_000)])  // 2,006 bytes
            received.append(try next())
            try dealer.send([[], [], [], [UInt8](repeating: 3, count: 10)])  // 5 frames with the routing id
            received.append(try next())
            try dealer.send([[], Array("ok".utf8)])  // within both limits
            received.append(try next())
            return received
        }
        let id = Array("sender".utf8)
        #expect(results[0]?.frames == [id] && results[0]?.oversized?.frames == 51 && results[0]?.oversized?.bytes == 50_006)
        #expect(results[1]?.frames == [id] && results[1]?.oversized?.frames == 3 && results[1]?.oversized?.bytes == 2_006)
        #expect(results[2]?.frames == [id] && results[2]?.oversized?.frames == 5)
        #expect(results[3]?.frames == [id, [], Array("ok".utf8)] && results[3]?.oversized == nil)
    }

    /// libzmq 4.3 in manual mode: a data message from an XSUB peer, queued before another subscriber's request,
    /// makes that request apply to the connection queued after it — here the XSUB peer's, which would then receive
    /// clinic B's alerts. Read through ``ManualSubscriptions``, nothing queued behind such a message is applied:
    /// clinic B's alert reaches nobody (its subscriber resubscribes), and a subscription read once the queue was
    /// empty is applied to its own connection.
    @Test func aDataMessageFromAnXSUBPeerCannotStealAnotherSubscription() async throws {
        let (attacker, victim, late, victimSkipped) = try await onThread { () -> ([String], [String], [String], Bool) in
            let context = try ZMQContext()
            let xpub = try ZMQSocket(context: context, type: .xpub)
            try xpub.set(.xpubManual, 1)
            try xpub.set(.xpubVerbose, 1)
            try xpub.bind("tcp://127.0.0.1:*")
            let endpoint = try xpub.lastEndpoint
            func settle() { Thread.sleep(forTimeInterval: 0.2); _ = xpub.hasInput }  // let libzmq queue what arrived
            let attacker = try ZMQSocket(context: context, type: .xsub)
            try attacker.connect(endpoint)
            settle()
            try attacker.send([Array("\u{5}junk".utf8)])
            // The junk must be queued before the victim's request (that is the attack): waited for, as a fixed
            // 0.2 s could be too short on a busy machine.
            let queued = ContinuousClock.now + .seconds(60)
            while !xpub.hasInput, ContinuousClock.now < queued { Thread.sleep(forTimeInterval: 0.01) }
            let victim = try ZMQSocket(context: context, type: .sub)
            try victim.set(.subscribe, Array("clinic/B/".utf8))
            try victim.connect(endpoint)
            settle()
            try attacker.send([[1] + Array("clinic/X/".utf8)])
            settle()
            var subscriptions = ManualSubscriptions()
            var verdicts: [ManualSubscriptions.Verdict] = []
            func drain() throws {
                while let message = try xpub.receive(dontWait: true) {
                    let verdict = subscriptions.check(message, on: xpub)
                    verdicts.append(verdict)
                    if case .subscription(let subscribe, let topic) = verdict {
                        try xpub.set(subscribe ? .subscribe : .unsubscribe, topic)
                    }
                }
            }
            try drain()
            // The attack as set up: the victim's request was read behind the junk (on a busy machine it can come
            // later, once the queue was read empty, and is then rightly applied to the victim's own connection).
            let victimSkipped = verdicts.contains(.skipped(subscribe: true, topic: Array("clinic/B/".utf8)))
            // Once the queue is empty, pairing is sound again: a later subscriber gets what it asked for.
            let late = try ZMQSocket(context: context, type: .sub)
            try late.set(.subscribe, Array("clinic/C/".utf8))
            try late.connect(endpoint)
            // Until its request has been read and applied (one settle could be too short on a busy machine).
            let applied = ContinuousClock.now + .seconds(60)
            repeat {
                settle()
                try drain()
            } while !verdicts.contains(.subscription(subscribe: true, topic: Array("clinic/C/".utf8))) && ContinuousClock.now < applied
            for topic in ["clinic/B/alert", "clinic/X/alert", "clinic/C/alert"] {
                _ = try xpub.send([Array(topic.utf8), Array("body".utf8)])
            }
            _ = try late.waitForInput(timeout: 60_000)  // the late subscriber's alert has come (0.3 s could be too short)
            Thread.sleep(forTimeInterval: 0.3)
            func topics(_ socket: ZMQSocket) throws -> [String] {
                var seen: [String] = []
                while let message = try socket.receive(dontWait: true) { seen.append(String(decoding: message.frames[0], as: UTF8.self)) }
                return seen
            }
            return (try topics(attacker), try topics(victim), try topics(late), victimSkipped)
        }
        #expect(!attacker.contains("clinic/B/alert"), "\(attacker)")
        #expect(victimSkipped ? victim.isEmpty : victim.allSatisfy { $0 == "clinic/B/alert" }, "\(victim), skipped: \(victimSkipped)")
        #expect(late == ["clinic/C/alert"], "\(late)")
    }

    @Test func routerMandatoryReportsUnknownPeers() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context: context, type: .router)
        try router.set(.routerMandatory, 1)
        try router.bind("tcp://127.0.0.1:*")
        #expect {
            try router.send([Array("nobody".utf8), Array("x".utf8)])
        } throws: { error in
            (error as! ZMQError).code == ZMQError.hostUnreachable
        }
    }
}

@Suite(.timeLimit(.minutes(3))) struct SocketLoopTests {
    /// A socket with `deliver` hands its batches to the closure on the loop thread, and reading still pauses at
    /// `maxInFlight` until the consumer releases credit.
    @Test func deliversOnTheLoopThreadWithinCredit() async throws {
        let context = try ZMQContext()
        let received = Mutex<[String]>([])
        let threads = Mutex<Set<String>>([])
        let loop = try await SocketLoop.start(
            context: context, name: "test-deliver",
            specs: [SocketSpec(name: "in", type: .router, bind: ["tcp://127.0.0.1:*"], maxInFlight: 5, deliver: { batch in
                // The kernel's name of the calling thread (the loop names its thread after itself).
                let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
                threads.withLock { _ = $0.insert(name.trimmingCharacters(in: .newlines)) }
                received.withLock { $0 += batch.map { String(decoding: $0.frames.last ?? [], as: UTF8.self) } }
            })])
        let endpoint = try #require(loop.endpoints.first?.first)
        try await onThread {
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.connect(endpoint)
            for i in 0..<12 { try dealer.send([Array("m\(i)".utf8)]) }
        }
        /// How many have arrived once `expected` have (or after 60 s). Waiting for a count that is merely a multiple
        /// of the credit raced: right after a release the count was still the old one, the next release came too
        /// early, and the credit it returned was more than was taken.
        func count(reaching expected: Int) async throws -> Int {
            let deadline = ContinuousClock.now + .seconds(60)
            while received.withLock({ $0.count }) < expected, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            return received.withLock { $0.count }
        }
        #expect(try await count(reaching: 5) == 5)
        try await Task.sleep(for: .milliseconds(200))
        #expect(received.withLock { $0.count } == 5)  // credit exhausted: no more reads
        loop.release(SocketLoop.Socket(0), count: 5)
        #expect(try await count(reaching: 10) == 10)
        try await Task.sleep(for: .milliseconds(200))
        #expect(received.withLock { $0.count } == 10)  // exhausted again
        loop.release(SocketLoop.Socket(0), count: 5)
        _ = try await count(reaching: 12)
        #expect(received.withLock { $0 } == (0..<12).map { "m\($0)" })
        #expect(threads.withLock { $0 } == ["test-deliver"])  // the loop's own thread
        await loop.stop()
    }

    @Test func echoesThroughTheLoop() async throws {
        let context = try ZMQContext()
        let loop = try await SocketLoop.start(
            context: context, name: "test-echo",
            specs: [SocketSpec(name: "echo", type: .router, bind: ["tcp://127.0.0.1:*"], maxInFlight: 16)])
        let endpoint = try #require(loop.endpoints.first?.first)
        let server = Task {
            for await batch in loop.inbound[0] {
                for message in batch { loop.send(.init(0), message.frames) }
                loop.release(.init(0), count: batch.count)
            }
        }
        let replies = try await onThread { () -> [String] in
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.connect(endpoint)
            var replies: [String] = []
            for i in 0..<50 { try dealer.send([Array("m\(i)".utf8)]) }
            while replies.count < 50, let reply = try receive(dealer, timeout: 10_000) {  // generous: tests run in parallel
                replies.append(String(decoding: reply.frames[0], as: UTF8.self))
            }
            return replies
        }
        #expect(replies == (0..<50).map { "m\($0)" })
        await loop.stop()
        await server.value
    }

    /// At most `maxInFlight` messages are handed out until the consumer releases them; none is lost.
    @Test func backpressurePausesReadingWithoutLoss() async throws {
        let context = try ZMQContext()
        let loop = try await SocketLoop.start(
            context: context, name: "test-backpressure",
            specs: [SocketSpec(name: "in", type: .router, bind: ["tcp://127.0.0.1:*"], maxInFlight: 3)])
        let endpoint = try #require(loop.endpoints.first?.first)
        // A consumer that records messages but withholds credit until `releasing` is set.
        let received = Locked<[String]>([])
        let sender = Task {
            try await onThread {
                let dealer = try ZMQSocket(context: context, type: .dealer)
                try dealer.connect(endpoint)
                for i in 0..<200 { try dealer.send([Array("\(i)".utf8)], dontWait: false) }
                // Keep the connection open until everything is read (a fixed 3 s could be too short on a busy machine).
                let deadline = ContinuousClock.now + .seconds(60)
                while received.withLock({ $0.count }) < 200, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
            }
        }
        let releasing = Mutex(false)
        let consumer = Task {
            for await batch in loop.inbound[0] {
                let count = received.withLock { list -> Int in
                    list += batch.map { String(decoding: $0.frames[1], as: UTF8.self) }
                    return list.count
                }
                if releasing.withLock({ $0 }) { loop.release(.init(0), count: batch.count) }
                if count == 200 { break }
            }
        }
        // Wait until the credit is used up, then make sure nothing beyond it is delivered.
        let deadline = ContinuousClock.now + .seconds(60)
        while received.withLock({ $0.count }) < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(received.withLock { $0 } == ["0", "1", "2"])
        releasing.withLock { $0 = true }
        loop.release(.init(0), count: 3)
        await consumer.value
        #expect(received.withLock { $0 } == (0..<200).map(String.init))
        await loop.stop()
        try await sender.value
    }

    /// A ROUTER peer that stops reading its replies holds up no other peer: once its pipe is full (EAGAIN under
    /// ROUTER_MANDATORY) its replies are held, at most `heldPerPeer` of them (the oldest dropped and reported),
    /// while another peer's reply goes out at once. When it reads again it gets the rest in order.
    @Test func aPeerThatDoesNotReadHoldsUpNoOtherPeer() async throws {
        let context = try ZMQContext()
        let peers = Mutex<[String: [UInt8]]>([:])
        let dropped = Mutex(0)
        let loop = try await SocketLoop.start(
            context: context, name: "test-held",
            specs: [SocketSpec(
                name: "replies", type: .router, bind: ["tcp://127.0.0.1:*"], maxInFlight: 16,
                deliver: { batch in
                    peers.withLock { for message in batch { $0[String(decoding: message.frames[1], as: UTF8.self)] = message.frames[0] } }
                },
                heldPerPeer: 50,
                configure: { socket in
                    try socket.set(.routerMandatory, 1)
                    try socket.set(.sendHighWaterMark, 1)
                    try socket.set(.sendBuffer, 4_096)
                })],
            onSendError: { _, error in
                if error.code == EAGAIN { dropped.withLock { $0 += 1 } }
            })
        let endpoint = try #require(loop.endpoints.first?.first)
        let total = 2_000
        let (hello, received) = try await onThread { () -> (String?, [Int]) in
            let stuck = try ZMQSocket(context: context, type: .dealer)
            try stuck.set(.receiveHighWaterMark, 1)
            try stuck.set(.receiveBuffer, 4_096)
            try stuck.connect(endpoint)
            try stuck.send([Array("stuck".utf8)])
            let healthy = try ZMQSocket(context: context, type: .dealer)
            try healthy.connect(endpoint)
            try healthy.send([Array("healthy".utf8)])
            let deadline = ContinuousClock.now + .seconds(60)
            while peers.withLock({ $0.count }) < 2, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
            let ids = peers.withLock { $0 }
            guard let stuckID = ids["stuck"], let healthyID = ids["healthy"] else { return (nil, []) }
            // Far more than the stuck peer's pipe and both kernel buffers hold, then one reply to the other peer.
            let padding = [UInt8](repeating: 0x2E, count: 1_024)
            loop.send(.init(0), messages: (0..<total).map { [stuckID, Array("\($0)".utf8), padding] })
            loop.send(.init(0), [healthyID, Array("hello".utf8)])
            let hello = try receive(healthy).map { String(decoding: $0.frames[0], as: UTF8.self) }
            // Until every reply has arrived or been reported dropped (1 s without one was taken for the end, which a
            // busy machine's pause could be).
            var received: [Int] = []
            while received.count + dropped.withLock({ $0 }) < total, let message = try receive(stuck, timeout: 60_000) {
                received.append(Int(String(decoding: message.frames[0], as: UTF8.self)) ?? -1)
            }
            return (hello, received)
        }
        #expect(hello == "hello")
        let drops = dropped.withLock { $0 }
        #expect(drops > 0)
        #expect(received.count + drops == total)  // each reply either arrived or was reported dropped
        #expect(received == received.sorted() && Set(received).count == received.count)  // in order, no repeats
        #expect(received.last == total - 1)  // the newest are kept
        await loop.stop()
    }

    @Test func failedBindIsReportedAndStopIsIdempotent() async throws {
        let context = try ZMQContext()
        let first = try await SocketLoop.start(
            context: context, name: "a", specs: [SocketSpec(name: "a", type: .router, bind: ["tcp://127.0.0.1:*"])])
        let taken = try #require(first.endpoints.first?.first)
        await #expect(throws: ZMQError.self) {
            _ = try await SocketLoop.start(
                context: context, name: "b", specs: [SocketSpec(name: "b", type: .router, bind: [taken])])
        }
        await first.stop()
        await first.stop()
        context.terminate()
    }
}
