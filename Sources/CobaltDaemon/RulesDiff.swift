import CobaltStore
import Foundation
import RuleEngine

/// `cobalt rules diff --journal DB OLD NEW`: replays the journaled events through two rule sets and reports,
/// per rule and per clinic, the patients whose alerts would be added or lost — before a change goes live.
/// A lost `critical` alert is flagged and makes the command fail.
public enum RulesDiff {
    public struct Report: Sendable {
        public var text: String
        public var lostCritical: Int
        public var events: Int
    }

    public static func run(journal: String, old: String, new: String) async throws -> Report {
        guard FileManager.default.fileExists(atPath: journal) else { throw ConfigurationError("\(journal): no such database") }
        func load(_ directory: String) throws -> RuleBundle {
            let result = RuleLoader().load(directory: directory)
            guard let bundle = result.bundle else {
                throw ConfigurationError("\(directory) does not load:\n" + result.log.sorted.map(\.description).joined(separator: "\n"))
            }
            return bundle
        }
        let before = try load(old)
        let after = try load(new)
        let store = try SQLiteStore(path: journal)
        var timelines: [String: (old: PatientTimeline, new: PatientTimeline, clinic: String)] = [:]
        var firedOld: [String: Set<String>] = [:]  // patient → rules that ever fired
        var firedNew: [String: Set<String>] = [:]
        let oldEvaluator = Evaluator(bundle: before)
        let newEvaluator = Evaluator(bundle: after)
        var last: Int64 = 0
        var count = 0
        while true {
            let page = try await store.events(after: last, limit: 1_000)
            guard !page.isEmpty else { break }
            for stored in page {
                last = stored.seq
                guard let event = try? EventDecoder.decodeJournaled(Data(stored.body.utf8)) else { continue }
                count += 1
                var entry = timelines[stored.patient] ?? (
                    PatientTimeline(patient: stored.patient, clinic: stored.clinic, factCount: before.vocabulary.facts.count),
                    PatientTimeline(patient: stored.patient, clinic: stored.clinic, factCount: after.vocabulary.facts.count),
                    stored.clinic)
                entry.old.apply(NormalisedEvent(event, vocabulary: before.vocabulary))
                entry.new.apply(NormalisedEvent(event, vocabulary: after.vocabulary))
                entry.clinic = stored.clinic
                timelines[stored.patient] = entry
                let o = oldEvaluator.evaluateLazily(entry.old)
                let n = newEvaluator.evaluateLazily(entry.new)
                for i in 0..<o.count where !o.isShadow(i) { firedOld[stored.patient, default: []].insert(o.rule(i)) }
                for i in 0..<n.count where !n.isShadow(i) { firedNew[stored.patient, default: []].insert(n.rule(i)) }
            }
        }
        struct Key: Hashable { var rule: String; var clinic: String }
        var added: [Key: Int] = [:]
        var lost: [Key: Int] = [:]
        for (patient, entry) in timelines {
            let o = firedOld[patient] ?? []
            let n = firedNew[patient] ?? []
            for rule in n.subtracting(o) { added[Key(rule: rule, clinic: entry.clinic), default: 0] += 1 }
            for rule in o.subtracting(n) { lost[Key(rule: rule, clinic: entry.clinic), default: 0] += 1 }
        }
        func severity(_ rule: String) -> String {
            (after.rules.first { $0.id == rule } ?? before.rules.first { $0.id == rule })?.alert?.severity.rawValue ?? "?"
        }
        var text = "replayed \(count) events of \(timelines.count) patients\n"
        text += "old: \(old) \(before.version) \(before.hash)\nnew: \(new) \(after.version) \(after.hash)\n"
        var lostCritical = 0
        if added.isEmpty && lost.isEmpty { text += "no alert would be added or lost\n" }
        for (title, table, sign) in [("added", added, "+"), ("lost", lost, "-")] where !table.isEmpty {
            text += "\nalerts \(title) (patients), by rule and clinic:\n"
            for (key, patients) in table.sorted(by: { ($0.key.rule, $0.key.clinic) < ($1.key.rule, $1.key.clinic) }) {
                let level = severity(key.rule)
                let flag = sign == "-" && level == "critical" ? "  !! LOST CRITICAL ALERT" : ""
                if !flag.isEmpty { lostCritical += patients }
                text += "  \(sign) \(key.rule) [\(level)] clinic \(key.clinic): \(patients)\(flag)\n"
            }
        }
        return Report(text: text, lostCritical: lostCritical, events: count)
    }
}
