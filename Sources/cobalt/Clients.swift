import ArgumentParser
import CobaltClient
import Foundation
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
    @OptionGroup var curve: CurveOptions
    @Argument(help: "Event files.") var files: [String]

    func run() throws {
        let context = try ZMQContext()
        var events: [[UInt8]] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { throw CommandFailure("\(file): cannot read file") }
            events += try EventSender.events(in: data)
        }
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        var sender = EventSender(endpoint: ingest)
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
                print("    \(outcome.reply)")
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

    func run() throws {
        let context = try ZMQContext()
        var start = Subscriber.Cursor()
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
        var delivered = 0
        let deliver: (String) throws -> Void = { json in
            if let count, delivered >= count { throw Enough() }
            // Written straight to the file descriptor: a pipe must see each alert as it arrives.
            FileHandle.standardOutput.write(Data(((jsonl ? json : Self.readable(json)) + "\n").utf8))
            delivered += 1
            // Replaced whole (a temporary file renamed over it): an interruption leaves the old cursor or the new,
            // never an empty file.
            if let cursor { try JSONEncoder().encode(subscriber.cursor).write(to: URL(fileURLWithPath: cursor), options: .atomic) }
        }
        do {
            try subscriber.catchUp(deliver)
            var quiet = 0
            while count.map({ delivered < $0 }) ?? true {
                if try subscriber.poll(timeout: 1_000, deliver) { quiet = 0 } else { quiet += 1 }
                if let idle, quiet >= idle { break }
            }
        } catch is Enough {
            return
        } catch let mismatch as Subscriber.CursorMismatch {
            throw CommandFailure("\(cursor ?? "cursor"): \(mismatch); --reset-cursor starts again from the first alert")
        }
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
