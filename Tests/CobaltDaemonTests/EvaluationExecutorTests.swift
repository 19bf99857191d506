@testable import CobaltDaemon
import Foundation
import Glibc
import Testing

@Suite struct EvaluationExecutorTests {
    /// The kernel's name and nice value of the calling thread.
    private static func currentThread() -> (name: String, nice: Int32) {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
        return (name.trimmingCharacters(in: .newlines), getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0))
    }

    /// Evaluation (the pipeline and its shard tasks) runs on the executor's own threads, below the priority of the
    /// threads that acknowledge events.
    @Test func evaluationRunsOnItsOwnLowerPriorityThreads() async {
        let base = Self.currentThread().nice
        let seen = await withTaskExecutorPreference(EvaluationExecutor.shared) {
            await withTaskGroup(of: (name: String, nice: Int32).self) { group in
                for _ in 0..<8 { group.addTask { Self.currentThread() } }
                var seen = [Self.currentThread()]
                for await thread in group { seen.append(thread) }
                return seen
            }
        }
        #expect(seen.count == 9)
        for thread in seen {
            #expect(thread.name.hasPrefix("cobalt-eval-"), "ran on \(thread.name)")
            #expect(thread.nice == min(base + EvaluationExecutor.niceness, 19))
        }
    }
}
