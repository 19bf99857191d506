@testable import CobaltDaemon
import CobaltTestSupport
import Foundation
import RuleEngine
import Testing

@Suite struct PatientCacheTests {
    /// An entry whose timeline holds `events` events of two observations each (B12 and haemoglobin).
    private func entry(_ patient: String, events: Int, bundle: RuleBundle) throws -> PatientEntry {
        var timeline = PatientTimeline(patient: patient, clinic: "north", factCount: bundle.vocabulary.facts.count)
        for i in 0..<events {
            let json = eventJSON(
                id: "\(patient)-\(i)", patient: patient, time: "2026-11-\(10 + i)T09:00:00Z",
                body: #""observations": [{"code": "b12.active", "value": 40, "unit": "pmol/L"}, {"code": "hb", "value": 120, "unit": "g/L"}]"#)
            timeline.apply(NormalisedEvent(try EventDecoder.decode(Data(json.utf8)), vocabulary: bundle.vocabulary))
        }
        return PatientEntry(timeline: timeline, lastSeq: Int64(events), states: [:])
    }

    /// The record count is the sum over the entries in the cache — through takes, puts that replace an entry and
    /// evictions — and eviction goes least recently used first, down to 90 % of the bound that was passed.
    @Test func recordsAreCountedAndTheLeastRecentlyUsedGoFirst() throws {
        let bundle = try #require(RuleLoader().load(directory: Repository.rules).bundle)
        let a = try entry("a", events: 3, bundle: bundle), b = try entry("b", events: 2, bundle: bundle)
        let c = try entry("c", events: 4, bundle: bundle)
        #expect(a.timeline.recordCount == 6 && b.timeline.recordCount == 4 && c.timeline.recordCount == 8)
        var cache = PatientCache(capacity: 10, recordCapacity: 20)
        cache.put("a", a)
        cache.put("b", b)
        #expect(cache.records == 10 && cache.count == 2)
        #expect(cache.take("a")?.timeline.recordCount == 6)
        #expect(cache.records == 4 && cache.take("a") == nil)
        cache.put("b", c)  // replaces b's entry: its records no longer count
        #expect(cache.records == 8 && cache.count == 1)
        cache.put("a", a)  // a is now the most recently used
        cache.put("c", c)
        #expect(cache.records == 22)
        cache.evictIfNeeded()  // 22 > 20: down to 18 or less, "b" (least recently used) first
        #expect(cache.records == 14 && cache.take("b") == nil && cache.count == 2)
        var few = PatientCache(capacity: 2, recordCapacity: 1_000)
        for (name, entry) in [("a", a), ("b", b), ("c", c)] { few.put(name, entry) }
        few.evictIfNeeded()  // 3 patients > 2: down to 2 - 2/10 = 2
        #expect(few.count == 2 && few.take("a") == nil && few.records == 12)
        few.removeAll()
        #expect(few.count == 0 && few.records == 0)
    }
}
