import CobaltTestSupport
import RuleEngine
import Foundation
import Testing

/// The store failing under the real binary as an operator's bad day would have it (found by attacking the release
/// binary with a tmpfs that fills, a file system gone read-only, files deleted under it): nothing acknowledged
/// that a restart would not find, every refusal counted and said in the log, and the daemon serving on.
@Suite(.timeLimit(.minutes(5))) struct StorageFailureTests {
    private func counts(_ control: String) async throws -> JSONObject {
        let status = try await request(#"{"command": "status"}"#, to: control)
        guard case .object(let counts)? = status["counts"] else {
            Issue.record("no counts in \(status)")
            return [:]
        }
        return counts
    }

    /// The database file deleted while the daemon runs: SQLite would go on writing the open file, whose name is
    /// gone, and acknowledge events that a restart never finds (seen: 500 events `accepted`, 2,000 alerts
    /// published, then 0 events after a restart). Now each gets 503, is counted as `unavailable`, and the log says
    /// why; status still answers.
    @Test func eventsAfterTheDatabaseFileIsDeletedAreAnswered503AndSaidInTheLog() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let database = scratch.path + "/gone.db"
        let daemon = try await DaemonProcess.start(database: database)
        let before = try await request(deficientEvent(id: "gone-1", patient: "p-gone"), to: daemon.ingest)
        #expect(before["status"] == .string("accepted"), "\(before)")
        try FileManager.default.removeItem(atPath: database)
        for i in 2...4 {
            let reply = try await request(deficientEvent(id: "gone-\(i)", patient: "p-gone"), to: daemon.ingest)
            #expect(reply["status"] == .string("rejected") && reply["code"] == .number(503), "\(reply)")
        }
        let counts = try await counts(daemon.control)
        #expect(counts["accepted"] == .number(1) && counts["unavailable"] == .number(3), "\(counts)")
        _ = await daemon.stop()
        #expect(daemon.log.contains("the journal cannot be written") && daemon.log.contains("was deleted or replaced"), "\(daemon.log)")
        #expect(!daemon.log.contains("gone-2") && !daemon.log.contains("p-gone"), "no event id or patient in the log")
    }

    /// A log reader that goes away (a pipe to `tee` or a log shipper that stopped) must not end the daemon: the
    /// next line it logged used to kill it with SIGPIPE, in both log formats, when the HTTP endpoint was off (SwiftNIO
    /// ignores SIGPIPE for the process when it starts, which hid this with the endpoint on).
    @Test(arguments: ["text", "json"]) func aLogReaderThatGoesAwayDoesNotStopTheDaemon(format: String) async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(
            database: scratch.path + "/pipe.db", arguments: ["--log-format", format, "--metrics", "off"], closeOutputAfterStart: true)
        for _ in 0..<3 {  // each reload logs at least one line into the closed pipe
            let reply = try await request(#"{"command": "reload"}"#, to: daemon.control, timeout: 20_000)
            #expect(reply["status"] == .string("ok"), "\(reply)")
        }
        let reply = try await request(deficientEvent(id: "pipe-1", patient: "p-pipe"), to: daemon.ingest, timeout: 20_000)
        #expect(reply["status"] == .string("accepted"), "\(reply)")
        #expect(await daemon.stop() == 0)
    }
}
