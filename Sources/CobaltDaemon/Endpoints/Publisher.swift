import CobaltStore
import Foundation
import Metrics
import RuleEngine
import Synchronization
import ZeroMQ

/// Publishes on the XPUB socket: alerts on `clinic/<id>/alert`, heartbeats carrying the last sequence number on
/// `clinic/<id>/heartbeat`, and operational events on `ops/<kind>`.
///
/// PUB/SUB drops by design (slow joiners, high-water marks); every alert carries a gap-free per-clinic `seq` and
/// the stream `epoch`, and heartbeats carry the last `seq`, so a subscriber detects any gap and recovers it from
/// the replay endpoint.
final class Publisher: Sendable {
    private let loop: SocketLoop
    private let socket: SocketLoop.Socket
    let epoch: String
    private let last: Mutex<[String: Int64]>

    private let retained: RetainedOps
    private let subscribed: SubscribedClinics

    init(
        loop: SocketLoop, socket: SocketLoop.Socket, epoch: String, lastSequences: [String: Int64], retained: RetainedOps,
        subscribed: SubscribedClinics = SubscribedClinics()
    ) {
        self.loop = loop
        self.socket = socket
        self.epoch = epoch
        self.last = Mutex(lastSequences)
        self.retained = retained
        self.subscribed = subscribed
    }

    static func alertTopic(_ clinic: String) -> String { "clinic/\(clinic)/alert" }

    /// The clinic a subscription prefix names (`clinic/<id>/…`), or nil (`ops/`, `clinic/`, `clinic/<partial id>`).
    static func clinic(inSubscription prefix: some Collection<UInt8>) -> String? {
        let text = String(decoding: prefix, as: UTF8.self)
        guard text.hasPrefix("clinic/") else { return nil }
        let rest = text.dropFirst("clinic/".count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        return String(rest[..<slash])
    }
    static func heartbeatTopic(_ clinic: String) -> String { "clinic/\(clinic)/heartbeat" }

    func publish(_ alerts: [PublishedAlert]) {
        guard !alerts.isEmpty else { return }
        let messages = alerts.map { [Array(Self.alertTopic($0.clinic).utf8), Array($0.json.utf8)] }
        // Queued under the lock that heartbeats read `last` under: a heartbeat never goes out announcing a seq
        // ahead of the alert that carries it (a subscriber would see a gap that is not one, and replay).
        last.withLock { last in
            for alert in alerts { last[alert.clinic] = max(last[alert.clinic] ?? 0, alert.seq) }
            loop.send(socket, messages: messages)
        }
    }

    /// Sends one heartbeat per clinic with alerts or subscribers (`last` 0 before its first alert), so that a
    /// subscriber hears from its clinic every interval and can tell silence from a quiet clinic.
    func heartbeat() {
        let now = Timestamp.format(Date().timeIntervalSince1970)
        let watched = subscribed.all
        last.withLock { last in
            var clinics = last
            for clinic in watched where clinics[clinic] == nil { clinics[clinic] = 0 }
            let messages = clinics.map { clinic, seq in
                let json = "{\"type\":\"heartbeat\",\"clinic\":\(clinic.jsonQuoted),\"epoch\":\(epoch.jsonQuoted),\"last\":\(seq),\"time\":\(now.jsonQuoted)}"
                return [Array(Self.heartbeatTopic(clinic).utf8), Array(json.utf8)]
            }
            loop.send(socket, messages: messages)
        }
    }

    /// Publishes an operational event (`ops/start`, `ops/stop`, `ops/ruleset`, …); a `retain`ed one describes the
    /// daemon's current state and is sent again to each subscriber that joins later (``RetainedOps``).
    func ops(_ kind: String, _ fields: [(String, String)], retain: Bool = false) {
        let now = Timestamp.format(Date().timeIntervalSince1970)
        let body = ([("type", kind.jsonQuoted), ("time", now.jsonQuoted), ("epoch", epoch.jsonQuoted)] + fields)
            .map { "\($0.0.jsonQuoted):\($0.1)" }.joined(separator: ",")
        if retain { retained.keep(topic: "ops/\(kind)", fields: body) }
        loop.send(socket, [Array("ops/\(kind)".utf8), Array("{\(body)}".utf8)])
    }

    var lastSequences: [String: Int64] { last.withLock { $0 } }
}

/// The clinics subscribers have asked for by name (`clinic/<id>/…`), for their heartbeats before any alert.
///
/// Without security (`counted: false`) libzmq keeps one subscription per topic and connection and, with
/// `XPUB_VERBOSE` (not `XPUB_VERBOSER`), passes a topic's unsubscription up only when no connection holds it any
/// more: its own trie is the count, and a topic is simply noted and forgotten. (Counted per message, a SUB socket
/// that subscribed twice to a topic — it sends every subscription up, its unsubscription once — left the topic
/// counted for ever.)
///
/// With security (`XPUB_MANUAL`, `counted: true`) every subscription and every unsubscription comes up, a closing
/// connection's without a key, so topics are counted. libzmq records a subscription for its connection whether
/// or not Cobalt applies it, and passes up its unsubscription when the connection closes: a subscription not
/// counted (refused, skipped, over a bound) is remembered as such (``noteNotCounted(_:)``), and a closing
/// connection's unsubscription (``noteClosed(_:)``) takes away one of those first — otherwise a clinic-A key that
/// subscribed to `clinic/B/` (refused) and left took away B's own subscriber's count, and B heard no heartbeat.
/// The ambiguity is resolved on the safe side (a clinic heard a little longer).
///
/// Bounded: at most ``clinicLimit`` clinics (each costs a heartbeat a second; without security anyone on loopback
/// may subscribe), ``topicsPerClinic`` topics recorded for each, and ``notCountedLimit`` topics not counted. A
/// name that is no clinic id (control characters, not NFC, too long, not UTF-8) is not noted.
final class SubscribedClinics: Sendable {
    static let clinicLimit = 1_000
    static let topicsPerClinic = 64
    static let notCountedLimit = 65_536
    private struct State {
        /// Subscriptions by clinic, then topic.
        var clinics: [String: [[UInt8]: Int]] = [:]
        /// With security: subscriptions libzmq holds for a connection that were not counted, by topic.
        var notCounted: [[UInt8]: Int] = [:]
    }
    private let state = Mutex(State())
    private let counted: Bool

