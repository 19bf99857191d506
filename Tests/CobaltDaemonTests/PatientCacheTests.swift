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
        cache.put("b", try entry("b", events: 4, bundle: bundle))  // replaces b's entry: its records no longer count
        #expect(cache.records == 8 && cache.count == 1)
        cache.put("a", a)  // a is now the most recently used
        cache.put("c", c)
        #expect(cache.records == 22)
        #expect(cache.evictIfNeeded() == 1)  // 22 > 20: down to 18 or less, "b" (least recently used) first
        #expect(cache.records == 14 && cache.take("b") == nil && cache.count == 2)
        var few = PatientCache(capacity: 2, recordCapacity: 1_000)
        for (name, entry) in [("a", a), ("b", b), ("c", c)] { few.put(name, entry) }
        #expect(few.evictIfNeeded() == 1)  // 3 patients > 2: down to 2 - 2/10 = 2
        #expect(few.evictIfNeeded() == 0)
        #expect(few.count == 2 && few.take("a") == nil && few.records == 12)
        few.removeAll()
        #expect(few.count == 0 && few.records == 0)
    }

    /// The warning covers a whole window and comes at its end, only when patients were evicted in it and at least
    /// one event in ten rebuilt a patient; loading every patient once after a start (no evictions) is not
    /// thrashing, and neither are a few rebuilds among many events. Warnings are at least `quiet` apart.
    @Test func cachePressureWarnsWhenAWindowThrashed() {
        typealias Counts = CachePressure.Counts
        let t0 = ContinuousClock.now
        var pressure = CachePressure(window: .seconds(10), quiet: .seconds(60))
        #expect(pressure.check(Counts(evaluated: 100, loaded: 50), at: t0) == nil)  // starts the first window
        // Thrashing: 1,000 events, 900 rebuilds of evicted patients, each reading 150 journaled events.
        var totals = Counts(evaluated: 1_100, loaded: 950, evicted: 880, historyRead: 135_000)
        #expect(pressure.check(totals, at: t0 + .seconds(9)) == nil)  // the window has not ended
        #expect(pressure.check(totals, at: t0 + .seconds(11)) == CachePressure.Warning(
            window: .seconds(11), counts: Counts(evaluated: 1_000, loaded: 900, evicted: 880, historyRead: 135_000)))
        // Still thrashing in the next windows, but the last warning was less than a minute ago.
        for second in [22, 33, 44, 55, 66] {
            totals.evaluated += 100; totals.loaded += 90; totals.evicted += 90; totals.historyRead += 13_500
            #expect(pressure.check(totals, at: t0 + .seconds(second)) == nil, "at \(second) s")
        }
        totals.evaluated += 100; totals.loaded += 90; totals.evicted += 90
        #expect(pressure.check(totals, at: t0 + .seconds(77))?.counts.loaded == 90)  // 66 s after the first warning
        // A start: many patients loaded once each, nothing evicted.
        totals.evaluated += 1_000; totals.loaded += 1_000
        #expect(pressure.check(totals, at: t0 + .seconds(150)) == nil)
        // Evictions, but fewer rebuilds than one per ten events (9 for 100).
        totals.evaluated += 100; totals.loaded += 9; totals.evicted += 10
        #expect(pressure.check(totals, at: t0 + .seconds(160)) == nil)
        // Exactly one rebuild per ten events is enough.
        totals.evaluated += 100; totals.loaded += 10; totals.evicted += 1
        #expect(pressure.check(totals, at: t0 + .seconds(170))?.counts.loaded == 10)
    }
}
