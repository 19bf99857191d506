import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Threads of their own for evaluation, running at a lower scheduling priority than ingest's threads.
///
/// Evaluation is throughput work behind the journal; an acknowledgement is latency work that passes through four
/// threads (socket loop, `cobalt-ingest`, `cobalt-journal`, socket loop), each of which may have to wait for a
/// core when it wakes. With a higher nice value the kernel runs ingest's threads first; evaluation still gets
/// every core that ingest leaves idle, and a share of a busy one. Measured at 5,000 events/s on 2 cores: ACK p99
/// 6.3 ms against 7.2–10.5 ms with evaluation on the concurrency pool; against nice 0 on these same threads, no
/// difference that the disk's stalls did not drown (docs/benchmarks.md, session 3). Its threads share only short
/// locks with the ACK path (hand-off, send queue, statistics).
///
/// The pipeline runs under this executor's preference (`withTaskExecutorPreference`), so its actor and its shard
/// tasks run here. One executor for the process: its threads live as long as the process (tests start many daemons).
final class EvaluationExecutor: TaskExecutor, @unchecked Sendable {
    /// Added to the process's nice value for evaluation threads (lower priority; needs no privilege).
    static let niceness: Int32 = 5

    static let shared = EvaluationExecutor(threads: ProcessInfo.processInfo.activeProcessorCount)

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0

    private init(threads: Int) {
        for index in 0..<max(1, threads) {
            let thread = Thread { [self] in
                Thread.current.name = "cobalt-eval-\(index)"
                #if canImport(Glibc)
                // On Linux, PRIO_PROCESS with 0 reads and sets the calling thread's nice value only.
                let which = __priority_which_t(PRIO_PROCESS.rawValue)
                _ = setpriority(which, 0, getpriority(which, 0) + Self.niceness)
                #endif
                work()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
