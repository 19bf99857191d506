import Foundation
import GRDB

/// Copies committed pages from the write-ahead log into the database file on a thread of its own, so that the
/// writer's commits — and the acknowledgements waiting for them — do not pay for it.
///
/// With SQLite's automatic checkpoints, the connection that commits does the copying, inside that commit: at
/// 5,000 events/s nearly every journal transaction also copied its pages into the database and synced it. Here a
/// separate connection runs a passive checkpoint (it never waits for, nor blocks, the writer or readers) soon
/// after commits, at most every ``spacing``. A passive checkpoint cannot restart the log while commits keep
/// arriving, so the writer keeps an automatic checkpoint with a high threshold (``SQLiteStore/checkpointPages``)
/// as a backstop: when it fires, nearly everything has already been copied, and it finishes the job so that the
/// next transaction starts the log from the beginning again (the log stayed at or under about 20 MB in the load
/// benchmark).
final class Checkpointer: @unchecked Sendable {
    /// Least time between two checkpoints: commits in between are copied together (a page changed by several of
    /// them is copied once).
    static let spacing: Duration = .milliseconds(20)

    private let connection: DatabaseQueue
    private let condition = NSCondition()
    private var pending = false
    private var stopped = false
    private var finished = false

    init(path: String) throws {
        var configuration = Configuration()
        configuration.label = "cobalt.checkpointer"
        connection = try DatabaseQueue(path: path, configuration: configuration)
        let thread = Thread { [self] in
            // Named from inside, and for the kernel (top, perf) directly: Foundation's setter does not always reach
            // it on Linux (see ZeroMQ's nameCurrentThread). The kernel keeps 15 bytes.
            Thread.current.name = "cobalt-checkpoint"
            #if os(Linux)
            try? "cobalt-checkpnt".write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
            #endif
            run()
        }
        thread.start()
    }

    /// Called after each commit: a checkpoint follows within ``spacing``.
    func committed() {
        condition.lock()
        pending = true
        condition.signal()
        condition.unlock()
    }

    /// Ends the thread (after the checkpoint in progress, if any) and waits for it.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while !pending, !stopped { condition.wait() }
            pending = false
            if stopped {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.unlock()
            // A failure (the file is gone, say) only leaves the work to the writer's own checkpoints.
            _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            Thread.sleep(forTimeInterval: Self.spacing.timeInterval)
        }
    }
}
