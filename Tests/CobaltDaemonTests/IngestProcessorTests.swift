@testable import CobaltDaemon
import CobaltStore
import CobaltTestSupport
import RuleEngine
import Synchronization
import Testing
import ZeroMQ

@Suite(.timeLimit(.minutes(1))) struct IngestProcessorTests {
    /// A large batch is checked in parts on several tasks; every message must keep its place, its reply and its
    /// verdict exactly as when one task checks them all in order.
    @Test func aBatchCheckedInPartsKeepsEveryMessageInItsPlace() throws {
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        let count = IngestProcessor.smallestPart * 5 + 7
        let batch = (0..<count).map { i -> Message in
            let payload: String
            switch i % 5 {
            case 0: payload = "{not json \(i)"
            case 1: payload = eventJSON(id: "e-\(i)", time: "not a time")
            default: payload = eventJSON(id: "e-\(i)", patient: "p-\(i % 17)", body: #""observations": [{"code": "b12", "value": \#(100 + i), "unit": "pmol/L"}]"#)
            }
            return Message(frames: [Array("peer-\(i)".utf8), Array(payload.utf8)])
        }
        var serial = IngestProcessor(maxEventBytes: 65_536)
        serial.parallelism = 1
        var parallel = serial
        parallel.parallelism = 4
        let one = serial.prepare(batch, bundle: bundle)
        let parts = parallel.prepare(batch, bundle: bundle)
        #expect(parts.items.count == count)
        #expect(parts.messages == batch)
        /// What identifies an item's outcome: its envelope, then the event id or the refusal.
        func summary(_ item: IngestProcessor.Prepared) -> String {
            switch item {
            case .valid(let checked): "\(String(decoding: checked.envelope[0], as: UTF8.self)) valid \(checked.incoming.id) \(checked.incoming.digest)"
            case .invalid(let reply, _): "\(String(decoding: reply.envelope[0], as: UTF8.self)) \(reply.json)"
            }
        }
        let expected = one.items.map(summary)
        let got = parts.items.map(summary)
        let firstDifference = expected.indices.first { $0 >= got.count || expected[$0] != got[$0] }
        #expect(firstDifference == nil, "message \(firstDifference ?? -1): \(firstDifference.map { got[$0] } ?? "")")
        // And the serial verdicts are the ones intended: every fifth is malformed JSON, the next has a bad time.
        for (i, line) in expected.enumerated() {
            #expect(line.hasPrefix("peer-\(i) "))
            switch i % 5 {
            case 0: #expect(line.contains("malformed JSON"))
            case 1: #expect(line.contains("\"code\":400") && line.contains("e-\(i)"))
            default: #expect(line.contains("valid e-\(i) "))
            }
        }
    }

    /// Journals written before session 14 hold each event's canonical form and the digest of that form; events
    /// are now journaled as received. A resend against such a row is still judged by content: the same canonical
    /// bytes match by digest, the same event written differently matches by content, another event is refused
    /// with 409.
    @Test func aJournalOfCanonicalBodiesJudgesResendsByContent() throws {
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let store = try SQLiteStore(path: scratch.path + "/journal.db")
        let sent = deficientEvent(id: "old-1", patient: "p-1")
        let canonical = try JSONValue.parse(Array(sent.utf8)).canonicalText
        #expect(canonical != sent)
        let processor = IngestProcessor(maxEventBytes: 65_536)
        // The row an older Cobalt wrote: the canonical body, and the SHA-256 of those bytes (which is what ingest
        // now computes for a message holding exactly them).
        guard case .valid(let checked) = processor.prepare(Message(frames: [Array("old".utf8), Array(canonical.utf8)]), vocabulary: bundle.vocabulary)
        else { Issue.record("the canonical form did not check"); return }
        let oldRow = IncomingEvent(id: "old-1", digest: checked.incoming.digest, patient: "p-1", clinic: "north", time: 0, body: canonical)
        #expect(try store.journal([oldRow]) == [.accepted(seq: 1)])

        let resends = [canonical, sent, deficientEvent(id: "old-1", patient: "p-1", value: 19)]
        let batch = processor.prepare(
            resends.enumerated().map { Message(frames: [Array("peer-\($0.offset)".utf8), Array($0.element.utf8)]) }, bundle: bundle)
        let (replies, accepted, counts, _) = processor.commit(batch, journal: store.journal)
        #expect(replies.map { try? object($0.json)["status"]?.stringValue } == ["duplicate", "duplicate", "rejected"])
        #expect(replies[2].json.contains("\"code\":409"))
        #expect(accepted.isEmpty && counts.duplicate == 2 && counts.conflict == 1)
    }

    /// An event dated further ahead of the daemon's clock than the tolerance is refused at `time`, saying by how much
    /// (a year-9999 event was accepted, and every later evaluation of the patient was made as of 9999); within the
    /// tolerance, or in the past, it is accepted. The journal's own events are not checked again (only ingest is).
    @Test func anEventDatedAheadOfTheClockIsRefused() throws {
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        let eventTime = 1_795_165_200.0  // 2026-11-20T09:00:00Z, eventJSON's default
        func verdict(clock: Double, tolerance: Double = DaemonConfiguration().futureToleranceSeconds, time: String = "2026-11-20T09:00:00Z") -> String {
            var processor = IngestProcessor(maxEventBytes: 65_536)
            processor.futureTolerance = tolerance
            processor.now = { clock }
            switch processor.prepare(Message(frames: [Array("peer".utf8), Array(eventJSON(id: "f-1", time: time).utf8)]), vocabulary: bundle.vocabulary) {
            case .valid: return "valid"
            case .invalid(let reply, let record):
                #expect(record.code == 400 && record.id == "f-1")
                return reply.json
            }
        }
        #expect(verdict(clock: eventTime) == "valid")
        #expect(verdict(clock: eventTime + 86_400 * 400) == "valid")
        #expect(verdict(clock: eventTime - 23 * 3_600) == "valid")
        let days = verdict(clock: eventTime - 3 * 86_400)
        #expect(days.contains(#""code":400"#) && days.contains(#""path":"time""#), "\(days)")
        #expect(days.contains("is 3 days after the time the event was received (at most 24 hours ahead is accepted)"), "\(days)")
        let minutes = verdict(clock: eventTime - 300, tolerance: 60)
        #expect(minutes.contains("is 5 minutes after the time the event was received (at most 1 minute ahead"), "\(minutes)")
        #expect(verdict(clock: eventTime, time: "9999-01-01T00:00:00Z").contains("days after the time the event was received"))
    }

    /// An oversized message is refused with 413 and quarantined with its first ``QuarantinedEvent/payloadLimit``
    /// bytes, cut once: a multi-byte character split at the limit becomes one U+FFFD, nothing else changes.
    @Test func anOversizedMessageIsQuarantinedWithItsFirstBytes() throws {
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        let limit = QuarantinedEvent.payloadLimit
        // "é" is two bytes; the first one is the last byte kept.
        let text = #"{"id": "big", "note": ""# + String(repeating: "a", count: limit - 24) + String(repeating: "é", count: 100) + #""}"#
        let bytes = Array(text.utf8)
        #expect(bytes.count > limit + 100 && bytes[limit - 1] == 0xC3)
        let processor = IngestProcessor(maxEventBytes: limit)
        guard case .invalid(let reply, let record) = processor.prepare(Message(frames: [Array("peer".utf8), bytes]), vocabulary: bundle.vocabulary) else {
            Issue.record("an oversized message was accepted")
            return
        }
        #expect(reply.json.contains("\"code\":413") && reply.json.contains("\"id\":\"big\""), "\(reply.json)")
        #expect(record.code == 413 && record.id == "big")
        #expect(record.payload == String(decoding: bytes.prefix(limit - 1), as: UTF8.self) + "\u{FFFD}")
        #expect(record.payload.utf8.count == limit - 1 + 3)
    }

    /// Batches checked while a transaction was being written go into the next one together, in order; a batch
    /// normalised with another vocabulary (a reload in between) starts a transaction of its own.
    @Test func batchesWaitingForTheJournalAreJoinedInOrder() {
        func batch(_ names: [String], _ vocabulary: String) -> IngestProcessor.PreparedBatch {
            IngestProcessor.PreparedBatch(
                messages: names.map { Message(frames: [Array($0.utf8), Array("{}".utf8)]) },
                items: names.map { name in
                    let reply = IngestProcessor.Reply(envelope: [Array(name.utf8)], json: name)
                    return .invalid(reply, quarantine: QuarantinedEvent(time: 0, id: name, code: 400, reason: "", errors: "[]", sender: nil, payload: ""))
                },
                vocabularyHash: vocabulary)
        }
        let merged = IngestProcessor.PreparedBatch.merged([batch(["a1", "a2"], "v1"), batch(["a3"], "v1"), batch(["b1"], "v2"), batch(["c1", "c2"], "v1")])
        func names(_ batch: IngestProcessor.PreparedBatch) -> [String] { batch.messages.map { String(decoding: $0.frames[0], as: UTF8.self) } }
        func replies(_ batch: IngestProcessor.PreparedBatch) -> [String] {
            batch.items.map { if case .invalid(let reply, _) = $0 { reply.json } else { "?" } }
        }
        #expect(merged.map(names) == [["a1", "a2", "a3"], ["b1"], ["c1", "c2"]])
        #expect(merged.map(replies) == merged.map(names))
        #expect(merged.map(\.vocabularyHash) == ["v1", "v2", "v1"])
    }

    /// The queue between ingest's threads: everything put is taken at once, in order; after `close` what is
    /// left is still taken (batches checked but not yet journaled), unless the rest is discarded (messages not yet
    /// checked, never acknowledged, so their senders send them again).
    @Test func theQueueBetweenIngestThreadsTakesEverythingInOrderAndClosesEitherWay() async {
        let keep = ThreadQueue<Int>()
        keep.put(1)
        keep.put(contentsOf: [2, 3])
        #expect(keep.takeAll() == [1, 2, 3])
        keep.put(4)
        keep.close()
        #expect(keep.takeAll() == [4])
        #expect(keep.takeAll() == nil)
        let discard = ThreadQueue<Int>()
        discard.put(contentsOf: [5, 6])
        discard.close(discardingRest: true)
        #expect(discard.takeAll() == nil)
        // A waiting taker is woken by a put from another thread.
        let waiting = ThreadQueue<Int>()
        let taken = Mutex<[Int]?>(nil)
        async let taker: Void = onThread(named: "test-taker") { taken.withLock { $0 = waiting.takeAll() } }
        try? await Task.sleep(for: .milliseconds(20))
        waiting.put(7)
        await taker
        #expect(taken.withLock { $0 } == [7])
    }
}