    init(counted: Bool = false) { self.counted = counted }

    /// The clinic a topic names, if it is a clinic id.
    private static func clinic(_ topic: some Collection<UInt8>) -> String? {
        // Valid UTF-8 too: the name is decoded with replacement characters, which then differ from the bytes sent.
        guard let clinic = Publisher.clinic(inSubscription: topic), EventDecoder.isIDLength(clinic),
            EventDecoder.identifierProblem(clinic) == nil,
            clinic.utf8.elementsEqual(topic.dropFirst("clinic/".count).prefix(clinic.utf8.count))
        else { return nil }
        return clinic
    }

    /// Notes an applied subscription (`subscribe`) or unsubscription of `topic`, if it names a clinic.
    func note(subscribe: Bool, _ topic: some Collection<UInt8>) {
        guard let clinic = Self.clinic(topic) else { return }
        let topic = Array(topic)
        let counted = self.counted
        state.withLock { state in
            if subscribe {
                var added = false
                if let topics = state.clinics[clinic] {
                    if topics[topic] != nil || topics.count < Self.topicsPerClinic {
                        state.clinics[clinic]![topic] = counted ? topics[topic, default: 0] + 1 : 1
                        added = true
                    }
                } else if state.clinics.count < Self.clinicLimit {
                    state.clinics[clinic] = [topic: 1]
                    added = true
                }
                if !added, counted { Self.remember(topic, in: &state) }
            } else {
                Self.forget(clinic, topic, in: &state, all: !counted)
            }
        }
    }

    /// With security: a subscription libzmq keeps for its connection that Cobalt did not apply (refused, skipped).
    func noteNotCounted(_ topic: some Collection<UInt8>) {
        guard counted, Self.clinic(topic) != nil else { return }
        let topic = Array(topic)
        state.withLock { Self.remember(topic, in: &$0) }
    }

