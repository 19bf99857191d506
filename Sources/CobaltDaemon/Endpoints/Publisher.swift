import CobaltStore
import Foundation
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

    init(loop: SocketLoop, socket: SocketLoop.Socket, epoch: String, lastSequences: [String: Int64]) {
        self.loop = loop
        self.socket = socket
        self.epoch = epoch
        self.last = Mutex(lastSequences)
    }

    static func alertTopic(_ clinic: String) -> String { "clinic/\(clinic)/alert" }
    static func heartbeatTopic(_ clinic: String) -> String { "clinic/\(clinic)/heartbeat" }

    func publish(_ alerts: [PublishedAlert]) {
        guard !alerts.isEmpty else { return }
        last.withLock { last in
            for alert in alerts { last[alert.clinic] = max(last[alert.clinic] ?? 0, alert.seq) }
        }
        loop.send(socket, messages: alerts.map { [Array(Self.alertTopic($0.clinic).utf8), Array($0.json.utf8)] })
    }

    /// Sends one heartbeat per known clinic.
    func heartbeat() {
        let now = Timestamp.format(Date().timeIntervalSince1970)
        for (clinic, seq) in last.withLock({ $0 }) {
            let json = "{\"type\":\"heartbeat\",\"clinic\":\(clinic.jsonQuoted),\"epoch\":\(epoch.jsonQuoted),\"last\":\(seq),\"time\":\(now.jsonQuoted)}"
            loop.send(socket, [Array(Self.heartbeatTopic(clinic).utf8), Array(json.utf8)])
        }
    }

    /// Publishes an operational event (`ops/start`, `ops/stop`, `ops/ruleset`, …).
    func ops(_ kind: String, _ fields: [(String, String)]) {
        let now = Timestamp.format(Date().timeIntervalSince1970)
        let body = ([("type", kind.jsonQuoted), ("time", now.jsonQuoted), ("epoch", epoch.jsonQuoted)] + fields)
            .map { "\($0.0.jsonQuoted):\($0.1)" }.joined(separator: ",")
        loop.send(socket, [Array("ops/\(kind)".utf8), Array("{\(body)}".utf8)])
    }

    var lastSequences: [String: Int64] { last.withLock { $0 } }
}
