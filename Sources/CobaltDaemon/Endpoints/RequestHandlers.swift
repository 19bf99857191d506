import CobaltStore
import Foundation
import Logging
import RuleEngine
import ZeroMQ

/// Replay (INTERFACES §3): `{"clinic", "after", "limit"}` → `{"epoch", "alerts", "last", "more", "head"}`.
struct ReplayHandler {
    let store: any CobaltStore
    let epoch: String
    let pageLimit: Int
    /// Whether the authenticated subscriber (ZAP User-Id) may read a clinic's alerts.
    var authorize: @Sendable (String?, String) -> Bool = { _, _ in true }

    /// 2^53: the largest whole number a JSON number holds exactly here, and more sequence numbers than a clinic
    /// will ever have.
    static let largestExactInteger: Int64 = 9_007_199_254_740_992

    func reply(to request: JSONValue, userID: String?) async -> String {
        // Clinic ids are in Unicode NFC (ingest refuses others) and the store compares bytes: a request naming a
        // clinic in another spelling reads the same stream.
        guard case .object(let object) = request, let clinic = object["clinic"]?.stringValue.map(EventDecoder.nfc),
            !clinic.isEmpty
        else {
            return Self.error("a replay request is {\"clinic\": ID, \"after\": SEQ, \"limit\": N}")
        }
        guard authorize(userID, clinic) else { return Self.error("this key may not read clinic \(clinic)") }
        var after: Int64 = 0
        if let value = object["after"] {
            // JSON numbers are read as doubles: beyond 2^53 a number is not read exactly (9223372036854775807 was
            // refused with a message naming that very number as the largest allowed).
            guard let n = value.int64Value, n >= 0, n <= Self.largestExactInteger else {
                return Self.error("'after' must be a whole number from 0 to \(Self.largestExactInteger)")
            }
            after = n
        }
        var limit = pageLimit
        if let value = object["limit"] {
            // A limit above the page limit asks for a full page, however large it is written.
            guard case .number(let n) = value, n >= 1, n == n.rounded() else { return Self.error("'limit' must be a whole number ≥ 1") }
            limit = n >= Double(pageLimit) ? pageLimit : Int(n)
        }
        do {
            let page = try await store.alerts(clinic: clinic, after: after, limit: limit)
            let head = try await store.lastSequences()[clinic] ?? 0
            let last = page.alerts.last?.seq ?? after
            return "{\"status\":\"ok\",\"epoch\":\(epoch.jsonQuoted),\"clinic\":\(clinic.jsonQuoted),\"alerts\":[" + page.alerts.map(\.json).joined(separator: ",")
                + "],\"last\":\(last),\"more\":\(page.more),\"head\":\(head)}"
        } catch {
            return Self.error("the store is unavailable; retry")
        }
    }

    static func error(_ reason: String) -> String {
        "{\"status\":\"error\",\"reason\":\(reason.jsonQuoted)}"
    }
}

/// Control (INTERFACES §3): `status` and `reload`.
struct ControlHandler {
    let configuration: DaemonConfiguration
    let store: any CobaltStore
    let rules: RulesHolder
    let pipeline: EvaluationPipeline
    let publisher: Publisher
    let statistics: Statistics
    let started: Double
    let reloader: Reloader
    let audit: AuditLog
    /// The metrics in Prometheus text format, when a metrics backend is installed.
    let metrics: (@Sendable () -> String)?

    static let version = "0.1.0"
    /// The commands the switch below answers.
    static let commands = ["status", "reload", "metrics"]

