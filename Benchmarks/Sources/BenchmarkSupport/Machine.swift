import Foundation

/// What a benchmark ran on, read from the running system (shared by both benchmarks).
public enum Machine {
    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    public static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        var model = "unknown"
        var mhz = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("model name"), model == "unknown", let colon = line.firstIndex(of: ":") {
                model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            if line.hasPrefix("cpu MHz"), mhz.isEmpty, let colon = line.firstIndex(of: ":") {
                mhz = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return mhz.isEmpty ? model : "\(model) (\(mhz) MHz)"
    }

    public static var memory: String {
        "\(fmt(Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824, 1)) GiB"
    }

    public static var loadAverage: String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    public static var kernel: String {
        run(["uname", "-sr"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public static var os: String {
        guard let text = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return "unknown"
    }

    public static var buildConfiguration: String {
        #if DEBUG
        return "debug (numbers are NOT representative; use -c release)"
        #else
        return "release"
        #endif
    }

    /// The repository's commit and how many files under Sources/ or Rules/ differ from it (what is measured is built
    /// from the working tree).
    public static func revision(root: String) -> String {
        let head = run(["git", "-C", root, "rev-parse", "--short", "HEAD"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let dirty = run(["git", "-C", root, "status", "--porcelain", "--", "Sources", "Rules"]).split(separator: "\n").count
        return head.isEmpty ? "unknown" : head + (dirty > 0 ? " + \(dirty) uncommitted changes in Sources/ and Rules/" : " (clean Sources/ and Rules/)")
    }

    public static func run(_ arguments: [String]) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return "" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// `swift --version`, first line, when a `swift` is on PATH.
    public static var swiftVersion: String {
        run(["swift", "--version"]).split(separator: "\n").first.map(String.init) ?? "unknown"
    }
}
