import Foundation
import Synchronization

/// Process ids of the children still running, so that an interrupted benchmark (SIGINT/SIGTERM) or a fatal error
/// stops them too.
let runningChildren = Mutex<Set<Int32>>([])

/// On SIGINT/SIGTERM: SIGTERM every child still running, then exit.
func installSignalCleanup() -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            let pids = runningChildren.withLock { $0 }
            for pid in pids { kill(pid, SIGTERM) }
            FileHandle.standardError.write(Data("interrupted: sent SIGTERM to \(pids.count) child process(es)\n".utf8))
            exit(130)
        }
        source.resume()
        return source
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The real `cobalt serve` as a child process on ephemeral loopback ports, with a fresh database in a temporary
/// directory. The endpoints are read from its "cobalt started" log line (info level, on stderr).
final class DaemonProcess: @unchecked Sendable {
    struct Endpoints {
        var ingest = ""
        var alerts = ""
        var replay = ""
        var control = ""
    }

    let process = Process()
    let directory: URL
    let endpoints: Endpoints
    let command: [String]
    /// stderr lines (the first 2,000), kept for error reports and for counting warnings.
    private let log: LogBuffer
    private let reader: Worker<Void>
    private var perf: Process?

    var pid: Int32 { process.processIdentifier }

    /// Whether `cobalt serve` of this binary takes `--metrics` (its help says so).
    static func takesMetricsFlag(_ binary: String) -> Bool {
        let help = Process()
        help.executableURL = URL(fileURLWithPath: binary)
        help.arguments = ["serve", "--help"]
        let pipe = Pipe()
        help.standardOutput = pipe
        help.standardError = FileHandle.nullDevice
        guard (try? help.run()) != nil else { return false }
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        help.waitUntilExit()
        return text.contains("--metrics")
    }