    func reply(to request: JSONValue, userID: String?) async -> String {
        guard case .object(let object) = request, let command = object["command"]?.stringValue else {
            return ReplayHandler.error("a control request is {\"command\": \"status\" | \"reload\" | \"metrics\"}")
        }
        // Audited under its own name only when it is a command: anything else a client sends (100 KB of it, a NUL
        // in the middle) is `control.unknown` with the first 64 characters of the name in the detail.
        let known = Self.commands.contains(command)
        audit.record(
            actor: userID ?? "local", action: known ? "control.\(command)" : "control.unknown",
            detail: known
                ? object["expect"]?.stringValue.map { "expect=\($0.prefix(80))" } ?? ""
                : "command=\(command.prefix(64))")
        switch command {
        case "status": return await status()
        case "reload":
            // A compare-and-swap that is not a hash must not become an unconditional reload.
            let expect = object["expect"]
            if let expect, expect.stringValue?.isEmpty != false {
                return ReplayHandler.error("'expect' must be the running rule set's hash (\"sha256:…\"), found \(expect.canonicalText.prefix(80)); nothing was reloaded")
            }
            return await reload(expect: expect?.stringValue, actor: userID ?? "local")
        case "metrics":
            guard let metrics else { return ReplayHandler.error("no metrics backend is installed") }
            return "{\"status\":\"ok\",\"format\":\"prometheus-text-0.0.4\",\"text\":\(metrics().jsonQuoted)}"
        default: return ReplayHandler.error("unknown command '\(command)'; expected status, reload or metrics")
        }
    }

    private func status() async -> String {
        let bundle = rules.snapshot
        let counts = statistics.snapshot
        // What the pipeline has evaluated, which may be ahead of the stored watermark (see EvaluationPipeline).
        let stored = (try? await store.counts(evaluatedThrough: await pipeline.lastEvaluated))
            ?? StoreCounts(events: -1, unevaluated: -1, alerts: -1)
        let clinics = publisher.lastSequences.sorted { $0.key < $1.key }.map { "\($0.key.jsonQuoted):\($0.value)" }.joined(separator: ",")
        let uptime = Date().timeIntervalSince1970 - started
        return """
            {"status":"ok","version":"\(Self.version)","uptime_seconds":\(uptime.rounded(significant: 6).formatted),\
            "epoch":\(publisher.epoch.jsonQuoted),\
            "ruleset":{"version":\(bundle.version.jsonQuoted),"hash":\(bundle.hash.jsonQuoted),"rules":\(bundle.rules.count)},\
            "counts":{"received":\(counts.received),"accepted":\(counts.accepted),"duplicate":\(counts.duplicate),\
            "rejected":\(counts.rejected),"unavailable":\(counts.unavailable),"evaluated":\(counts.evaluated),"published":\(counts.published),\
            "journaled":\(stored.events),"unevaluated":\(stored.unevaluated),"alerts_logged":\(stored.alerts),\
            "handoff_overflows":\(counts.handOffOverflows),"patients_loaded":\(counts.patientsLoaded),\
            "patients_evicted":\(counts.patientsEvicted),"history_events_read":\(counts.historyEventsRead),\
            "ingest_waited_ms":\(Int(counts.ingestWaited.timeInterval * 1_000))},\
            "clinics":{\(clinics)},"cached_patients":\(await pipeline.cachedPatients),"cached_records":\(await pipeline.cachedRecords),\
            "last_reload":\(reloader.lastReloadJSON)}
            """
    }

    private func reload(expect: String?, actor: String) async -> String {
        switch await reloader.reload(expect: expect, actor: actor) {
        case .live(let version, let hash, let duration, let compile, let tests, let pause, let patients, let reevaluationError):
            func ms(_ d: Duration) -> String {
                (d.timeInterval * 1_000).rounded(significant: 4).formatted
            }
            return "{\"status\":\"ok\",\"ruleset\":{\"version\":\(version.jsonQuoted),\"hash\":\(hash.jsonQuoted)},"
                + "\"reload_ms\":\(ms(duration)),\"compile_ms\":\(ms(compile)),\"tests_ms\":\(ms(tests)),"
                + "\"evaluation_pause_ms\":\(ms(pause)),\"patients_reevaluated\":\(patients)"
                + (reevaluationError.map { ",\"reevaluation_error\":\("\($0); retried until it succeeds".jsonQuoted)" } ?? "") + "}"
        case .unchanged(let version, let hash):
            return "{\"status\":\"ok\",\"unchanged\":true,\"ruleset\":{\"version\":\(version.jsonQuoted),\"hash\":\(hash.jsonQuoted)}}"
        case .refused(let reason, let errors):
            return "{\"status\":\"error\",\"reason\":\(reason.jsonQuoted),\"errors\":[" + errors.map(\.jsonQuoted).joined(separator: ",") + "]}"
        }
    }
}
