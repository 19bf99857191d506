import BenchmarkSupport
import Foundation

/// What the benchmark ran on, read from the running system.
enum Machine {
    static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }

    static var loadAverage: String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    static var memory: String {
        let gib = Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824
        return "\(fmt(gib, 1)) GiB"
    }

    static var buildConfiguration: String {
        #if DEBUG
        return "debug (numbers are NOT representative; use -c release)"
        #else
        return "release"
        #endif
    }

    /// The main repository's commit, and how many files under Sources/ and Rules/ differ from it (the engine is
    /// built from the working tree, so uncommitted edits are part of what is measured).
    static func mainRevision(root: String) -> String {
        let head = run(["git", "-C", root, "rev-parse", "--short", "HEAD"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let dirty = run(["git", "-C", root, "status", "--porcelain", "--", "Sources", "Rules"])
            .split(separator: "\n").count
        return head.isEmpty ? "unknown" : "\(head)" + (dirty > 0 ? " + \(dirty) uncommitted changes in Sources/ and Rules/" : " (clean Sources/ and Rules/)")
    }

    static func run(_ arguments: [String]) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = Pipe()
        do { try process.run() } catch { return "" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// `swift --version`, first line, when a `swift` is on PATH; the benchmark does not depend on it.
    static var swiftVersion: String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swift", "--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = Pipe()
        do { try process.run() } catch { return "unknown" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        return text.split(separator: "\n").first.map(String.init) ?? "unknown"
    }
}
