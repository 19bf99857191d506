package import CobaltDaemon
package import Foundation
import Logging

/// Paths of the repository, for tests that use the bundled rules and the built `cobalt` binary.
package enum Repository {
    package static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    package static var rules: String { root.appendingPathComponent("Rules").path }

    /// The `cobalt` executable built beside the test bundle.
    package static var cobaltBinary: String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().deletingLastPathComponent(),
            root.appendingPathComponent(".build/debug"),
        ]
        for directory in candidates {
            var current = directory
            for _ in 0..<6 {
                let path = current.appendingPathComponent("cobalt").path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
                current = current.deletingLastPathComponent()
            }
        }
        return root.appendingPathComponent(".build/debug/cobalt").path
    }
}

/// A scratch directory removed at the end.
package struct ScratchDirectory: Sendable {
    package let url: URL
    package var path: String { url.path }

    package init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("cobalt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    package func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A daemon configuration on ephemeral loopback ports with a database in `directory`.
package func testConfiguration(directory: String, rules: String = Repository.rules) -> DaemonConfiguration {
    var configuration = DaemonConfiguration()
    configuration.rules = rules
    configuration.database = directory + "/cobalt.db"
    configuration.ingest = "tcp://127.0.0.1:*"
    configuration.alerts = "tcp://127.0.0.1:*"
    configuration.replay = "tcp://127.0.0.1:*"
    configuration.control = "tcp://127.0.0.1:*"
    configuration.metrics = "http://127.0.0.1:*"
    configuration.heartbeatMilliseconds = 200
    // The fixtures are dated (2026-11-20 and so on): a machine whose clock is behind them must not refuse them as
    // dated ahead. The check itself is tested with its own clock (IngestProcessorTests).
    configuration.futureToleranceMilliseconds = Int.max / 2
    return configuration
}

/// Starts the real daemon (sockets, store, rules), runs `body`, and always shuts it down — on the error path too.
package func withRunningDaemon<T: Sendable>(
    _ configuration: DaemonConfiguration, _ body: (Daemon) async throws -> T
) async throws -> T {
    var logger = Logger(label: "cobalt-test")
    logger.logLevel = .warning
    let daemon = try await Daemon.start(configuration: configuration, logger: logger, handleSignals: false)
    let running = Task { try await daemon.run() }
    do {
        let result = try await body(daemon)
        await daemon.shutdown()
        try await running.value
        return result
    } catch {
        await daemon.shutdown()
        _ = try? await running.value
        throw error
    }
}

/// An event JSON for tests.
package func eventJSON(
    id: String, patient: String = "p-1", clinic: String = "north", time: String = "2026-11-20T09:00:00Z", body: String = ""
) -> String {
    #"{"schema": "cobalt.event.v1", "id": "\#(id)", "patient": "\#(patient)", "clinic": "\#(clinic)", "time": "\#(time)"\#(body.isEmpty ? "" : ", " + body)}"#
}

/// Runs `python3` with arguments (an independent peer such as a pyzmq client) on its own thread; returns the exit
/// status and everything it printed.
package func runPython(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await runProgram("/usr/bin/env", ["python3"] + arguments)
}

/// Runs a program (an absolute path) on its own thread, as a user would from a shell; returns the exit status and everything it
/// printed (standard output and error together, in order). A program still running after `timeout` seconds is
/// killed (a test then fails on its status instead of hanging). It does not inherit `NOTIFY_SOCKET`: a test run
/// under systemd must not report to the runner's own unit.
package func runProgram(_ executable: String, _ arguments: [String], timeout: Double = 120) async throws -> (status: Int32, output: String) {
    try await onThread { () -> (Int32, String) in
        let child = try ChildProcess(executable, arguments, environment: testEnvironment(), captureStandardOutput: true)
        let watchdog = DispatchWorkItem { child.signal(SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        defer { watchdog.cancel() }
        let data = child.output.readDataToEndOfFile()
        return (child.waitUntilExit(), String(decoding: data, as: UTF8.self))
    }
}

/// This process's environment for a child it starts, with `extra` over it and without `NOTIFY_SOCKET` unless
/// `extra` sets it.
package func testEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["NOTIFY_SOCKET"] = nil
    return environment.merging(extra) { $1 }
}
