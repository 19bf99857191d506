package import Foundation
import RuleEngine
package import ZeroMQ

/// `cobalt send`: a pipelined DEALER client. Sends up to `window` events at once, matches replies by id, and
/// re-sends an event with the same id until the daemon answers (`accepted`/`duplicate`, or a final rejection);
/// 503 answers are retried after a pause. Retrying is safe because the id is the idempotency key.
package struct EventSender {
    package struct Outcome: Sendable, Equatable {
        package var id: String
        package var status: String
        package var code: Int
        package var reason: String?
        /// The whole reply JSON.
        package var reply: String
        /// The reply's warnings, each as `path: message` (what the daemon will not use).
        package var warnings: [String] = []
    }

    package var endpoint: String
    package var window = 256
    package var retryAfter: Duration = .seconds(2)
    package var giveUpAfter: Duration = .seconds(60)
    package var security: ClientSecurity?
    /// Told once per silence of ``silenceNotice`` with events in flight (how long, and ``giveUpAfter``): without
    /// it a daemon that is not there looked like a command that hangs, for a minute.
    package var onSilence: (@Sendable (Duration, Duration) -> Void)?
    package var silenceNotice: Duration = .seconds(5)
    /// The largest event sent, in bytes (nil: no limit). libzmq drops a message over the daemon's
    /// `limits.max_message_bytes` (default 1 MiB) together with its connection, without a word: the event is never
    /// answered, nor is any event pipelined behind it on that connection, and each resend drops the new connection
    /// again — one such line left the rest of a file "unanswered", blamed on a daemon that was running. A larger
    /// event is not sent; its outcome is a 413, as the daemon answers an event over `limits.max_event_bytes`
    /// (which may not exceed `max_message_bytes`, so nothing the daemon would accept is held back).
    package var maxEventBytes: Int? = 1_048_576
    /// What each event is called in its outcome when it has no id (by position; default `(line N)`).
    package var labels: [String]?

    package init(endpoint: String) {
        self.endpoint = endpoint
    }

    /// Sends every event (raw JSON bytes) and returns one outcome per event, in input order.
    package func send(_ events: [[UInt8]], context: ZMQContext) throws -> [Outcome] {
        let socket = try ZMQSocket(context: context, type: .dealer)
        defer { socket.close() }
        try socket.set(.immediate, 1)
        try socket.set(.reconnectIntervalMax, 5_000)
        // With ZMQ_IMMEDIATE a send waits for a connected peer: bound it, so an unreachable or refusing daemon
        // ends in the give-up error instead of a hang.
        try socket.set(.sendTimeout, 1_000)
        try security?.apply(to: socket)
        try socket.connect(endpoint)
        // Each event needs an id to match its reply; events without one are sent alone, after the others.
        var ids: [String?] = events.map { bytes in
            guard case .object(let object)? = try? JSONValue.parse(bytes) else { return nil }
            return object["id"]?.stringValue
        }
        var outcomes = [Outcome?](repeating: nil, count: events.count)
        func label(_ index: Int) -> String {
            guard let labels, labels.indices.contains(index) else { return "(line \(index + 1))" }
            return labels[index]
        }
        if let limit = maxEventBytes {
            for index in events.indices where events[index].count > limit {
                outcomes[index] = Outcome(
                    id: ids[index] ?? label(index), status: "rejected", code: 413,
                    reason: "not sent: \(events[index].count) bytes, over the \(limit) a message may have (the daemon drops a larger one "
                        + "with its connection, unanswered; see limits.max_message_bytes)",
                    reply: "")
            }
        }
        // Lines with the same id and the same bytes are sent once and share the reply. A line with the same id
        // but other content (a corrected event) is sent in a later round, after the earlier one is answered, so
        // the daemon judges it: accepted if the earlier one was refused, 409 if it was stored.
        var rounds: [[String: [Int]]] = []
        for (index, id) in ids.enumerated() {
            guard let id, outcomes[index] == nil else { continue }
            if let round = rounds.firstIndex(where: { $0[id].map { events[$0[0]] == events[index] } ?? true }) {
                rounds[round][id, default: []].append(index)
            } else {
                rounds.append([id: [index]])
            }
        }
        // Replies still owed per id: a resend (no answer within `retryAfter`, or a 503) is answered too, and its
        // answer can arrive after the one that settled the line — while a later round sends that id's corrected
        // content. The daemon answers each connection in order, so such late answers come first and are skipped.
        var owed: [String: Int] = [:]
        var gaveUp = false
        for byID in rounds where !gaveUp {
            gaveUp = try !exchange(byID, events: events, socket: socket, outcomes: &outcomes, owed: &owed)
        }
        // Events without an id are matched by order alone: first take every late answer still owed.
        let drainUntil = ContinuousClock.now + retryAfter
        while !gaveUp, owed.values.contains(where: { $0 > 0 }), ContinuousClock.now < drainUntil {
            guard try socket.waitForInput(timeout: 100), let message = try socket.receive(), let payload = message.frames.last,
                let id = Self.outcome(payload)?.id, let count = owed[id], count > 0
            else { continue }
            owed[id] = count - 1
        }
        for index in ids.indices where ids[index] == nil && !gaveUp && outcomes[index] == nil {
            ids[index] = label(index)
            guard try socket.send([events[index]], dontWait: false) else { continue }
            // Only an answer without an id can be this line's: a late answer to a resend carries its event's id
            // (taken for the line's own, it once turned a refusal into "accepted").
            let until = ContinuousClock.now + .seconds(10)
            while outcomes[index] == nil, ContinuousClock.now < until {
                guard try socket.waitForInput(timeout: 100), let message = try socket.receive(), let payload = message.frames.last,
                    var reply = Self.outcome(payload), reply.id.isEmpty
                else { continue }
                reply.id = label(index)
                outcomes[index] = reply
            }
        }
        let silence = "no answer from \(endpoint) for \(giveUpAfter) (is the daemon running there? if it uses CURVE: are the keys right?)"
        return outcomes.enumerated().map { index, outcome in
            outcome ?? Outcome(id: ids[index] ?? label(index), status: "unanswered", code: 0, reason: gaveUp ? silence : "no reply", reply: "")
        }
    }

    /// Sends one round (at most one content per id), pipelined, until every id is answered; returns false when
    /// the daemon stayed silent for ``giveUpAfter`` (the time since the last reply, so a long file is not cut
    /// short while answers keep coming).
    private func exchange(
        _ byID: [String: [Int]], events: [[UInt8]], socket: ZMQSocket, outcomes: inout [Outcome?], owed: inout [String: Int]
    ) throws -> Bool {
        var queue = byID.values.map { $0[0] }.sorted()
        var inFlight: [Int: ContinuousClock.Instant] = [:]
        // How long to wait for an answer before sending again: doubled at each resend (up to 16 times
        // `retryAfter`), so that a daemon slow to answer is not sent the whole window again every `retryAfter`.
        var patience: [Int: Duration] = [:]
        var deadline = ContinuousClock.now + giveUpAfter
        var silentSince = ContinuousClock.now
        var toldSilence = false
        // Answers still owed to earlier rounds' sends: they come before any answer to this round's.
        var stale = owed
        let idOf = Dictionary(uniqueKeysWithValues: byID.map { ($0.value[0], $0.key) })
        func sendCopy(_ index: Int) throws -> Bool {
            guard try socket.send([events[index]], dontWait: false) else { return false }
            owed[idOf[index]!, default: 0] += 1
            return true
        }
        while !queue.isEmpty || !inFlight.isEmpty {
            while inFlight.count < window, !queue.isEmpty {
                let index = queue.removeFirst()
                if try !sendCopy(index) {
                    queue.insert(index, at: 0)  // no peer yet: try again after checking the deadline
                    break
                }
                inFlight[index] = .now
            }
            if try socket.waitForInput(timeout: 100), let message = try socket.receive() {
                guard let payload = message.frames.last, let reply = Self.outcome(payload) else { continue }
                silentSince = .now  // any answer, a late one too: the daemon is there
                toldSilence = false
                if let count = owed[reply.id], count > 0 { owed[reply.id] = count - 1 }
                if let count = stale[reply.id], count > 0 {
                    stale[reply.id] = count - 1  // the answer to an earlier round's content
                    continue
                }
                guard let indexes = byID[reply.id], inFlight[indexes[0]] != nil else { continue }
                deadline = .now + giveUpAfter
                if reply.code == 503 {
                    inFlight[indexes[0]] = .now + retryAfter  // resend after the pause
                    continue
                }
                inFlight[indexes[0]] = nil
                for index in indexes { outcomes[index] = reply }
            }
            for (index, sentAt) in inFlight where ContinuousClock.now - sentAt > patience[index, default: retryAfter] {
                _ = try sendCopy(index)  // same bytes, same id
                inFlight[index] = .now
                patience[index] = min(patience[index, default: retryAfter] * 2, retryAfter * 16)
            }
            if !toldSilence, ContinuousClock.now - silentSince > silenceNotice, !inFlight.isEmpty || !queue.isEmpty {
                toldSilence = true
                onSilence?(silenceNotice, giveUpAfter)
            }
            if ContinuousClock.now > deadline, !inFlight.isEmpty || !queue.isEmpty { return false }
        }
        return true
    }

    static func outcome(_ payload: [UInt8]) -> Outcome? {
        guard case .object(let object)? = try? JSONValue.parse(payload) else { return nil }
        var code = 0
        if let n = object["code"]?.int64Value, let small = Int(exactly: n) { code = small }
        var warnings: [String] = []
        if case .array(let items)? = object["warnings"] {
            for case .object(let warning) in items {
                warnings.append("\(warning["path"]?.stringValue ?? "?"): \(warning["message"]?.stringValue ?? "?")")
            }
        }
        return Outcome(
            id: object["id"]?.stringValue ?? "", status: object["status"]?.stringValue ?? "?", code: code,
            reason: object["reason"]?.stringValue, reply: String(decoding: payload, as: UTF8.self), warnings: warnings)
    }

    /// Splits a file into events, each with what to call it when it has no id: `FILE:LINE` for JSON Lines (the
    /// line in the file, blank lines counted, as an editor shows it) and `FILE[N]` for the Nth element of an array.
    package static func labelledEvents(in data: Data, file: String) throws -> [(label: String, bytes: [UInt8])] {
        switch EventFile.read(data) {
        case .array(let bytes):
            guard case .array(let items) = try JSONValue.parse(bytes) else { return [] }
            return items.enumerated().map { ("(\(file)[\($0.offset + 1)])", $0.element.canonicalBytes) }
        case .lines(let lines):
            return lines.map { ("(\(file):\($0.number))", $0.bytes) }
        }
    }

    /// Splits a file into events: a JSON array, or one event per line (JSON Lines).
    package static func events(in data: Data) throws -> [[UInt8]] {
        switch EventFile.read(data) {
        case .array(let bytes):
            guard case .array(let items) = try JSONValue.parse(bytes) else { return [] }
            return items.map(\.canonicalBytes)
        case .lines(let lines):
            return lines.map(\.bytes)
        }
    }
}
