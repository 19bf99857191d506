@testable import CobaltDaemon
import CobaltTestSupport
import RuleEngine
import Testing

@Suite struct HandOffTests {
    private func events(_ range: ClosedRange<Int64>) -> [JournaledEvent] {
        range.map { JournaledEvent(seq: $0, patient: "p", clinic: "c", event: nil, vocabularyHash: "") }
    }

    @Test func handsOverInOrderAndKeepsAGapFreePrefixWhenFull() {
        let handOff = HandOff(capacity: 4)
        handOff.push(events(1...2))
        handOff.push(events(3...4))
        let first = handOff.take()
        #expect(first.events.map(\.seq) == [1, 2, 3, 4] && !first.overflowed)
        handOff.push(events(5...7))
        handOff.push(events(8...9))  // 5 > 4: left out, the pipeline must read the journal after 7
        handOff.push(events(10...10))  // left out too until taken: it would leave a hole
        let second = handOff.take()
        #expect(second.events.map(\.seq) == [5, 6, 7] && second.overflowed)
        handOff.push(events(11...11))
        let third = handOff.take()
        #expect(third.events.map(\.seq) == [11] && !third.overflowed)
    }
}

@Suite(.timeLimit(.minutes(2))) struct HandOffFallbackTests {
    /// With a hand-off too small for the traffic, evaluation reads the journal instead; with several workers,
    /// patients are evaluated in parallel; with a patient cache of one and chunks of three events, or a cache of
    /// 40 timeline records, patients are evicted and rebuilt from the store all the time. Either way the alert
    /// log — sequence numbers included — is the same as with one worker and room to spare, and every event is
    /// evaluated exactly once.
    @Test func aFullHandOffAndParallelWorkersChangeNothing() async throws {
        var logs: [[String]] = []
        let configurations = [
            (20_000, 1, 10_000, 2_000_000), (2, 1, 10_000, 2_000_000), (20_000, 4, 10_000, 2_000_000), (2, 3, 10_000, 2_000_000),
            (20_000, 1, 1, 2_000_000), (20_000, 2, 10_000, 40),
        ]
        for (capacity, workers, patients, records) in configurations {
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            var configuration = testConfiguration(directory: scratch.path)
            configuration.handOffEvents = capacity
            configuration.evaluationWorkers = workers
            configuration.patientCache = patients
            configuration.patientCacheRecords = records
            if patients == 1 { configuration.evaluationBatch = 3 }
            // The crash stream, then pairs of events of one patient back to back (low, then recovered), so that a
            // patient often has several events in one evaluation chunk.
            let stream = crashStream() + (0..<40).flatMap { p in
                (0..<2).map { k in
                    (id: "pair-\(p)-\(k)", json: deficientEvent(
                        id: "pair-\(p)-\(k)", patient: "pp-\(p)", clinic: ["north", "south", "east"][p % 3], value: k == 0 ? 18 : 95,
                        time: "2026-11-2\(k)T09:00:00Z"))
                }
            }
            logs.append(try await withRunningDaemon(configuration) { daemon in
                let outcomes = try await send(stream.map(\.json), to: daemon.endpoints.ingest)
                #expect(outcomes.map(\.status) == Array(repeating: "accepted", count: stream.count))
                try await waitForEvaluated(stream.count, control: daemon.endpoints.control)
                let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
                let counts: JSONObject? = if case .object(let counts)? = status["counts"] { counts } else { nil }
                #expect(counts?["evaluated"] == .number(Double(stream.count)))
                // The small hand-off did overflow, so the journal path really ran; the large one never did.
                let overflows: Double = if case .number(let n)? = counts?["handoff_overflows"] { n } else { -1 }
                #expect(capacity == 2 ? overflows > 0 : overflows == 0, "\(overflows) overflows with capacity \(capacity)")
                // The cache keeps to its bounds; with 40 records, patients are evicted and loaded again.
                let cachedPatients: Double = if case .number(let n)? = status["cached_patients"] { n } else { -1 }
                let cachedRecords: Double = if case .number(let n)? = status["cached_records"] { n } else { -1 }
                let loaded: Double = if case .number(let n)? = counts?["patients_loaded"] { n } else { -1 }
                let distinctPatients = Set(stream.map { patientOf($0.json) }).count
                #expect(cachedPatients >= 1 && cachedPatients <= Double(patients) && cachedRecords >= 1 && cachedRecords <= Double(records))
                #expect(patients == 1 || records == 40 ? loaded > Double(distinctPatients) : loaded == Double(distinctPatients),
                    "\(loaded) patients loaded, \(distinctPatients) distinct")
                return try await alertLog(replay: daemon.endpoints.replay)
            })
        }
        #expect(logs[0].count > 100)
        for log in logs.dropFirst() {
            // Compact on failure: the first line that differs, not both logs.
            let firstDifference = zip(log, logs[0]).first { $0 != $1 }
            #expect(log.count == logs[0].count && firstDifference == nil, "\(log.count) vs \(logs[0].count) lines")
        }
    }
}

/// The `patient` of an event's JSON.
private func patientOf(_ json: String) -> String {
    guard case .object(let object)? = try? JSONValue.parse(Array(json.utf8)), let patient = object["patient"]?.stringValue else { return "" }
    return patient
}
