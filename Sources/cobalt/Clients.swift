import ArgumentParser
import CobaltClient
import Foundation
import Synchronization
import RuleEngine
import ZeroMQ

/// A command that could not do its work (a file it cannot read or write, a cursor of another stream): the reason
/// and exit status 1, not the usage text and 64, which say the command line was wrong.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

private func stopSignalReceived(_ signal: Int32) { StopSignals.received(signal) }

/// The signals that stop `cobalt subscribe` from outside: Ctrl-C, `kill`, a closed terminal. One that arrives while
/// an alert is printed and its cursor saved ends the process once the pair is done, so that a stop lands before
/// or after the pair: between the two, the alert was printed again at the next start (seven Ctrl-Cs in ten during
/// a catch-up), and inside the cursor's atomic write it left the temporary file behind. Outside the pair a signal
/// ends the process at once, with its usual status.
///
/// A handler rather than a blocked mask: libdispatch's worker threads, started before any command runs, leave
/// these signals unblocked, and the kernel hands a process's signal to any thread that does not block it. (A
/// line longer than a pipe's free space can make the write wait for the reader inside the pair: the stop then
/// lands once the reader reads or goes away.)
enum StopSignals {
    /// 0: outside the pair; 1: inside it; 100 + n: signal n arrived, and the process is ending.
    private static let state = Atomic<Int>(0)
    private static let stopping = [SIGINT, SIGTERM, SIGHUP]

    static func install() {
        _ = state.load(ordering: .sequentiallyConsistent)  // initialised here, not first in a handler
        for signal in stopping {
            // One ignored when the command started stays ignored (`nohup`, a shell's background job).
            if let previous = Glibc.signal(signal, stopSignalReceived),
                unsafeBitCast(previous, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) {
                _ = Glibc.signal(signal, SIG_IGN)
            }
        }
    }

    fileprivate static func received(_ signal: Int32) {
        while true {
            if state.compareExchange(expected: 0, desired: 100 + Int(signal), ordering: .sequentiallyConsistent).exchanged {
                end(signal)  // outside the pair: now (the pair cannot start any more)
                return
            }
            let (marked, current) = state.compareExchange(expected: 1, desired: 100 + Int(signal), ordering: .sequentiallyConsistent)
            if marked || current >= 100 { return }  // the pair ends the process when it is done; or it is ending already
        }
    }

    /// Ends the process by `signal`'s default action (so that its status says which signal stopped it).
    private static func end(_ signal: Int32) {
        _ = Glibc.signal(signal, SIG_DFL)
        raise(signal)
    }

    /// Ends the process from this thread (a handler's `raise` takes effect when the handler returns; here, at once).
    private static func endNow(_ signal: Int32) -> Never {
        end(signal)
        _exit(128 + signal)
    }

    /// Runs `body` as the pair; a stop signal that arrives meanwhile takes effect after it.
    static func held<T>(_ body: () throws -> T) rethrows -> T {
        let (entered, current) = state.compareExchange(expected: 0, desired: 1, ordering: .sequentiallyConsistent)
        if !entered { endNow(Int32(current - 100)) }
        defer {
            let (left, current) = state.compareExchange(expected: 1, desired: 0, ordering: .sequentiallyConsistent)
            if !left { endNow(Int32(current - 100)) }
        }
        return try body()
    }
}

/// CURVE options shared by the clients.
struct CurveOptions: ParsableArguments {
    @Option(help: "The daemon's CURVE public key (or a file holding it); needed when the daemon has security configured.")
    var serverKey: String?
    @Option(help: "A file holding this client's CURVE secret key (from 'cobalt keygen'); its public key must be on the daemon's allow-list.")
    var key: String?

    func security() throws -> ClientSecurity? { try ClientSecurity.load(serverKey: serverKey, keyFile: key) }
}

/// The control endpoint and its keys, shared by `status`, `metrics` and `reload`.
struct ControlOptions: ParsableArguments {
    @Option(help: "Control endpoint.") var control = "tcp://127.0.0.1:5573"
    @OptionGroup var curve: CurveOptions

