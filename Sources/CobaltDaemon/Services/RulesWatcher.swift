import Foundation
import ServiceLifecycle

/// Watches the rules directory and reloads when it changes. Polls a fingerprint (path, size and modification time
/// of every file); a change is acted on only once the fingerprint has stayed the same for `settle` — so a set
/// being copied in is not loaded half-way. The reload itself is gated (checked, compiled, tested) and a refused
/// set is not retried until the files change again.
struct RulesWatcher: Service {
    let directory: String
    let interval: Duration
    let settle: Duration
    let reloader: Reloader

    func run() async throws {
        var loaded = Self.fingerprint(directory)
        var pending: (fingerprint: [String], since: ContinuousClock.Instant)?
        while !Task.isCancelledOrShuttingDown {
            try? await Task.sleep(for: interval)
            let current = Self.fingerprint(directory)
            if current == loaded {
                pending = nil
                continue
            }
            if let candidate = pending, candidate.fingerprint == current {
                guard ContinuousClock.now - candidate.since >= settle else { continue }
                _ = await reloader.reload(expect: nil, actor: "watcher")
                loaded = current
                pending = nil
            } else {
                pending = (current, .now)
            }
        }
    }

    /// One line per file: relative path, size, modification time (the exact `Double`, as its bits: any time a file
    /// system can hold, even one far outside the years `Int64` nanoseconds can count, which used to stop the daemon).
    static func fingerprint(_ directory: String) -> [String] {
        let fm = FileManager.default
        guard let enumerator = fm.enumerator(atPath: directory) else { return [] }
        var lines: [String] = []
        while let path = enumerator.nextObject() as? String {
            guard let attributes = try? fm.attributesOfItem(atPath: directory + "/" + path),
                attributes[.type] as? FileAttributeType == .typeRegular
            else { continue }
            let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            lines.append("\(path)|\(size)|\(modified.bitPattern)")
        }
        return lines.sorted()
    }
}

extension Task where Success == Never, Failure == Never {
    /// Cancelled, or the service group is shutting down.
    static var isCancelledOrShuttingDown: Bool { isCancelled || isShuttingDownGracefully }
}
