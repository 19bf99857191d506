@testable import CobaltDaemon
import CobaltTestSupport
import Foundation
import Logging
import Synchronization
import Testing

/// `log.format: json` (`--log-format json`): one JSON object per line for log shippers, with the record's own
/// members and the metadata beside them.
@Suite(.timeLimit(.minutes(10))) struct LogFormatTests {
    func object(_ line: [UInt8]) throws -> [String: Any] {
        #expect(line.last == UInt8(ascii: "\n") && line.dropLast().contains(UInt8(ascii: "\n")) == false, "one line")
        return try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
    }

    /// Quotes, backslashes, line ends and control characters in the message and in metadata keys and values stay
    /// inside their strings (the line stays one line and parses); metadata spelt like a member of the record is
    /// prefixed, not written over it; lists and dictionaries are JSON arrays and objects.
    @Test func aRecordIsOneParsableLine() throws {
        let message = "a \"quoted\" back\\slash,\nnew line\r\ttab \u{1} and é"
        let line = JSONLogHandler.line(
            time: Date(timeIntervalSince1970: 1_795_000_000.987_6), level: .warning, logger: "cobalt", message: message,
            source: "CobaltDaemon",
            metadata: [
                "level": "not the level", "time": "not the time", "odd\"key\n": "v", "count": .stringConvertible(42),
                "list": ["a", .dictionary(["k": "v"])], "map": ["z": "1", "a": ["x"]],
            ])
        let record = try object(line)
        #expect(record["message"] as? String == message)
        #expect(record["level"] as? String == "warning")
        #expect(record["logger"] as? String == "cobalt" && record["source"] as? String == "CobaltDaemon")
        #expect(record["time"] as? String == "2026-11-18T11:06:40.987Z")
        #expect(record["metadata.level"] as? String == "not the level" && record["metadata.time"] as? String == "not the time")
        #expect(record["odd\"key\n"] as? String == "v")
        #expect(record["count"] as? String == "42")
        let list = try #require(record["list"] as? [Any])
        #expect(list.count == 2 && list[0] as? String == "a" && (list[1] as? [String: String]) == ["k": "v"])
        let map = try #require(record["map"] as? [String: Any])
        #expect(map["z"] as? String == "1" && (map["a"] as? [String]) == ["x"])
        #expect(record.count == 11, "\(record.keys.sorted())")
    }

    /// The timestamp is RFC 3339 in UTC with milliseconds, whatever the time: padded fields, and a time just below
    /// a whole second is not rounded up into the next one.
    @Test func timestampsAreRFC3339InUTC() {
        #expect(JSONLogHandler.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(JSONLogHandler.timestamp(Date(timeIntervalSince1970: 1_772_323_199.9999)) == "2026-02-28T23:59:59.999Z")
        #expect(JSONLogHandler.timestamp(Date(timeIntervalSince1970: 1_767_225_600.25)) == "2026-01-01T00:00:00.250Z")
    }

    /// The handler keeps the logger's metadata and level as swift-log expects: metadata set on the logger is in
    /// every record, a record's own metadata wins over it, and records below the level are not written.
    @Test func loggerMetadataAndLevelApply() throws {
        let lines = Mutex<[[UInt8]]>([])
        var logger = Logger(label: "test") { label in JSONLogHandler(label: label, level: .notice) { line in lines.withLock { $0.append(line) } } }
        logger[metadataKey: "component"] = "ingest"
        logger[metadataKey: "shared"] = "logger"
        logger.info("below the level")
        logger.notice("kept", metadata: ["shared": "record"])
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let record = try object(try #require(written.first))
        #expect(record["message"] as? String == "kept" && record["level"] as? String == "notice")
        #expect(record["component"] as? String == "ingest" && record["shared"] as? String == "record")
    }

    /// The real binary with `--log-format json`: every line it writes to stderr, from the start through a reload to
    /// the stop, is a JSON record; the start's record carries the bound endpoints as members; no patient id from
    /// the events it was sent appears (nothing patient-related is logged at info).
    @Test func theDaemonLogsJSONLinesWhenAsked() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/json.db", arguments: ["--log-format", "json"])
        let sent = try await runProgram(
            Repository.cobaltBinary,
            ["send", "--ingest", daemon.ingest, Repository.root.appendingPathComponent("docs/examples/c09-neuro.jsonl").path])
        #expect(sent.status == 0 && sent.output.contains("2 acknowledged"), "\(sent.output)")
        let reloaded = try await runProgram(Repository.cobaltBinary, ["reload", "--control", daemon.control])
        #expect(reloaded.status == 0, "\(reloaded.output)")
        #expect(await daemon.stop() == 0)
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.count >= 3)
        var messages: [String] = []
        for line in lines {
            let record = try object(Array(line.utf8) + [UInt8(ascii: "\n")])
            #expect(record["time"] is String && record["level"] is String && record["logger"] as? String == "cobalt", "\(line)")
            messages.append(record["message"] as? String ?? "")
            if record["message"] as? String == "cobalt started" {
                #expect(record["ingest"] as? String == daemon.ingest && record["control"] as? String == daemon.control, "\(line)")
                #expect((record["ruleset.hash"] as? String)?.hasPrefix("sha256:") == true, "\(line)")
            }
        }
        #expect(messages.first == "cobalt started" && messages.last == "cobalt stopped", "\(messages)")
        #expect(messages.contains("rule set unchanged"), "\(messages)")
        #expect(!daemon.log.contains("p-c09") && !daemon.log.contains("c09-lab"), "\(daemon.log)")
    }
}
