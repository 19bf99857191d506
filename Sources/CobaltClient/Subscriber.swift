import Foundation
import RuleEngine
package import ZeroMQ

/// `cobalt subscribe`: the Clone pattern of the ZeroMQ Guide. Subscribes first, then replays from a cursor;
/// live alerts continue from there. A sequence jump, or a heartbeat announcing a higher `last`, means alerts were
/// missed (PUB/SUB drops by design): the subscriber replays the gap. Each alert is delivered exactly once by
/// `seq`; a new `epoch` (a fresh store) restarts from 0.
package final class Subscriber {
    package struct Cursor: Sendable, Equatable, Codable {
        package var epoch: String?
        package var last: Int64
        /// Whose stream `last` counts in (nil in cursors written before session 17): sequence numbers are per
        /// clinic, so another clinic's cursor would skip every alert up to its `last`, silently.
        package var clinic: String?

        package init(epoch: String? = nil, last: Int64 = 0, clinic: String? = nil) {
            self.epoch = epoch
            self.last = last
            self.clinic = clinic
        }
    }

    /// A cursor that cannot be this subscription's: delivering from it would skip alerts without a word.
    package struct CursorMismatch: Error, CustomStringConvertible {
        package let description: String
    }

    /// The replay endpoint answered with an error (this key may not read the clinic, a malformed request): its
    /// reason, as the daemon gave it.
    package struct ReplayRefused: Error, CustomStringConvertible {
        package let reason: String
        package var description: String { "replay refused: \(reason)" }
    }

    package let clinic: String
    /// The two topics of this clinic (INTERFACES §3): its alerts and its heartbeats.
    private var alertTopic: String { "clinic/\(clinic)/alert" }
    private var heartbeatTopic: String { "clinic/\(clinic)/heartbeat" }
    package private(set) var cursor: Cursor
    /// Gaps detected and repaired from replay (for tests and the summary).
    package private(set) var gapsRepaired = 0
    /// How long without a heartbeat or alert before the subscription is made again on a new connection (the
    /// daemon sends a heartbeat every second by default). A daemon can refuse to apply a subscription (with
    /// security, one queued behind another peer's stray message), and PUB/SUB says nothing when it does.
    /// At least this long; three heartbeat intervals when the daemon's are longer (`heartbeat_ms` above about
    /// 3 s), measured between the last two heartbeats — a fixed limit below the interval made the subscriber
    /// subscribe again between every two heartbeats.
    package var silenceLimit: Duration = .seconds(10)
    /// The time between the last two heartbeats heard, and when the last one came.
    private var heartbeatInterval: Duration = .zero
    private var lastHeartbeat: ContinuousClock.Instant?
    /// The silence after which the subscription is made again (see ``silenceLimit``).
    package var effectiveSilenceLimit: Duration { max(silenceLimit, heartbeatInterval * 3) }
    /// Subscriptions made again after a silence (for tests and the summary).
    package private(set) var resubscriptions = 0
    /// Replays that got no answer within ``replayTimeout`` while live (the daemon stopping or restarting); each
    /// gap is tried again when the next heartbeat or alert shows it.
    package private(set) var replayTimeouts = 0
    /// How long one replay page may take (ms).
    package var replayTimeout = 10_000
    /// Told of each replay that timed out while live (the command line says so on stderr).
    package var onReplayTimeout: ((any Error) -> Void)?
    private var sub: ZMQSocket
    private var replay: Requester
    private let replayEndpoint: String
    /// Heartbeats in a row whose `last` was below the cursor (see ``poll(timeout:_:)``).
    private var trailingHeartbeats = 0
    /// After a replay timed out, no other is tried before this (see ``repair(_:)``).
    private var repairsPausedUntil = ContinuousClock.now
    private let context: ZMQContext
    private let alerts: String
    private let security: ClientSecurity?
    private var lastHeard = ContinuousClock.now

    package init(
        context: ZMQContext, alerts: String, replay: String, clinic: String, cursor: Cursor = Cursor(), security: ClientSecurity? = nil
    ) throws {
        if let owner = cursor.clinic, owner != clinic {
            throw CursorMismatch(description: "the cursor counts clinic '\(owner)''s alerts, not '\(clinic)''s")
        }
        // Clinic ids are in Unicode NFC (ingest refuses others), and topics match by bytes: a clinic typed with
        // a combining accent must still subscribe to its stream.
        let clinic = EventDecoder.nfc(clinic)
        self.clinic = clinic
        self.cursor = cursor
        self.cursor.clinic = clinic
        self.context = context
        self.alerts = alerts
        self.security = security
        sub = try Self.subscribe(context: context, alerts: alerts, clinic: clinic, security: security)
        self.replay = try Requester(context: context, endpoint: replay, security: security)
        replayEndpoint = replay
    }

    private static func subscribe(context: ZMQContext, alerts: String, clinic: String, security: ClientSecurity?) throws -> ZMQSocket {
        let sub = try ZMQSocket(context: context, type: .sub)
        try security?.apply(to: sub)
        try sub.set(.subscribe, Array("clinic/\(clinic)/".utf8))
        try sub.connect(alerts)
        return sub
    }

    deinit {
        sub.close()
        replay.close()
    }

    /// Moves the cursor to `seq`, then delivers — so a cursor saved inside `deliver` already includes this alert;
    /// if delivery fails, the cursor goes back and the alert will be delivered again.
    private func advance(to seq: Int64, _ deliver: () throws -> Void) throws {
        let previous = cursor.last
        cursor.last = seq
        do { try deliver() } catch {
            cursor.last = previous
            throw error
        }
    }

    /// Catches up from the replay endpoint, handing each alert JSON to `deliver` in sequence order.
    package func catchUp(_ deliver: (String) throws -> Void) throws {
        var more = true
        while more {
            let reply = try replay.request("{\"clinic\":\(clinic.jsonQuoted),\"after\":\(cursor.last),\"limit\":500}", timeout: replayTimeout)
            guard case .object(let page) = reply, page["status"]?.stringValue == "ok", let epoch = page["epoch"]?.stringValue else {
                if case .object(let answer) = reply, answer["status"]?.stringValue == "error", let reason = answer["reason"]?.stringValue {
                    throw ReplayRefused(reason: reason)
                }
                throw ZMQError(code: EPROTO, operation: "replay: unexpected reply \(reply.canonicalText)")
            }
            if cursor.epoch != epoch {
                // A different stream (a new store): its sequence numbers start again.
                if cursor.epoch != nil, cursor.last > 0 {
                    cursor = Cursor(epoch: epoch, last: 0, clinic: clinic)
                    continue
                }
                cursor.epoch = epoch
            }
            if let head = page["head"]?.int64Value { try checkNotAhead(of: head) }
            guard case .array(let alerts)? = page["alerts"] else { return }
            for alert in alerts {
                guard case .object(let fields) = alert, let seq = fields["seq"]?.int64Value, seq == cursor.last + 1 else { continue }
                try advance(to: seq) { try deliver(alert.canonicalText) }
            }
            if case .bool(let flag)? = page["more"] { more = flag } else { more = false }
        }
    }

    /// The stream ends at `head`, before the cursor: the alerts the cursor counts are not this stream's (a store
    /// restored from a backup, or a cursor from another daemon). Alerts numbered up to the cursor's `last` from now
    /// on would be skipped as seen; said instead, for the operator to decide. (Replay's `head` is read from the
    /// store after the page, so it is never behind an alert already delivered; a heartbeat's `last` can be, for
    /// an instant after a commit, so heartbeats are not used for this.)
    private func checkNotAhead(of head: Int64) throws {
        guard head < cursor.last else { return }
        throw CursorMismatch(description: "the cursor has seen alert \(cursor.last) of clinic '\(clinic)', but the daemon's stream (epoch \(cursor.epoch ?? "?")) ends at \(head): it is not this stream's cursor (a restored database?)")
    }

    /// Catches up while live. A replay that times out (the daemon stopping or restarting) does not end the
    /// subscriber: the gap stays, and the next heartbeat or alert that shows it tries again. The replay socket is
    /// made anew, so that a late answer to the lost request cannot be taken for the next one's.
    ///
    /// After a timeout, repairs pause for as long again: every heartbeat queued meanwhile shows the same gap, and
    /// trying each (up to ``replayTimeout`` apiece) kept `poll` from ever returning while replay was down.
    private func repair(_ deliver: (String) throws -> Void) throws {
        guard ContinuousClock.now >= repairsPausedUntil else { return }
        gapsRepaired += 1
        do {
            try catchUp(deliver)
        } catch let error as ZMQError where error.code == ETIMEDOUT {
            replay.close()
            replay = try Requester(context: context, endpoint: replayEndpoint, security: security)
            replayTimeouts += 1
            repairsPausedUntil = .now + .milliseconds(replayTimeout)
            onReplayTimeout?(error)
        }
    }

    /// Waits up to `timeout` ms for live traffic; delivers alerts in order, repairing gaps from replay.
    /// Returns whether any alert was delivered (heartbeats alone do not count).
    @discardableResult
    package func poll(timeout: Int, _ deliver: (String) throws -> Void) throws -> Bool {
        guard try sub.waitForInput(timeout: timeout) else {
            if ContinuousClock.now - lastHeard > effectiveSilenceLimit {
                // Subscribe again on a new connection; the next heartbeat shows what was missed, and replay fills it.
                sub.close()
                sub = try Self.subscribe(context: context, alerts: alerts, clinic: clinic, security: security)
                resubscriptions += 1
                // `lastHeartbeat` stays: with heartbeats further apart than the limit, the interval can only be
                // measured across a resubscription. After a long outage the first heartbeat measures the outage,
                // and the next one (an interval later) corrects it.
                lastHeard = .now
            }
            return false
        }
        let before = cursor.last
        while let message = try sub.receive(dontWait: true) {
            guard message.frames.count == 2 else { continue }
            // Only this clinic's own topics: a subscription matches by prefix, and a daemon older than the clinic-id
            // check could publish `clinic/<this id>/<more>/alert` for another clinic.
            let topic = String(decoding: message.frames[0], as: UTF8.self)
            guard topic == alertTopic || topic == heartbeatTopic else { continue }
            let value = try JSONValue.parse(message.frames[1])
            guard case .object(let fields) = value else { continue }
            lastHeard = .now
            let epoch = fields["epoch"]?.stringValue
            if topic == heartbeatTopic {
                let now = ContinuousClock.now
                if let previous = lastHeartbeat { heartbeatInterval = now - previous }
                lastHeartbeat = now
                guard let last = fields["last"]?.int64Value else { continue }
                if last > cursor.last || epoch != cursor.epoch {
                    trailingHeartbeats = 0
                    try repair(deliver)
                } else if last < cursor.last {
                    // The stream is behind what the cursor has seen: for an instant (a replay read alerts committed
                    // but not yet published), or for good (a database restored with its epoch — new alerts would
                    // then be skipped as seen, silently). Twice in a row, replay's `head` decides (checkNotAhead).
                    trailingHeartbeats += 1
                    if trailingHeartbeats >= 2 {
                        trailingHeartbeats = 0
                        try repair(deliver)
                    }
                } else {
                    trailingHeartbeats = 0
                }
                continue
            }
            guard fields["clinic"]?.stringValue == clinic, let seq = fields["seq"]?.int64Value else { continue }
            if epoch != cursor.epoch || seq > cursor.last + 1 {
                try repair(deliver)
            } else if seq == cursor.last + 1 {
                // Written as replayed alerts are (canonical JSON), so that `--jsonl` output does not depend on the path.
                try advance(to: seq) { try deliver(value.canonicalText) }
            }
            // seq ≤ last: already delivered (from replay); skip.
        }
        return cursor.last != before
    }
}