    /// Sends one control request and returns the reply (an error when none comes within `timeout` ms).
    func request(_ json: String, timeout: Int = 10_000) throws -> JSONValue {
        let context = try ZMQContext()
        return try Requester(context: context, endpoint: control, security: try curve.security()).request(json, timeout: timeout)
    }
}

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send events (JSON array or JSON Lines files) and print each outcome; retries until acknowledged.")

    @Option(help: "Ingest endpoint.") var ingest = "tcp://127.0.0.1:5570"
    @Flag(help: "Print the daemon's full reply for each event.") var verbose = false
    @Option(help: "Give up after this many seconds without any answer from the daemon.") var timeout = 60
    @Option(help: ArgumentHelp(
        "Send no event larger than this many bytes (the daemon's limits.max_message_bytes).",
        discussion: "The daemon drops a larger message together with its connection, unanswered; such an event is reported as 413 and not sent."))
    var maxEventBytes = 1_048_576
    @OptionGroup var curve: CurveOptions
    @Argument(help: "Event files.") var files: [String]

    func run() throws {
        let context = try ZMQContext()
        var events: [[UInt8]] = []
        var labels: [String] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { throw CommandFailure("\(file): cannot read file") }
            let labelled: [(label: String, bytes: [UInt8])]
            do { labelled = try EventSender.labelledEvents(in: data, file: file) } catch {
                throw CommandFailure("\(file): not a JSON array of events (nothing was sent): \(error)")
            }
            events += labelled.map(\.bytes)
            labels += labelled.map(\.label)
        }
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        guard maxEventBytes >= 1 else { throw ValidationError("--max-event-bytes must be at least 1") }
        var sender = EventSender(endpoint: ingest)
        sender.labels = labels
        sender.maxEventBytes = maxEventBytes
        sender.security = try curve.security()
        sender.giveUpAfter = .seconds(timeout)
        sender.silenceNotice = min(.seconds(5), .seconds(timeout) / 2)
        let endpoint = ingest
        sender.onSilence = { silence, giveUp in
            FileHandle.standardError.write(Data(
                "cobalt send: no answer from \(endpoint) for \(silence); still trying (giving up after \(giveUp) without one)\n".utf8))
        }
        let outcomes = try sender.send(events, context: context)
        var failed = 0
        var unanswered = 0
        for outcome in outcomes {
            let ok = outcome.status == "accepted" || outcome.status == "duplicate"
            if outcome.status == "unanswered" { unanswered += 1 } else if !ok { failed += 1 }
            print("\(outcome.id): \(outcome.status)\(outcome.code == 200 || outcome.code == 0 ? "" : " \(outcome.code)")\(outcome.reason.map { " — \($0)" } ?? "")")
            if verbose || !ok {
                if !outcome.reply.isEmpty { print("    \(outcome.reply)") }
            } else {
                // What the daemon will not use (a value without its unit, an unknown code or field) is said even
                // when the event was stored.
                for warning in outcome.warnings { print("    warning: \(warning)") }
            }
        }
        print("\(outcomes.count - failed - unanswered) acknowledged, \(failed) rejected" + (unanswered > 0 ? ", \(unanswered) unanswered" : ""))
        if failed + unanswered > 0 { throw ExitCode(1) }
    }
}

