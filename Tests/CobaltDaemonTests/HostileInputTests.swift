import CobaltClient
import CobaltDaemon
import CobaltStore
import CobaltTestSupport
import Foundation
import RuleEngine
import Testing
import ZeroMQ

/// Generated hostile events, interleaved with valid traffic: every bad event gets a NACK with a reason and is
/// kept in quarantine; every valid event is acknowledged and evaluated; nothing crashes the daemon.
@Suite(.timeLimit(.minutes(10))) struct HostileInputTests {
    /// A deterministic generator so failures reproduce.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state
        }
    }

    static func hostile(_ index: Int, _ rng: inout Generator) -> [UInt8] {
        let valid = deficientEvent(id: "bad-\(index)", patient: "hp-\(index)")
        switch index % 12 {
        case 0: return Array(valid.utf8.prefix(Int.random(in: 1..<valid.utf8.count, using: &rng)))  // truncated
        case 1: return Array(valid.replacingOccurrences(of: "\"patient\": \"hp-\(index)\"", with: "\"patient\": [1, 2]").utf8)  // wrong type
        case 2: return Array((String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)).utf8)  // deep nesting
        case 3: return Array(valid.replacingOccurrences(of: "\"diet\": \"vegan\"", with: "\"diet\": \"\(String(repeating: "x", count: 300_000))\"").utf8)  // huge
        case 4: return Array(valid.replacingOccurrences(of: "\"id\": \"bad-\(index)\"", with: "\"id\": \"\\ud800\"").utf8)  // lone surrogate
        case 5: return Array(valid.replacingOccurrences(of: "\"gestation_weeks\": 20", with: "\"gestation_weeks\": -3").utf8)  // out of range
        case 6: return Array(valid.replacingOccurrences(of: "\"value\": 18.0", with: "\"value\": 1e400").utf8)  // overflow
        case 7: return [0xFF, 0xFE] + Array(valid.utf8)  // invalid UTF-8
        case 8: return Array(valid.replacingOccurrences(of: "\"time\": \"2026-11-20T09:00:00Z\"", with: "\"time\": \"\\u0000\"").utf8)  // NUL time
        case 9: return Array(valid.replacingOccurrences(of: "\"clinic\": \"north\"", with: "\"clinic\": \"\"").utf8)  // empty clinic
        case 10: return Array("{\"id\": \"bad-\(index)\", \"id\": \"again\"}".utf8)  // duplicate key
        default:
            var bytes = Array(valid.utf8)
            for _ in 0..<3 { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            return bytes  // random corruption (may occasionally still be valid JSON with a bad field)
        }
    }

    @Test func garbageIsRefusedWithReasonsAndValidTrafficFlows() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var configuration = testConfiguration(directory: scratch.path)
        configuration.maxEventBytes = 200_000
        var rng = Generator(state: 2026)
        var events: [[UInt8]] = []
        var validIDs: Set<String> = []
        for index in 0..<240 {
            if index % 2 == 0 {
                let id = "ok-\(index)"
                validIDs.insert(id)
                events.append(Array(deficientEvent(id: id, patient: "vp-\(index % 40)", value: Double(10 + index % 90)).utf8))
            } else {
                events.append(Self.hostile(index / 2, &rng))  // index / 2: every kind, 10 times each
            }
        }
        let payloads = events
        try await withRunningDaemon(configuration) { daemon in
            let outcomes = try await onThread { try EventSender(endpoint: daemon.endpoints.ingest).send(payloads, context: try ZMQContext()) }
            var refused = 0
            for (bytes, outcome) in zip(events, outcomes) {
                let text = String(decoding: bytes.prefix(40), as: UTF8.self)
                if validIDs.contains(outcome.id) {
                    #expect(outcome.status == "accepted", "\(outcome.reply)")
                } else if outcome.status == "rejected" {
                    refused += 1
                    #expect([400, 413].contains(outcome.code), "\(text): \(outcome.reply)")
                    #expect(!(outcome.reason ?? "").isEmpty, "\(text): no reason")
                } else {
                    // Random corruption can leave a valid event; it must then be an ordinary acknowledgement.
                    #expect(outcome.status == "accepted", "\(text): \(outcome.reply)")
                }
            }
            #expect(refused >= 110)  // the 11 hostile kinds (random corruption can leave a valid event)
            try await waitForEvaluated(validIDs.count, control: daemon.endpoints.control)
            // Ingest counts a batch just after sending its answers: a last batch of refusals may be counted a moment
            // after its senders have their answers (a moment a descheduled thread can stretch).
            var counts: JSONObject = [:]
            try? await waitUntil("\(refused) rejections counted") {
                let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
                if case .object(let c)? = status["counts"] { counts = c }
                return counts["rejected"] == .number(Double(refused))
            }
            #expect(counts["rejected"] == .number(Double(refused)), "\(counts)")
            // Rejected events are kept in quarantine with their reasons, and audited without payloads. The audit
            // trail is written to the store twice a second: waited for (a fixed second could pass before it was).
            let store = try SQLiteStore(path: configuration.database)
            let quarantined = try await store.quarantined(limit: 1_000)
            #expect(quarantined.count == refused)
            #expect(quarantined.allSatisfy { !$0.reason.isEmpty && [400, 413].contains($0.code) })
            var audit = try await store.auditTrail(limit: 1_000)
            let deadline = ContinuousClock.now + .seconds(60)
            while audit.filter({ $0.action == "event.quarantined" }).count < refused, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                audit = try await store.auditTrail(limit: 1_000)
            }
            #expect(audit.filter { $0.action == "event.quarantined" }.count == refused)
            #expect(audit.allSatisfy { !$0.detail.contains("vegan") && !$0.detail.contains("hp-") })
        }
    }

    /// Replay requests with numbers out of range, fractions, negatives and wrong types each get a reason; none stops
    /// the daemon (a number beyond 64 bits used to stop it: JSON numbers are doubles, and converting 2^63 traps). A
    /// limit above the page limit, however large, asks for a full page.
    @Test func hostileReplayRequestsGetReasonsAndTheDaemonKeepsServing() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let outcomes = try await send([deficientEvent(id: "r-1", patient: "rp-1")], to: daemon.endpoints.ingest)
            #expect(outcomes.map(\.status) == ["accepted"])
            try await waitForEvaluated(1, control: daemon.endpoints.control)
            let refused: [(String, String)] = [
                (#"{"clinic": "north", "after": 9223372036854775807}"#, "'after' must be a whole number from 0 to 9007199254740992"),
                (#"{"clinic": "north", "after": 9007199254740994}"#, "'after' must be a whole number from 0 to 9007199254740992"),
                (#"{"clinic": "north", "after": 1e19}"#, "'after' must be a whole number from 0 to"),
                (#"{"clinic": "north", "after": -1}"#, "'after' must be a whole number from 0 to"),
                (#"{"clinic": "north", "after": 1.5}"#, "'after' must be a whole number from 0 to"),
                (#"{"clinic": "north", "after": "0"}"#, "'after' must be a whole number from 0 to"),
                (#"{"clinic": "north", "limit": 0}"#, "'limit' must be a whole number ≥ 1"),
                (#"{"clinic": "north", "limit": 2.5}"#, "'limit' must be a whole number ≥ 1"),
                (#"{"clinic": 7}"#, "a replay request is"),
                (#"{nope"#, "malformed JSON: "),  // not "expected one JSON frame", which it was
            ]
            for (json, reason) in refused {
                let reply = try await request(json, to: daemon.endpoints.replay, timeout: 60_000)
                #expect(reply["status"] == .string("error"), "\(json)")
                #expect(reply["reason"]?.stringValue?.hasPrefix(reason) == true, "\(json): \(reply)")
            }
            for limit in ["1e19", "9223372036854775807", "1e300"] {
                let page = try await request(#"{"clinic": "north", "after": 0, "limit": \#(limit)}"#, to: daemon.endpoints.replay, timeout: 60_000)
                guard case .array(let alerts)? = page["alerts"] else { Issue.record("limit \(limit): \(page)"); continue }
                #expect(page["status"] == .string("ok") && !alerts.isEmpty, "limit \(limit)")
            }
            let past = try await request(#"{"clinic": "north", "after": 9007199254740992}"#, to: daemon.endpoints.replay, timeout: 60_000)
            #expect(past["status"] == .string("ok") && past["alerts"] == .array([]), "\(past)")
            let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control, timeout: 60_000)
            #expect(status["status"] == .string("ok"))
        }
    }

    /// What the quarantine and the audit trail keep of hostile input is bounded and whole: the newest
    /// `limits.quarantine_rows` rejected messages (a sender of garbage filled the disk at 28 MB/s), each with what
    /// follows a NUL; a control command that is not one is audited as `control.unknown` with the start of its name
    /// (a 100 KB name made a 100 KB audit row, and `status\u0000-x` was audited as `control.status`).
    @Test func quarantineAndAuditOfHostileInputAreBoundedAndWhole() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var configuration = testConfiguration(directory: scratch.path)
        configuration.quarantineRows = 3
        try await withRunningDaemon(configuration) { daemon in
            let e = daemon.endpoints
            var garbage = (1...5).map { Array("{\"id\": \"g-\($0)\", \"patient\": ".utf8) }
            garbage[4] += [0, 0x41]
            let payloads = garbage
            let outcomes = try await onThread { try EventSender(endpoint: e.ingest).send(payloads, context: try ZMQContext()) }
            #expect(outcomes.map(\.status) == Array(repeating: "rejected", count: 5), "\(outcomes)")
            for name in ["status\\u0000-x", String(repeating: "x", count: 100_000)] {
                let reply = try await request(#"{"command": "\#(name)"}"#, to: e.control, timeout: 60_000)
                #expect(reply["reason"]?.stringValue?.hasPrefix("unknown command") == true, "\(reply)")
            }
            let store = try SQLiteStore(path: configuration.database)
            let kept = try await store.quarantined(limit: 100)
            #expect(kept.count == 3, "\(kept.map(\.payload))")
            #expect(kept.first?.payload.hasSuffix("\"patient\": \u{2400}A") == true, "\(kept.first?.payload ?? "")")
            var unknown: [AuditEntry] = []
            try await waitUntil("two unknown commands audited") {
                unknown = try await store.auditTrail(limit: 100).filter { $0.action.hasPrefix("control.") && $0.action != "control.status" }
                return unknown.count >= 2
            }
            #expect(unknown.map(\.action) == ["control.unknown", "control.unknown"], "\(unknown.map { $0.action.prefix(80) })")
            #expect(Set(unknown.map(\.detail)) == ["command=status\u{2400}-x", "command=" + String(repeating: "x", count: 64)])
        }
    }

    /// Two spellings of one clinic id — "café" with a precomposed é (NFC) and with e + U+0301 — were two clinics to
    /// SQLite and ZeroMQ but one to the daemon's Swift dictionaries: the second clinic's alerts took seqs 4–6 of
    /// the first's counter, its next ones 1–3, and the one after failed on the alert log's UNIQUE constraint, which
    /// stalled evaluation for every clinic. Now the other spelling is refused (400, with the field), the first
    /// clinic's stream stays gap-free, a replay asking in the other spelling reads it, and evaluation goes on.
    @Test func aClinicIdSpelledTwoWaysIsOneStream() async throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let e = daemon.endpoints
            let first = try await send(
                [deficientEvent(id: "c-1", patient: "p-1", clinic: nfc), deficientEvent(id: "c-2", patient: "p-2", clinic: nfd),
                 deficientEvent(id: "c-3", patient: "p-3", clinic: nfc)], to: e.ingest)
            #expect(first.map(\.status) == ["accepted", "rejected", "accepted"], "\(first)")
            #expect(first[1].code == 400 && first[1].reply.contains("\"clinic\"") && first[1].reply.contains("normalisation form C"), "\(first[1].reply)")
            _ = try await send([deficientEvent(id: "n-1", patient: "p-9", clinic: "north")], to: e.ingest)
            try await waitForEvaluated(3, control: e.control)
            let seqs = try await replayAll(clinic: nfc, replay: e.replay).compactMap { $0["seq"]?.int64Value }
            #expect(!seqs.isEmpty && seqs == Array(1...Int64(seqs.count)), "\(seqs)")
            let asked = try await replayAll(clinic: nfd, replay: e.replay).compactMap { $0["seq"]?.int64Value }
            #expect(asked == seqs, "a replay in the other spelling: \(asked)")
            #expect(try await !replayAll(clinic: "north", replay: e.replay).isEmpty)
        }
    }

    /// A message of many frames, each under the per-frame size limit, is refused whole (413, naming its size) instead
    /// of being held and echoed back frame by frame; the sender's next event is accepted.
    @Test func aMessageOfManyFramesIsRefusedWhole() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        var configuration = testConfiguration(directory: scratch.path)
        configuration.maxEventBytes = 4_096
        configuration.maxMessageBytes = 4_096
        try await withRunningDaemon(configuration) { daemon in
            let endpoint = daemon.endpoints.ingest
            let replies = try await onThread { () -> [String] in
                let context = try ZMQContext()
                let dealer = try ZMQSocket(context: context, type: .dealer)
                try dealer.connect(endpoint)
                var replies: [String] = []
                let valid = Array(deficientEvent(id: "mf-1", patient: "mf-p").utf8)
                let eightFrames = Array(deficientEvent(id: "mf-8", patient: "mf-p8").utf8)
                let envelope = { (count: Int) in Array(repeating: Array("hop".utf8), count: count) }
                // Over the byte limit; the frame limit as the sender counts (8, not counting the routing id the
                // ROUTER adds) and one more; then a plain request.
                for message in [Array(repeating: [UInt8](repeating: 32, count: 4_000), count: 200) + [valid], envelope(7) + [eightFrames], envelope(8) + [valid], [valid]] {
                    _ = try dealer.send(message, dontWait: false)
                    guard try dealer.waitForInput(timeout: 60_000), let reply = try dealer.receive(dontWait: true) else { break }
                    replies.append(reply.frames.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "|"))
                }
                return replies
            }
            #expect(replies.count == 4)
            let refused = try object(replies.first ?? "{}")
            #expect(refused["code"] == .number(413) && refused["status"] == .string("rejected"), "\(refused)")
            // Its size as sent: the frames and bytes of the sender's, not the routing id the ROUTER put in front.
            let validBytes = deficientEvent(id: "mf-1", patient: "mf-p").utf8.count
            #expect(refused["reason"]?.stringValue?.hasPrefix("message of 201 frames and \(200 * 4_000 + validBytes) bytes;") == true, "\(refused)")
            // Eight frames are taken (the envelope comes back with the answer); nine are refused.
            let eight = replies.count > 1 ? replies[1].split(separator: "|").map(String.init) : []
            #expect(eight.count == 8 && eight.prefix(7).allSatisfy { $0 == "hop" }, "\(eight)")
            #expect(try object(eight.last ?? "{}")["status"] == .string("accepted"), "\(eight)")
            let nine = try object(replies.count > 2 ? replies[2] : "{}")
            #expect(nine["code"] == .number(413) && nine["reason"]?.stringValue?.hasPrefix("message of 9 frames and \(8 * 3 + validBytes) bytes;") == true, "\(nine)")
            let accepted = try object(replies.last ?? "{}")
            #expect(accepted["status"] == .string("accepted") && accepted["id"] == .string("mf-1"), "\(accepted)")
        }
    }
}
