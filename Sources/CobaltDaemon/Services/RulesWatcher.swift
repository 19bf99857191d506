import Foundation
import RuleEngine
import ServiceLifecycle

/// Watches the rules directory and reloads when it changes. Polls a fingerprint (path, size and modification time
/// of every file); a change is acted on only once the fingerprint has stayed the same for `settle` — so a set
/// being copied in is not loaded half-way. The reload itself is gated (checked, compiled, tested) and a refused
/// set is not retried until the files change again.
struct RulesWatcher: Service {
    let directory: String
    /// The site profile, when one is configured: it may live outside the rules directory.
    var profile: String?
    let interval: Duration
    let settle: Duration
    /// The files as they were when the running rules were read (``fingerprint(directory:profile:)`` taken before
    /// the start's gate): a change made while the daemon was starting is reloaded too. (The watcher used to take its
    /// first look when its service started, after the gate, and an edit in between waited for the next one.)
    let loaded: [String]
    /// A gated reload (``Reloader/reload(expect:actor:)``).
    let reload: @Sendable () async -> Void

    func run() async throws {
        var loaded = self.loaded
        var pending: (fingerprint: [String], since: ContinuousClock.Instant)?
        while !Task.isCancelledOrShuttingDown {
            try? await Task.sleep(for: interval)
            // A directory that cannot be read now (out of descriptors, say) is no observation, not a change.
            guard let current = fingerprint() else { continue }
            if current == loaded {
                pending = nil
                continue
            }
            if let candidate = pending, candidate.fingerprint == current {
                guard ContinuousClock.now - candidate.since >= settle else { continue }
                await reload()
                loaded = current
                pending = nil
            } else {
                pending = (current, .now)
            }
        }
    }

    /// The rules directory's fingerprint, the profile's, and its tests' (a file or a directory beside it, which
    /// the gate runs: fixing a failing test of the profile must bring the reload it refused).
    private func fingerprint() -> [String]? { Self.fingerprint(directory: directory, profile: profile) }

    /// Nil when the rules directory cannot be read at all.
    static func fingerprint(directory: String, profile: String?) -> [String]? {
        guard var lines = Self.fingerprint(directory) else { return nil }
        guard let profile else { return lines }
        lines += Self.entry(profile, name: "profile:" + profile).map { [$0] } ?? []
        if let tests = RuleLoader.profileTests(of: profile) {
            lines += Self.entry(tests, name: "profile tests:" + tests).map { [$0] }
                ?? (Self.fingerprint(tests) ?? []).map { "profile tests:" + $0 }
        }
        return lines
    }

    /// One line per file: relative path, size, modification time (the exact `Double`, as its bits: any time a file
    /// system can hold, even one far outside the years `Int64` nanoseconds can count, which used to stop the daemon).
    /// The directory is resolved at every poll and its resolved path is a line too: a rules directory that is a
    /// symlink swapped to another release (`current -> releases/N`) was never looked into.
    static func fingerprint(_ directory: String) -> [String]? {
        let root = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        // FileManager's enumerator yields nothing, rather than failing, for a directory it cannot open.
        guard let opened = opendir(root) else { return nil }
        closedir(opened)
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return nil }
        var lines = ["\u{0}root|\(root)"]
        while let path = enumerator.nextObject() as? String {
            if let line = entry(root + "/" + path, name: path) { lines.append(line) }
        }
        return lines.sorted()
    }

    /// A regular file's line, through symlinks (a Kubernetes ConfigMap's files are symlinks into a hidden
    /// directory, swapped at once); nil for anything else.
    static func entry(_ path: String, name: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        return "\(name)|\(info.st_size)|\(modified.bitPattern)"
    }
}

extension Task where Success == Never, Failure == Never {
    /// Cancelled, or the service group is shutting down.
    static var isCancelledOrShuttingDown: Bool { isCancelled || isShuttingDownGracefully }
}