struct Subscribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive a clinic's alerts: replay from a cursor, then live, repairing any gap from replay.")

    @Option(help: "The clinic id.") var clinic: String
    @Option(help: "Alerts endpoint.") var alerts = "tcp://127.0.0.1:5571"
    @Option(help: "Replay endpoint.") var replay = "tcp://127.0.0.1:5572"
    @Option(help: "A file keeping the clinic and the last sequence number seen (created if missing).") var cursor: String?
    @Flag(help: "Start from the first alert, whatever the cursor file says (it is then rewritten).") var resetCursor = false
    @Flag(help: "Print one JSON alert per line.") var jsonl = false
    @Option(help: "Stop after this many alerts.") var count: Int?
    @Option(help: "Stop after this many seconds without a new alert.") var idle: Int?
    @OptionGroup var curve: CurveOptions

    /// Ends delivery once `--count` alerts were delivered (the alert refused is not counted as delivered).
    private struct Enough: Error {}

    func validate() throws {
        if let count, count < 0 { throw ValidationError("--count must be 0 or more") }
        if let idle, idle < 0 { throw ValidationError("--idle must be 0 or more seconds") }
        // A clinic id the daemon refuses at ingest names no stream: subscribing to it waited for ever, silently.
        let name = EventDecoder.nfc(clinic)
        if let problem = EventDecoder.lengthProblem(name) ?? EventDecoder.clinicProblem(name) ?? EventDecoder.identifierProblem(name) {
            throw ValidationError("--clinic \(problem)")
        }
    }

    func run() throws {
        // Ctrl-C, `kill` and a closed terminal wait while an alert is printed and its cursor saved (StopSignals).
        StopSignals.install()
        let context = try ZMQContext()
        var start = Subscriber.Cursor()
        if let cursor { try Self.lock(cursor) }
        if let cursor, !resetCursor, let data = FileManager.default.contents(atPath: cursor) {
            do {
                start = try JSONDecoder().decode(Subscriber.Cursor.self, from: data)
            } catch {
                throw CommandFailure("\(cursor): not a cursor (\(error)); --reset-cursor starts again from the first alert")
            }
        }
        let subscriber: Subscriber
        do {
            subscriber = try Subscriber(
                context: context, alerts: alerts, replay: replay, clinic: clinic, cursor: start, security: try curve.security())
        } catch let mismatch as Subscriber.CursorMismatch {
            throw CommandFailure("\(cursor ?? "cursor"): \(mismatch); use another cursor file per clinic")
        }
        subscriber.onReplayTimeout = { error in
            FileHandle.standardError.write(Data("cobalt subscribe: \(error); the gap is replayed with the next heartbeat that shows it\n".utf8))
        }
        // Saved once before anything is printed: a path that cannot be written (a directory, a missing or
        // read-only directory) is said now, not after the first alert.
        // Held like every save: a stop inside the atomic write left its temporary file beside the cursor.
        if let cursor { try StopSignals.held { try Self.save(subscriber.cursor, to: cursor) } }
        var delivered = 0
        let deliver: (String) throws -> Void = { json in
            if let count, delivered >= count { throw Enough() }
            // Wait (stoppable) until standard output takes more: held signals must not wait on a reader that is
            // not reading (a pager, a terminal paused with Ctrl-S).
            var output = pollfd(fd: STDOUT_FILENO, events: Int16(POLLOUT), revents: 0)
            while poll(&output, 1, -1) < 0, errno == EINTR {}
            try StopSignals.held {
                // Written straight to the file descriptor: a pipe must see each alert as it arrives. A write that
                // fails (standard output closed, with SIGPIPE ignored) ends the command; the cursor stays before it.
                do {
                    try FileHandle.standardOutput.write(contentsOf: Data(((jsonl ? json : Self.readable(json)) + "\n").utf8))
                } catch {
                    throw CommandFailure("cannot write to standard output (\(Self.reason(error))); stopped, the cursor is before this alert")
                }
                delivered += 1
                if let cursor { try Self.save(subscriber.cursor, to: cursor) }
            }
        }
        do {
            try subscriber.catchUp(deliver)
            // `--idle` is time since the last alert: each heartbeat also ends a poll, so counting polls stopped
            // `--idle 5` after half a second when heartbeats came every 100 ms.
            var lastAlert = ContinuousClock.now
            while count.map({ delivered < $0 }) ?? true {
                var wait = 1_000
                if let idle {
                    let left = Duration.seconds(idle) - (ContinuousClock.now - lastAlert)
                    if left <= .zero { break }
                    wait = min(wait, max(1, Int(left / .milliseconds(1))))
                }
                if try subscriber.poll(timeout: wait, deliver) { lastAlert = .now }
            }
        } catch is Enough {
            return
        } catch let mismatch as Subscriber.CursorMismatch {
            throw CommandFailure("\(cursor ?? "cursor"): \(mismatch); --reset-cursor starts again from the first alert")
        }
    }

    /// One subscriber per cursor file, held until the process ends (an advisory lock on `CURSOR.lock`). Two sharing
    /// one overwrote each other's position: the one behind, started again, skipped what the other had printed.
    static func lock(_ cursor: String) throws {
        let path = cursor + ".lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard descriptor >= 0 else { throw CommandFailure("\(path): cannot open (\(String(cString: strerror(errno))))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw CommandFailure("\(cursor): in use by another 'cobalt subscribe' (one subscriber per cursor file)")
        }
        // Kept open, so locked, until the process exits.
    }

    /// Replaces the cursor file whole (a temporary file renamed over it): an interruption leaves the old cursor or
    /// the new, never an empty file.
    static func save(_ cursor: Subscriber.Cursor, to path: String) throws {
        do {
            try JSONEncoder().encode(cursor).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CommandFailure("\(path): cannot save the cursor (\(reason(error)))")
        }
    }

    /// The POSIX reason under a Foundation error ("Is a directory"), or the error as it prints.
    static func reason(_ error: any Error) -> String {
        let error = error as NSError
        let candidates = [error.userInfo[NSUnderlyingErrorKey] as? NSError, error]
        guard let posix = candidates.compactMap({ $0 }).first(where: { $0.domain == NSPOSIXErrorDomain }) else { return "\(error)" }
        return String(cString: strerror(Int32(posix.code)))
    }

    static func readable(_ json: String) -> String {
        guard case .object(let a)? = try? JSONValue.parse(Data(json.utf8)) else { return json }
        func s(_ k: String) -> String { a[k]?.stringValue ?? "" }
        var seq = ""
        if case .number(let n)? = a["seq"] { seq = n.formatted }
        return "#\(seq) [\(s("status"))] \(s("severity").uppercased()) \(s("category")) patient \(s("patient")): \(s("summary"))\n    \(s("recommendation"))"
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the daemon for its status.")

    @OptionGroup var options: ControlOptions

    func run() throws {
        print(try options.request("{\"command\":\"status\"}").canonicalText)
    }
}

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the daemon's metrics in Prometheus text format (e.g. for node_exporter's textfile collector).")

    @OptionGroup var options: ControlOptions

    func run() throws {
        let reply = try options.request("{\"command\":\"metrics\"}")
        guard case .object(let o) = reply, let text = o["text"]?.stringValue else {
            print(reply.canonicalText)
            throw ExitCode(1)
        }
        print(text, terminator: "")
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the daemon to reload its rules (checked and tested first; the running set stays on failure).")

    @OptionGroup var options: ControlOptions
    @Option(help: "Only reload if the running rule-set hash is this one.") var expect: String?

    func run() throws {
        let request = "{\"command\":\"reload\"" + (expect.map { ",\"expect\":\($0.jsonQuoted)" } ?? "") + "}"
        let reply = try options.request(request, timeout: 60_000)
        print(reply.canonicalText)
        if case .object(let o) = reply, o["status"]?.stringValue != "ok" { throw ExitCode(1) }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).")

    @Argument(help: "Path prefix for the two files, e.g. /etc/cobalt/keys/server.") var name: String

    func run() throws {
        let pair = try CurveKeyPair.generate()
        let secretPath = name + ".key"
        // Created by open(2) with mode 0600, never over an existing file or through a symlink: the secret is never
        // readable by others, not even briefly. (Foundation's createFile wrote a 0644 temporary file, renamed
        // it, then changed its mode.)
        let fd = open(secretPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "exists; refusing to overwrite a key" : "cannot create: \(String(cString: strerror(errno)))"
            throw CommandFailure("\(secretPath) \(reason)")
        }
        let secret = Array((pair.secretKey + "\n").utf8)
        let written = secret.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == secret.count, synced == 0 else {
            unlink(secretPath)
            throw CommandFailure("\(secretPath): cannot write")
        }
        try (pair.publicKey + "\n").write(toFile: name + ".pub", atomically: true, encoding: .utf8)
        print("wrote \(secretPath) (secret, 0600) and \(name).pub")
        print("public key: \(pair.publicKey)")
    }
}
