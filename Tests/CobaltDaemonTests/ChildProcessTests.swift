import CobaltTestSupport
import Foundation
import Testing

/// The tests' own way of starting programs (``ChildProcess``, instead of Foundation's `Process`, which crashes now
/// and then on Linux once the test process holds many descriptors).
@Suite struct ChildProcessTests {
    /// A child holds none of the test process's descriptors — a pipe or socket of another child's, inherited, would
    /// keep that child's reader from ever seeing the end of its output — and gets the environment, arguments and exit
    /// status it should.
    @Test func aChildInheritsNothingButItsOwnOutput() async throws {
        var leaked: [Int32] = [-1, -1]
        #expect(pipe(&leaked) == 0)  // no close-on-exec: Process closed such descriptors in the child, and so must this
        defer { close(leaked[0]); close(leaked[1]) }
        let run = try await runProgram("/usr/bin/env", ["python3", "-c", """
            import os, sys
            print(sorted(int(fd) for fd in os.listdir("/proc/self/fd")), os.environ.get("COBALT_CHILD_TEST"), sys.argv[1])
            sys.exit(3)
            """, "argument with spaces"])
        // 0, 1, 2, and the descriptor listdir itself opened.
        #expect(run.status == 3 && run.output == "[0, 1, 2, 3] None argument with spaces\n", "\(run)")
    }

    /// A child ended by a signal reports the signal's number, as Foundation's `terminationStatus` did.
    @Test func aChildEndedByASignalReportsIt() throws {
        let child = try ChildProcess("/bin/sleep", ["30"], environment: [:], captureStandardOutput: false)
        #expect(child.isRunning)
        child.signal(SIGKILL)
        #expect(child.waitUntilExit() == SIGKILL && !child.isRunning)
    }
}