    /// With security: libzmq's unsubscription for a closing connection (no key: it may be of a subscription that
    /// was not counted).
    func noteClosed(_ topic: some Collection<UInt8>) {
        guard let clinic = Self.clinic(topic) else { return }
        let topic = Array(topic)
        state.withLock { state in
            if let n = state.notCounted[topic] {
                state.notCounted[topic] = n > 1 ? n - 1 : nil
            } else {
                Self.forget(clinic, topic, in: &state, all: false)
            }
        }
    }

    private static func remember(_ topic: [UInt8], in state: inout State) {
        guard state.notCounted[topic] != nil || state.notCounted.count < notCountedLimit else { return }
        state.notCounted[topic, default: 0] += 1
    }

    private static func forget(_ clinic: String, _ topic: [UInt8], in state: inout State, all: Bool) {
        guard let count = state.clinics[clinic]?[topic] else { return }
        state.clinics[clinic]![topic] = count > 1 && !all ? count - 1 : nil
        if state.clinics[clinic]!.isEmpty { state.clinics[clinic] = nil }
    }

    var all: Set<String> { state.withLock { Set($0.clinics.keys) } }
}

/// The operational events that describe the daemon's state — `ops/start`, and the last `ops/ruleset` that went
/// live — sent again to each new subscriber whose subscription covers them, like MQTT's retained messages.
/// PUB/SUB delivers nothing published before a subscriber joined, and `ops/start` goes out while the daemon
/// starts, when subscribers are at best reconnecting. The copies carry `"retained": true` and go to everyone
/// subscribed to the topic (XPUB's stable API cannot send to one subscriber), so a subscriber already listening
/// may see a state it already knows, marked as such.
///
/// Every subscription triggers a send to everyone subscribed to the topic, so a client that subscribes over and
/// over could flood the other subscribers (and, at their high-water mark, crowd out alerts). The copies are
/// therefore rate-limited: a burst of ``burst`` subscriptions, then ``perSecond``; a subscription beyond that gets
/// no copy and is counted in `cobalt_retained_suppressed_total`.
final class RetainedOps: Sendable {
    static let burst = 20.0
    static let perSecond = 10.0

    private struct State {
        var messages: [(topic: [UInt8], body: [UInt8])] = []
        var tokens = RetainedOps.burst
        var refilled = ContinuousClock.now
    }

    private let state = Mutex(State())
    private let suppressed = Counter(label: "cobalt_retained_suppressed_total")

    /// Keeps `fields` (the members of the event's JSON object) as the state of `topic`, replacing the one before.
    func keep(topic: String, fields: String) {
        let message = (topic: Array(topic.utf8), body: Array("{\"retained\":true,\(fields)}".utf8))
        state.withLock { state in
            if let index = state.messages.firstIndex(where: { $0.topic == message.topic }) {
                state.messages[index] = message
            } else {
                state.messages.append(message)
            }
        }
    }

    /// On the socket thread, for an XPUB subscription message (`0x01` + topic prefix) just approved: sends every
    /// retained event the new subscription covers, in the order they were first kept.
    func subscribed(_ message: Message, on socket: ZMQSocket) {
        guard let frame = message.frames.first, frame.first == 1 else { return }
        let prefix = frame.dropFirst()
        // The retained events this subscription covers (often none), or nil when it is over the rate limit.
        let covered = state.withLock { state -> [(topic: [UInt8], body: [UInt8])]? in
            let covered = state.messages.filter { $0.topic.starts(with: prefix) }
            guard !covered.isEmpty else { return [] }
            let now = ContinuousClock.now
            state.tokens = min(Self.burst, state.tokens + (now - state.refilled).timeInterval * Self.perSecond)
            state.refilled = now
            guard state.tokens >= 1 else { return nil }
            state.tokens -= 1
            return covered
        }
        guard let covered else {
            suppressed.increment()
            return
        }
        for retained in covered {
            _ = try? socket.send([retained.topic, retained.body])
        }
    }
}
