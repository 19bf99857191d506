package import Foundation
import Synchronization

/// A program the tests start (the `cobalt` binary, `python3`), spawned with `posix_spawn` rather than Foundation's
/// `Process`: on Linux, `Process.run()` scans `/proc/self/fd` with a 256-byte copy of each directory entry
/// (swift-corelibs-foundation#5472), which reads past glibc's buffer and crashes the whole test process now and then
/// once it holds about a thousand descriptors — as the test process does, with many daemons running in it. Here the
/// child closes every descriptor above 2 itself (`posix_spawn_file_actions_addclosefrom_np`), and one thread per
/// child waits for it.
package final class ChildProcess: Sendable {
    package let processIdentifier: pid_t
    /// The read end of the pipe the child writes to (its standard error, and its standard output too when asked).
    package let output: FileHandle
    private let exit = Mutex<Int32?>(nil)
    private let exited = DispatchSemaphore(value: 0)

    package struct SpawnError: Error, CustomStringConvertible {
        package let description: String
    }

    /// Starts `executable` with `arguments` and exactly `environment`. Standard input is `/dev/null`; standard error
    /// goes to ``output``, and standard output too when `captureStandardOutput`, else to `/dev/null`.
    package init(_ executable: String, _ arguments: [String], environment: [String: String], captureStandardOutput: Bool) throws {
        // Both are glibc's (2.34 and later), declared for _GNU_SOURCE only, which Swift's Glibc module is not built with.
        guard let pipe2 = Self.glibc("pipe2", as: (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32).self),
            let closeFrom = Self.glibc(
                "posix_spawn_file_actions_addclosefrom_np",
                as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
        else { throw SpawnError(description: "this C library has no pipe2 or posix_spawn_file_actions_addclosefrom_np (glibc 2.34+)") }
        var ends: [Int32] = [-1, -1]
        // Close-on-exec from the start: a child spawned meanwhile by another thread must not hold this pipe open.
        guard pipe2(&ends, O_CLOEXEC) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if captureStandardOutput {
            posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, ends[1], 2)
        guard closeFrom(&actions, 3) == 0 else { throw SpawnError(description: "posix_spawn_file_actions_addclosefrom_np failed") }
        // Signals as a shell would start it: none blocked, every one at its default (this process may ignore some).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid = pid_t()
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(ends[1])
        guard status == 0 else {
            close(ends[0])
            throw SpawnError(description: "\(executable): \(String(cString: strerror(status)))")
        }
        processIdentifier = pid
        output = FileHandle(fileDescriptor: ends[0], closeOnDealloc: true)
        Thread { [self] in
            // Waits for the end without reaping, then reaps under the lock ``signal(_:)`` holds: a signal is never
            // sent to a reaped pid, which the system may have given to another process.
            var info = siginfo_t()
            while waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOWAIT) < 0, errno == EINTR {}
            exit.withLock { code in
                var status: Int32 = 0
                var reaped: pid_t
                repeat { reaped = waitpid(processIdentifier, &status, 0) } while reaped < 0 && errno == EINTR
                // As Foundation's `terminationStatus`: the exit code, or the number of the signal that ended it;
                // -1 when it could not be learnt.
                code = reaped < 0 ? -1 : status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
            }
            exited.signal()
        }.start()
    }

    /// A function of the C library looked up by name.
    private static func glibc<Function>(_ name: String, as type: Function.Type) -> Function? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    }

    package var isRunning: Bool { exit.withLock { $0 == nil } }

    /// Waits for the child to end; returns its exit code (or the signal that ended it).
    @discardableResult
    package func waitUntilExit() -> Int32 {
        if let code = exit.withLock({ $0 }) { return code }
        exited.wait()
        exited.signal()  // for any other waiter
        return exit.withLock { $0 } ?? -1
    }

    /// Sends `signal` (SIGTERM by default) unless the child has already ended.
    package func signal(_ signal: Int32 = SIGTERM) {
        exit.withLock { if $0 == nil { kill(processIdentifier, signal) } }
    }
}
