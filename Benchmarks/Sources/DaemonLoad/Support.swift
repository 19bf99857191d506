import BenchmarkSupport
import Foundation
import Synchronization

// MARK: - Clock

/// Monotonic nanoseconds (CLOCK_MONOTONIC through Dispatch); comparable across threads of this process.
@inline(__always)
func nowNanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

// MARK: - Threads

/// Runs a blocking body on a dedicated OS thread (every zmq call of the load generator runs on one of these;
/// none runs on the Swift concurrency pool). Each socket is created, used and closed on its thread.
final class Worker<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let result = Mutex<Result<T, any Error>?>(nil)

    init(_ name: String, _ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let outcome = Result { try body() }
            result.withLock { $0 = outcome }
            done.signal()
        }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Waits for the thread to finish and returns its result (or rethrows its error).
    func join() throws -> T {
        done.wait()
        done.signal()  // joinable more than once
        return try result.withLock { $0! }.get()
    }
}

/// A flag set by one thread and read by others.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// A value handed from one thread to another once.
final class Handoff<T: Sendable>: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let value = Mutex<T?>(nil)

    func put(_ v: T) {
        value.withLock { $0 = v }
        semaphore.signal()
    }

    func take(timeoutSeconds: Double) -> T? {
        guard semaphore.wait(timeout: .now() + timeoutSeconds) == .success else { return nil }
        return value.withLock { $0 }
    }
}

// MARK: - Statistics

/// Percentiles of latency samples (nanoseconds), nearest rank on the sorted samples: p(q) is the smallest sample
/// such that at least q % of the samples are at or below it. Reported in milliseconds.
struct Latency {
    let count: Int
    let p50: Double
    let p90: Double
    let p99: Double
    let p999: Double
    let max: Double
    let mean: Double

    init?(_ nanoseconds: [UInt64]) {
        guard !nanoseconds.isEmpty else { return nil }
        let sorted = nanoseconds.sorted()
        func rank(_ q: Double) -> Double {
            let index = Swift.max(0, Swift.min(sorted.count - 1, Int((q / 100 * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[index]) / 1e6
        }
        count = sorted.count
        p50 = rank(50)
        p90 = rank(90)
        p99 = rank(99)
        p999 = rank(99.9)
        max = Double(sorted[sorted.count - 1]) / 1e6
        mean = sorted.reduce(0.0) { $0 + Double($1) } / Double(sorted.count) / 1e6
    }

    var line: String {
        "n=\(count)  p50 \(fmt(p50, 3)) ms  p90 \(fmt(p90, 3)) ms  p99 \(fmt(p99, 3)) ms  p99.9 \(fmt(p999, 3)) ms  max \(fmt(max, 3)) ms  mean \(fmt(mean, 3)) ms"
    }
}

/// 12345.6 → "12,346".
func grouped(_ value: Double) -> String {
    let digits = String(Int(value.rounded()))
    var out = ""
    for (i, c) in digits.reversed().enumerated() {
        if i > 0, i % 3 == 0, c != "-" { out.append(",") }
        out.append(c)
    }
    return String(out.reversed())
}

func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    guard text.count < width else { return text }
    let fill = String(repeating: " ", count: width - text.count)
    return right ? fill + text : text + fill
}

/// Writes progress to stderr (the report goes to stdout).
func progress(_ text: String) {
    FileHandle.standardError.write(Data(("· " + text + "\n").utf8))
}

// MARK: - CPU accounting

/// User + system CPU seconds used so far by a process (from /proc/PID/stat), or nil.
func cpuSeconds(pid: Int32) -> Double? {
    let path = pid == 0 ? "/proc/self/stat" : "/proc/\(pid)/stat"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Busy CPU seconds of the whole machine (all cores) from /proc/stat: everything but idle and iowait.
func machineBusySeconds() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8), let line = text.split(separator: "\n").first else { return 0 }
    let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard values.count >= 8 else { return 0 }
    let busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]  // user nice system irq softirq steal
    return busy / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// CPU used by the daemon, by this load generator and by everything else on the machine between two moments.
struct CPUWindow {
    let daemonPID: Int32
    private let startDaemon: Double
    private let startSelf: Double
    private let startMachine: Double
    private let startTime: UInt64

    init(daemonPID: Int32) {
        self.daemonPID = daemonPID
        startDaemon = cpuSeconds(pid: daemonPID) ?? 0
        startSelf = cpuSeconds(pid: 0) ?? 0
        startMachine = machineBusySeconds()
        startTime = nowNanoseconds()
    }

    /// Cores used by other processes over the window (the benchmark wants this near 0).
    var otherCores: Double {
        let wall = Double(nowNanoseconds() - startTime) / 1e9
        let daemon = (cpuSeconds(pid: daemonPID) ?? startDaemon) - startDaemon
        let own = (cpuSeconds(pid: 0) ?? startSelf) - startSelf
        return max(0, (machineBusySeconds() - startMachine - daemon - own) / wall)
    }

    /// "CPU over 10.0 s: daemon 1.23 cores (12.3 s), load generator 0.05 cores (0.5 s), other processes 0.02 cores".
    var summary: String {
        let wall = Double(nowNanoseconds() - startTime) / 1e9
        let daemon = (cpuSeconds(pid: daemonPID) ?? startDaemon) - startDaemon
        let own = (cpuSeconds(pid: 0) ?? startSelf) - startSelf
        let other = max(0, (machineBusySeconds() - startMachine - daemon - own) / wall)
        return "CPU over \(fmt(wall, 1)) s: daemon \(fmt(daemon / wall, 2)) cores (\(fmt(daemon, 1)) s), "
            + "load generator \(fmt(own / wall, 2)) cores (\(fmt(own, 1)) s), other processes \(fmt(other, 2)) cores"
    }
}

/// Waits (up to `limit` seconds) until other processes use less than `threshold` cores over one second, so that
/// builds or tests running beside the benchmark do not distort it. Returns the last measured usage.
func waitForQuietMachine(limit: Double, threshold: Double = 0.15) -> Double {
    let deadline = nowNanoseconds() + UInt64(limit * 1e9)
    var other = 0.0
    repeat {
        let window = CPUWindow(daemonPID: -1)
        sleep(1)
        other = window.otherCores
        if other < threshold { return other }
        progress("waiting for a quiet machine: other processes use \(fmt(other, 2)) cores")
    } while nowNanoseconds() < deadline
    return other
}
