import CobaltClient
@testable import CobaltDaemon
import CobaltTestSupport
import Foundation
import RuleEngine
import Testing

/// The evaluation pipeline commits a chunk's alert changes while it evaluates the next chunks: up to four commits
/// queue, each waiting for the one before it. When one fails, those queued behind it must not write, evaluation
/// must go back to before the failed chunk, and once the store works again the alert log must be exactly what it
/// would have been without the failure: the same alerts with the same sequence numbers, none twice, none missing.
@Suite(.timeLimit(.minutes(10))) struct CommitFailureTests {
    /// 600 events of 30 patients in two clinics; each patient's active B12 alternates between 18 and 90 pmol/L
    /// every event, so every event fires or resolves alerts.
    static let events = (0..<600).map { i in
        deficientEvent(
            id: "cq-\(i)", patient: "cq-p\(i % 30)", clinic: i % 3 == 0 ? "south" : "north", value: (i / 30) % 2 == 0 ? 18 : 90,
            time: "2026-11-20T\(String(format: "%02d", i / 30)):00:00Z")
    }

    /// Every alert in the log, per clinic, as `seq patient rule status id` (without the times of publication).
    static func log(_ daemon: Daemon) async throws -> [String: [String]] {
        var log: [String: [String]] = [:]
        for clinic in ["north", "south"] {
            log[clinic] = try await replayAll(clinic: clinic, replay: daemon.endpoints.replay, pageSize: 500).map { alert in
                ["seq", "patient", "rule", "status", "id"].map { alert[$0]?.canonicalText ?? "-" }.joined(separator: " ")
            }
        }
        return log
    }

    @Test func aFailedCommitLeavesTheAlertLogAsIfItHadNotFailed() async throws {
        let (first, rest) = (Array(Self.events[..<200]), Array(Self.events[200...]))
        let expected = try await {
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            return try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
                _ = try await send(first, to: daemon.endpoints.ingest)
                try await waitForEvaluated(200, control: daemon.endpoints.control)
                _ = try await send(rest, to: daemon.endpoints.ingest)
                try await waitForEvaluated(600, control: daemon.endpoints.control)
                return try await Self.log(daemon)
            }
        }()

        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = testConfiguration(directory: scratch.path)
        let actual = try await withRunningDaemon(configuration) { daemon -> [String: [String]] in
            _ = try await send(first, to: daemon.endpoints.ingest)
            try await waitForEvaluated(200, control: daemon.endpoints.control)
            // The alerts of a few events now fail to be logged, with a real SQLite error: the commit holding them
            // fails, and the commits queued behind it would succeed if they did not wait for it. The journal is
            // untouched.
            try await runSQL(
                injectedFailure("INSERT", on: "alert_log", where: "NEW.event_seq BETWEEN 300 AND 305"), database: configuration.database)
            let outcomes = try await send(rest, to: daemon.endpoints.ingest)
            #expect(outcomes.allSatisfy { $0.status == "accepted" })
            try await Task.sleep(for: .milliseconds(800))
            let failing = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
            guard case .object(let counts)? = failing["counts"], case .number(let evaluated)? = counts["evaluated"] else {
                Issue.record("no counts: \(failing)")
                return [:]
            }
            #expect(evaluated < 600, "the failure was not hit: \(counts)")
            try await runSQL(injectedFailureOff, database: configuration.database)
            try await waitForEvaluated(600, control: daemon.endpoints.control)
            return try await Self.log(daemon)
        }
        #expect((expected["north"]?.count ?? 0) > 300 && (expected["south"]?.count ?? 0) > 150, "\(expected.mapValues(\.count))")
        for clinic in ["north", "south"] {
            let (want, got) = (expected[clinic] ?? [], actual[clinic] ?? [])
            #expect(got == want, "\(clinic): \(got.count) alerts, \(want.count) expected; first difference: \(zip(got, want).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "none")")
        }
    }

    /// While the store fails, evaluation is retried on a schedule (0.5 s, then twice as long each time), not on
    /// every event that arrives: each attempt drops the patient cache and loads the patients again, so retrying per
    /// event multiplied the work (and the error logs) by the rate of events during an outage. Nothing is lost: once
    /// the store works, everything is evaluated.
    @Test func duringAStoreFailureEvaluationIsRetriedOnScheduleNotPerEvent() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = testConfiguration(directory: scratch.path)
        try await withRunningDaemon(configuration) { daemon in
            try await runSQL(injectedFailure("INSERT", on: "alert_log"), database: configuration.database)
            func loaded() async throws -> Double {
                let status = try await request(#"{"command": "status"}"#, to: daemon.endpoints.control)
                guard case .object(let counts)? = status["counts"], case .number(let n)? = counts["patients_loaded"] else { return -1 }
                return n
            }
            // One at a time: each is its own journal commit, and used to be its own evaluation attempt.
            let started = ContinuousClock.now
            for i in 0..<40 {
                let outcome = try await send([deficientEvent(id: "rf-\(i)", patient: "rf-p\(i % 4)")], to: daemon.endpoints.ingest)
                #expect(outcome.map(\.status) == ["accepted"])
            }
            let attempts = try await loaded()
            // The first attempt, and the retries the schedule allows in the time the sends took (0.5 s after the
            // first, then 1 s, 2 s… after each): on a quiet machine one or two. Counted from the time taken rather
            // than fixed at two, which a busy machine's slower sends could exceed; before, about one per event.
            let took = ContinuousClock.now - started
            var allowed = 1
            var retryAt = EvaluationPipeline.retryDelay, delay = EvaluationPipeline.retryDelay
            while retryAt <= took {
                allowed += 1
                delay = min(delay * 2, EvaluationPipeline.retryLimit)
                retryAt += delay
            }
            #expect(attempts >= 1 && attempts <= Double(4 * allowed),
                "\(attempts) patients loaded during the failure in \(took) (at most 4 per attempt, \(allowed) attempts; 56 when every event was an attempt)")
            try await runSQL(injectedFailureOff, database: configuration.database)
            try await waitForEvaluated(40, control: daemon.endpoints.control)
        }
    }

    /// A store that fails (a full disk) fails both ingest and evaluation; evaluation's retries back off to 30 s.
    /// When the journal commits again, the pending retry runs at once: events acknowledged before the failure used
    /// to wait for the back-off to end (up to 30 s more) for their alerts, while ingest already acknowledged again.
    @Test func aPendingEvaluationRetryRunsAsSoonAsTheJournalIsWrittenAgain() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = testConfiguration(directory: scratch.path)
        try await withRunningDaemon(configuration) { daemon in
            try await runSQL(injectedFailure("INSERT", on: "alert_log"), database: configuration.database)
            let first = try await request(deficientEvent(id: "wr-1", patient: "wr-p1"), to: daemon.endpoints.ingest)
            #expect(first["status"] == .string("accepted"), "\(first)")
            // Retries after 0.5, 1, 2, 4 and 8 s fail: the one pending now waits 16 s.
            try await Task.sleep(for: .seconds(16))
            try await runSQL("""
                CREATE TRIGGER injected_failure_events BEFORE INSERT ON events
                WHEN (SELECT on_ FROM injected_failure) = 1 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
                """, database: configuration.database)
            let refused = try await request(deficientEvent(id: "wr-2", patient: "wr-p2"), to: daemon.endpoints.ingest)
            #expect(refused["code"] == .number(503), "\(refused)")
            try await runSQL(injectedFailureOff, database: configuration.database)
            let again = try await request(deficientEvent(id: "wr-3", patient: "wr-p3"), to: daemon.endpoints.ingest)
            #expect(again["status"] == .string("accepted"), "\(again)")
            // Well before the pending retry's 16 s (without the wake-up, both waited for it).
            try await waitForEvaluated(2, control: daemon.endpoints.control, within: .seconds(8))
        }
    }
}
