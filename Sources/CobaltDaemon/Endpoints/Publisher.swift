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
/// Counted by subscription: XPUB passes up every subscription (`XPUB_VERBOSE`) and every unsubscription
/// (`XPUB_VERBOSER`; with security, `XPUB_MANUAL` passes them all too), a closing connection's included, so a topic
/// is forgotten when its last subscriber leaves. Clinics were never forgotten, so after 1,000 made-up clinics were
/// subscribed and dropped (by any one key, with security) a real subscriber of a clinic with no alert yet heard no
/// heartbeat. A clinic is heard while any of its topics is subscribed (`clinic/x/` and `clinic/x/alert` are two).
///
/// Bounded: at most ``clinicLimit`` clinics (each costs a heartbeat a second; without security anyone on loopback
/// may subscribe) and ``topicsPerClinic`` topics recorded for each (a clinic is heard already; more topics of it
/// would cost only memory — one key may subscribe to any number under its own clinic). A subscription arriving
/// while the clinics are at the limit is not noted. A connection that subscribes twice to one topic closes with
/// one unsubscription, so such a topic stays counted (its clinic heard) — the safe side. A name that is no
/// clinic id (control characters, not NFC, too long, not UTF-8) is not noted: no heartbeat goes out on a topic
/// ingest would refuse as a clinic.
final class SubscribedClinics: Sendable {
    static let clinicLimit = 1_000
    static let topicsPerClinic = 64
    /// Subscriptions by clinic, then topic.
    private let clinics = Mutex<[String: [[UInt8]: Int]]>([:])

    init() {}

    /// Notes a subscription (`subscribe`) or an unsubscription of `topic`, if it names a clinic.
    func note(subscribe: Bool, _ topic: some Collection<UInt8>) {
        // Valid UTF-8 too: the name is decoded with replacement characters, which then differ from the bytes sent.
        guard let clinic = Publisher.clinic(inSubscription: topic), EventDecoder.isIDLength(clinic),
            EventDecoder.identifierProblem(clinic) == nil,
            clinic.utf8.elementsEqual(topic.dropFirst("clinic/".count).prefix(clinic.utf8.count))
        else { return }
        let topic = Array(topic)
        clinics.withLock { clinics in
            if subscribe {
                guard let topics = clinics[clinic] else {
                    if clinics.count < Self.clinicLimit { clinics[clinic] = [topic: 1] }
                    return
                }
                guard topics[topic] != nil || topics.count < Self.topicsPerClinic else { return }
                clinics[clinic]![topic, default: 0] += 1
            } else {
                guard let count = clinics[clinic]?[topic] else { return }
                clinics[clinic]![topic] = count > 1 ? count - 1 : nil
                if clinics[clinic]!.isEmpty { clinics[clinic] = nil }
            }
        }
    }

    var all: Set<String> { clinics.withLock { Set($0.keys) } }
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
