import CobaltClient
import CobaltDaemon
import CobaltTestSupport
import Foundation
import RuleEngine
import Testing
import ZeroMQ

/// The clients as their users meet trouble: Ctrl-C in a catch-up, heartbeats faster than a second, a line too
/// large for the daemon's socket, cursor paths that cannot be written, arguments that name nothing.
@Suite(.timeLimit(.minutes(10))) struct CommandLineRobustnessTests {
    /// Many alerts for one clinic: `patients` copies of vignette C09 (eight alerts each).
    func sendC09(patients: Int, clinic: String, to daemon: DaemonProcess, in scratch: ScratchDirectory) async throws {
        let example = try String(contentsOfFile: Repository.root.appendingPathComponent("docs/examples/c09-neuro.jsonl").path, encoding: .utf8)
        var lines: [String] = []
        for patient in 0..<patients {
            for line in example.split(separator: "\n") {
                lines.append(String(line)
                    .replacingOccurrences(of: #""id": "c09-"#, with: #""id": "r\#(patient)-"#)
                    .replacingOccurrences(of: #""patient": "p-c09""#, with: #""patient": "p-r\#(patient)""#)
                    .replacingOccurrences(of: #""clinic": "north-antenatal""#, with: #""clinic": "\#(clinic)""#))
            }
        }
        let file = scratch.path + "/many.jsonl"
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let sent = try await cobalt("send", "--ingest", daemon.ingest, file)
        #expect(sent.status == 0, "\(sent.output.suffix(500))")
        // Evaluated and logged: replay's head reaches patients × 8.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, try await replayAll(clinic: clinic, replay: daemon.replay, pageSize: 500).count < patients * 8 {
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Ctrl-C while `cobalt subscribe` catches up: the cursor names the last alert printed — never one after it
    /// (an alert skipped), and not one before it (printed again at the next start: 14 of 20 interruptions did, the
    /// signal landing between the print and the cursor's save) — and no temporary file of the cursor's atomic
    /// write is left beside it (12 were, in 20).
    @Test func ctrlCInACatchUpLeavesTheCursorAtTheLastAlertPrinted() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/cobalt.db")
        defer { _ = daemon.terminate() }
        try await sendC09(patients: 300, clinic: "north", to: daemon, in: scratch)
        let cursors = scratch.path + "/cursors"
        try FileManager.default.createDirectory(atPath: cursors, withIntermediateDirectories: true)
        for round in 0..<20 {
            let cursor = cursors + "/north.json"
            try? FileManager.default.removeItem(atPath: cursor)
            let output: String = try await onThread {
                let child = try ChildProcess(
                    Repository.cobaltBinary,
                    ["subscribe", "--clinic", "north", "--alerts", daemon.alerts, "--replay", daemon.replay, "--jsonl", "--cursor", cursor],
                    environment: testEnvironment(), captureStandardOutput: true)
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(150 + 37 * round)) { child.signal(SIGINT) }
                let data = child.output.readDataToEndOfFile()
                _ = child.waitUntilExit()
                return String(decoding: data, as: UTF8.self)
            }
            let printed = output.split(separator: "\n").compactMap { line -> Int64? in
                guard case .object(let alert)? = try? JSONValue.parse(Data(line.utf8)) else { return nil }
                return alert["seq"]?.int64Value
            }
            guard let last = printed.last else { continue }  // stopped before the first alert
            let saved = try JSONDecoder().decode(Subscriber.Cursor.self, from: Data(contentsOf: URL(fileURLWithPath: cursor)))
            #expect(saved.last == last, "round \(round): printed up to \(last), the cursor says \(saved.last)")
            let left = try FileManager.default.contentsOfDirectory(atPath: cursors).filter { $0 != "north.json" && $0 != "north.json.lock" }
            #expect(left.isEmpty, "round \(round): left beside the cursor: \(left)")
        }
        #expect(await daemon.stop() == 0)
    }

    /// `--idle N` is N seconds without an alert, however often heartbeats come (it counted polls, each heartbeat
    /// ending one: with `heartbeat_ms: 100`, `--idle 3` stopped after about 0.3 s).
    @Test func idleIsSecondsNotHeartbeats() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let configuration = scratch.path + "/fast.yaml"
        try "heartbeat_ms: 100\n".write(toFile: configuration, atomically: true, encoding: .utf8)
        let daemon = try await DaemonProcess.start(database: scratch.path + "/cobalt.db", arguments: ["--config", configuration])
        defer { _ = daemon.terminate() }
        let started = ContinuousClock.now
        let idle = try await cobalt("subscribe", "--clinic", "quiet", "--alerts", daemon.alerts, "--replay", daemon.replay, "--idle", "3")
        #expect(idle.status == 0, "\(idle.output)")
        #expect(ContinuousClock.now - started >= .seconds(3))
        #expect(await daemon.stop() == 0)
    }

    /// A line over the daemon's `limits.max_message_bytes` is not sent (libzmq would drop it with its connection,
    /// unanswered, and every event pipelined behind it): it is reported 413, and the lines around it are answered.
    /// A line without an id is named by its file and line, blank lines counted.
    @Test func aLineTooLargeForTheSocketIsNotSentAndHoldsUpNothing() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/cobalt.db")
        defer { _ = daemon.terminate() }
        let file = scratch.path + "/big.jsonl"
        var lines = (0..<300).map { eventJSON(id: "b-\($0)", patient: "p-b\($0)") }
        lines.insert(eventJSON(id: "b-big", body: #""pad": "\#(String(repeating: "x", count: 1_100_000))""#), at: 150)
        lines.insert("", at: 10)
        lines.insert("{not json", at: 11)
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let sent = try await cobalt("send", "--ingest", daemon.ingest, "--timeout", "20", file)
        #expect(sent.status == 1)
        #expect(sent.output.contains("b-big: rejected 413 — not sent"), "\(sent.output.prefix(2_000))")
        #expect(sent.output.contains("(\(file):12): rejected 400"), "\(sent.output.prefix(2_000))")
        #expect(sent.output.hasSuffix("300 acknowledged, 2 rejected\n"), "\(sent.output.suffix(500))")
        #expect(!sent.output.contains(": unanswered") && !sent.output.contains(" unanswered\n"), "\(sent.output.suffix(500))")
        #expect(await daemon.stop() == 0)
    }

    /// A cursor path that cannot be written is said before any alert is printed (it failed after the first, with a
    /// Foundation error); a second subscriber on the same cursor file is refused; `--count`/`--idle` below 0 and
    /// a clinic id the daemon would refuse are usage errors (they exited 0 having printed nothing, or waited for
    /// ever).
    @Test func cursorPathsAndArgumentsThatCannotWorkAreSaidFirst() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/cobalt.db")
        defer { _ = daemon.terminate() }
        try await sendC09(patients: 1, clinic: "north", to: daemon, in: scratch)
        let common = ["--clinic", "north", "--alerts", daemon.alerts, "--replay", daemon.replay, "--idle", "1"]
        for path in [scratch.path, scratch.path + "/missing/dir/c.json"] {
            let run = try await runProgram(Repository.cobaltBinary, ["subscribe"] + common + ["--cursor", path])
            #expect(run.status == 1 && !run.output.contains("#1 [") && run.output.contains(path), "\(run.output)")
        }
        // One subscriber per cursor file.
        let shared = scratch.path + "/shared.json"
        let first = try ChildProcess(
            Repository.cobaltBinary, ["subscribe"] + common.dropLast(2) + ["--cursor", shared], environment: testEnvironment(),
            captureStandardOutput: false)
        defer { first.signal(SIGTERM); _ = first.waitUntilExit() }
        try await Task.sleep(for: .seconds(1))
        let second = try await runProgram(Repository.cobaltBinary, ["subscribe"] + common + ["--cursor", shared])
        #expect(second.status == 1 && second.output.contains("in use by another"), "\(second.output)")
        // Standard output closed while SIGPIPE is ignored (as some supervisors start their children): a clean
        // error, not a crash (it trapped in FileHandle.write), and the cursor not past what was written.
        let piped = scratch.path + "/piped.json"
        let closed = try await runProgram("/bin/sh", ["-c", "trap '' PIPE; \"$0\" \"$@\" | head -c 1 >/dev/null", Repository.cobaltBinary, "subscribe"]
            + common + ["--cursor", piped])
        #expect(!closed.output.contains("Fatal error"), "\(closed.output)")
        let saved = try JSONDecoder().decode(Subscriber.Cursor.self, from: Data(contentsOf: URL(fileURLWithPath: piped)))
        #expect(saved.last <= 1, "\(saved)")
        for bad in [["--count=-1"], ["--idle=-1"], ["--clinic", "a/b"], ["--clinic", "x\u{1}y"], ["--clinic", ""]] {
            let run = try await runProgram(Repository.cobaltBinary, ["subscribe", "--alerts", daemon.alerts, "--replay", daemon.replay, "--idle", "1"]
                + (bad.first == "--clinic" ? bad : ["--clinic", "north"] + bad))
            #expect(run.status == 64, "\(bad): \(run.output)")
        }
        #expect(await daemon.stop() == 0)
    }
}