    /// Starts the daemon and waits (up to 30 s) for its "cobalt started" line. `configuration`: YAML written to
    /// `cobalt.yaml` in the temporary directory and passed as `--config` (command-line flags override it).
    init(binary: String, rules: String, label: String, configuration: String? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cobalt-load-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var arguments = [
            "serve", "--rules", rules, "--db", directory.appendingPathComponent("load.db").path,
            "--ingest", "tcp://127.0.0.1:*", "--alerts", "tcp://127.0.0.1:*",
            "--replay", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*",
        ]
        // Binaries since session 20 listen for HTTP scrapes too (default port 5574, which a daemon running beside the
        // benchmark may hold): any free port, as for the other endpoints. Older binaries do not know the flag.
        if Self.takesMetricsFlag(binary) { arguments += ["--metrics", "http://127.0.0.1:*"] }
        if let configuration {
            let file = directory.appendingPathComponent("cobalt.yaml")
            try configuration.write(to: file, atomically: true, encoding: .utf8)
            arguments += ["--config", file.path]
        }
        command = [binary] + arguments
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardError = pipe
        let log = LogBuffer()
        self.log = log
        let started = Handoff<String>()
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw BenchmarkError("cannot run \(binary): \(error)")
        }
        let pid = process.processIdentifier
        runningChildren.withLock { _ = $0.insert(pid) }
        // Drain stderr for the whole life of the daemon, so logging never blocks it on a full pipe.
        let handle = pipe.fileHandleForReading
        reader = Worker("daemon-stderr") {
            var pending = Data()
            var announced = false
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    log.append(line)
                    if !announced, line.contains("cobalt started") {
                        announced = true
                        started.put(line)
                    }
                }
            }
            if !announced { started.put("") }
        }
        guard let line = started.take(timeoutSeconds: 30), !line.isEmpty else {
            let lines = log.lines
            endpoints = Endpoints()
            stop()
            throw BenchmarkError("the daemon did not start; its stderr:\n" + lines.suffix(30).joined(separator: "\n"))
        }
        func value(_ key: String) -> String {
            guard let range = line.range(of: " \(key)=") ?? line.range(of: "\(key)=") else { return "" }
            return String(line[range.upperBound...].prefix { $0 != " " && $0 != "\"" && $0 != "," })
        }
        endpoints = Endpoints(ingest: value("ingest"), alerts: value("alerts"), replay: value("replay"), control: value("control"))
        guard endpoints.ingest.hasPrefix("tcp://"), endpoints.control.hasPrefix("tcp://"), endpoints.alerts.hasPrefix("tcp://") else {
            stop()
            throw BenchmarkError("cannot read the endpoints from the start line: \(line)")
        }
    }

    /// The daemon's peak resident memory so far (`VmHWM` in `/proc/PID/status`, Linux), in bytes; nil elsewhere or
    /// once it has exited.
    var peakResidentBytes: Int? {
        guard let data = try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/status")).readToEnd() else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// Log lines at warning level or above (the daemon logs at info by default).
    var problems: [String] {
        log.lines.filter { $0.contains(" warning ") || $0.contains(" error ") || $0.contains(" critical ") }
    }

    /// Records the daemon with `perf record -g` until ``stop()`` (for profiling; optional).
    func startPerf(output: String) {
        runPerf(["record", "-g", "-F", "999", "-p", "\(pid)", "-o", output], settle: 0.5)
    }

    /// Counts the daemon's `fdatasync`/`fsync` system calls with `perf stat` until ``stopPerf()`` (optional: needs
    /// `perf` and access to the syscall tracepoints). The counts are read with ``perfStatCounts(_:)``.
    func startPerfStat(output: String) {
        runPerf(["stat", "-x", ",", "-e", "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync", "-p", "\(pid)", "-o", output], settle: 0.3)
    }

    /// The library functions ``startCallCount(output:)`` counts: what allocates, and what retains a reference.
    static let countedCalls = [(library: "libc.so.6", function: "malloc"), (library: "libswiftCore.so", function: "swift_retain")]

    /// Counts the daemon's calls of ``countedCalls`` per thread with `perf stat` and uprobes until ``stopPerf()``;
    /// read with ``callCounts(_:)``.
    func startCallCount(output: String) throws {
        // Read to the end: /proc files have no size for `String(contentsOfFile:)`.
        let data = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/maps")).readToEnd()) ?? nil
        let maps = data.map { String(decoding: $0, as: UTF8.self) } ?? ""
        var events: [String] = []
        for (library, function) in Self.countedCalls {
            guard let path = maps.split(separator: "\n").lazy.compactMap({ $0.split(separator: " ").last.map(String.init) })
                .first(where: { $0.hasSuffix("/" + library) })
            else { throw BenchmarkError("--count-calls: the daemon has no \(library) mapped") }
            // The probe's name is perf's: probe_<library stem>:<function>; adding it again only fails.
            let probe = Self.perfProcess(["probe", "-q", "-x", path, function])
            try probe.run()
            probe.waitUntilExit()
            let stem = library.split(separator: ".").first.map(String.init) ?? library
            events.append("probe_\(stem):\(function)")
        }
        runPerf(["stat", "--per-thread", "-x", ",", "-e", events.joined(separator: ","), "-p", "\(pid)", "-o", output], settle: 0.5)
    }

    /// Calls counted by ``startCallCount(output:)``: per thread name (Dispatch and Swift concurrency workers as
    /// "pool") and function.
    static func callCounts(_ file: String) -> [String: [String: Int]]? {
        var counts: [String: [String: Int]] = [:]
        for fields in perfStatRows(file) {
            // --per-thread rows: thread-tid, count, unit, event, …
            guard fields.count >= 4, let count = Int(fields[1]) else { continue }
            var thread = String(fields[0])
            if let dash = thread.lastIndex(of: "-") { thread = String(thread[..<dash]) }
            if thread.contains("qos") { thread = "pool" }
            let function = String(fields[3].split(separator: ":").last ?? fields[3])
            counts[thread, default: [:]][function, default: 0] += count
        }
        return counts.isEmpty ? nil : counts
    }

    /// Starts `perf` attached to the daemon, then gives it `settle` seconds to attach.
    private func runPerf(_ arguments: [String], settle: Double) {
        let perf = Self.perfProcess(arguments)
        do {
            try perf.run()
            runningChildren.withLock { _ = $0.insert(perf.processIdentifier) }
            self.perf = perf
            Thread.sleep(forTimeInterval: settle)
        } catch {
            progress("perf could not start: \(error)")
        }
    }

    /// Stops `perf record` or `perf stat` (SIGINT, so that it writes its output).
    func stopPerf() {
        if let perf, perf.isRunning {
            kill(perf.processIdentifier, SIGINT)
            perf.waitUntilExit()
            runningChildren.withLock { _ = $0.remove(perf.processIdentifier) }
        }
    }

    /// The event counts in a `perf stat -x ,` output file, by event name (nil when perf did not count).
    static func perfStatCounts(_ file: String) -> [String: Int]? {
        var counts: [String: Int] = [:]
        for fields in perfStatRows(file) {
            guard fields.count >= 3, let count = Int(fields[0]) else { continue }
            counts[String(fields[2])] = count
        }
        return counts.isEmpty ? nil : counts
    }

    /// The rows of a `perf stat -x ,` output file, split into fields (none when perf wrote nothing).
    private static func perfStatRows(_ file: String) -> [[Substring]] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }
            .map { $0.split(separator: ",", omittingEmptySubsequences: false) }
    }

    /// `perf` with these arguments, its output discarded (not started).
    private static func perfProcess(_ arguments: [String]) -> Process {
        let perf = Process()
        perf.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        perf.arguments = ["perf"] + arguments
        perf.standardOutput = FileHandle.nullDevice
        perf.standardError = FileHandle.nullDevice
        return perf
    }

    /// SIGTERM (graceful stop), then SIGKILL after 20 s; removes the temporary directory. Returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        stopPerf()
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        runningChildren.withLock { _ = $0.remove(process.processIdentifier) }
        _ = try? reader.join()
        try? FileManager.default.removeItem(at: directory)
        return process.terminationStatus
    }
}

/// The first 2,000 lines of a child's stderr.
final class LogBuffer: Sendable {
    private let storage = Mutex<[String]>([])

    func append(_ line: String) {
        storage.withLock { if $0.count < 2_000 { $0.append(line) } }
    }

    var lines: [String] { storage.withLock { $0 } }
}
