import CobaltClient
import CobaltTestSupport
import Foundation
import RuleEngine
import Testing
import ZeroMQ

/// The real `cobalt` binary with `arguments`, as a user runs it from a shell (the command-line suites' helper).
func cobalt(_ arguments: String...) async throws -> (status: Int32, output: String) {
    try await runProgram(Repository.cobaltBinary, arguments)
}

/// The README's walk-through, typed as a user types it: the real `cobalt` binary as daemon and as every client.
@Suite(.timeLimit(.minutes(10))) struct CommandLineTests {
    static let example = Repository.root.appendingPathComponent("docs/examples/c09-neuro.jsonl").path

    func object(_ output: String) throws -> JSONObject {
        guard case .object(let object) = try JSONValue.parse(Data(output.utf8)) else { throw JSONError("not an object: \(output)") }
        return object
    }

    struct JSONError: Error, CustomStringConvertible { var description: String; init(_ d: String) { description = d } }

    /// `cobalt serve` exits 2 when what it was given cannot work — configuration file, flags, rules, key files —
    /// and 1 when something else stops it, such as a database it cannot open (named), each with the reason on
    /// stderr. The systemd unit does not restart on 2 (it would fail the same way again) and does on 1. Reading the
    /// file used to exit 1 and a bad `--log-level` 64, where validating exited 2; the database went unnamed.
    @Test func serveExitsTwoOnlyForWhatItWasGiven() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        func write(_ name: String, _ text: String) throws -> String {
            let path = scratch.path + "/" + name
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let brokenRules = scratch.path + "/broken-rules"
        try FileManager.default.copyItem(atPath: Repository.rules, toPath: brokenRules)
        try "ruleset: [".write(toFile: brokenRules + "/rulesets/99-broken.yaml", atomically: true, encoding: .utf8)
        let keys = try write("keys", "")
        let badSecret = try write("server.key", "not a key")
        let loopback = serveOnLoopback(database: scratch.path + "/exit.db")
        let cases: [(arguments: [String], status: Int32, says: String)] = [
            (["--config", scratch.path + "/missing.yaml"], 2, "missing.yaml: cannot read"),
            (["--config", try write("unknown.yaml", "rules: Rules\nlimts:\n  patient_cache: 4\n")], 2, "unknown.yaml:2:1: unknown key 'limts'"),
            (["--config", try write("empty.yaml", "database:\n")], 2, "'database' is empty"),
            (["--log-level", "loud"], 2, "--log-level: 'loud'"),
            (["--log-format", "xml"], 2, "--log-format: 'xml' must be text or json"),
            (["--config", try write("log.yaml", "log:\n  level: verbose\n")], 2, "log.yaml:2:10: 'log.level' must be one of trace"),
            (["--rules", brokenRules], 2, "99-broken.yaml"),
            (["--config", try write("secure.yaml", """
                security:
                  server_secret_key: \(badSecret)
                  ingest_keys: \(keys)
                  subscriber_keys: \(keys)
                  operator_keys: \(keys)
                """)], 2, "server.key: not a CURVE secret key"),
            (["--ingest", "tcp://127.0.0.1:99999"], 2, "needs a port"),  // libzmq bound 34463
            (["--metrics", "127.0.0.1:9100"], 2, "metrics endpoint '127.0.0.1:9100' must be http://HOST:PORT"),
            (["--metrics", "http://0.0.0.0:9100"], 2, "metrics endpoint 'http://0.0.0.0:9100' is not on loopback"),
            (["--replay", "ipc://" + scratch.path + "/no/such/directory/replay"], 2, "bind ipc://"),
            (["--db", scratch.path + "/no/such/directory/cobalt.db"], 1, "no/such/directory"),
        ]
        for (arguments, status, says) in cases {
            // The default 120 s watchdog: several of these run the rule gate first, slow on a busy machine (20 s could
            // kill a start that was about to fail as expected).
            let run = try await runProgram(Repository.cobaltBinary, loopback + arguments)
            #expect(run.status == status && run.output.contains("cannot start") && run.output.contains(says),
                    "\(arguments): exit \(run.status)\n\(run.output)")
        }
    }

    /// `cobalt serve --check` runs a start's checks — settings, the rule gate with its tests, key files — and stops
    /// there: exit 0 with a summary, or 2 with the reason; the database is never opened (nor created), nothing is
    /// bound.
    @Test func serveCheckTestsAStartWithoutStarting() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let database = scratch.path + "/check.db"
        let good = try await cobalt("serve", "--check", "--rules", Repository.rules, "--db", database)
        #expect(good.status == 0 && good.output.contains("configuration OK") && good.output.contains("rule tests passed")
            && good.output.contains("security: none"), "\(good.output)")
        // With CURVE: the server key and the allow-lists are read as at a start.
        let made = try await cobalt("keygen", scratch.path + "/server")
        #expect(made.status == 0, "\(made.output)")
        let keys = scratch.path + "/keys"
        try "".write(toFile: keys, atomically: true, encoding: .utf8)
        let secure = scratch.path + "/secure.yaml"
        try """
            database: \(database)
            security:
              server_secret_key: \(scratch.path)/server.key
              ingest_keys: \(keys)
              subscriber_keys: \(keys)
              operator_keys: \(keys)
            """.write(toFile: secure, atomically: true, encoding: .utf8)
        let curve = try await cobalt("serve", "--check", "--config", secure, "--rules", Repository.rules)
        #expect(curve.status == 0 && curve.output.contains("security: CURVE"), "\(curve.output)")
        try "not a key".write(toFile: scratch.path + "/server.key", atomically: true, encoding: .utf8)
        let badKey = try await cobalt("serve", "--check", "--config", secure, "--rules", Repository.rules)
        #expect(badKey.status == 2 && badKey.output.contains("server.key: not a CURVE secret key"), "\(badKey.output)")
        // Rules that fail their gate: the errors, exit 2.
        let rules = scratch.path + "/rules"
        try FileManager.default.copyItem(atPath: Repository.rules, toPath: rules)
        try "ruleset: [".write(toFile: rules + "/rulesets/99-broken.yaml", atomically: true, encoding: .utf8)
        let broken = try await cobalt("serve", "--check", "--rules", rules, "--db", database)
        #expect(broken.status == 2 && broken.output.contains("99-broken.yaml:") && !broken.output.contains("configuration OK"),
            "\(broken.output)")
        #expect(!FileManager.default.fileExists(atPath: database), "--check opened the database")
    }

    /// `cobalt keygen NAME`: the secret in NAME.key with mode 0600 (created so by open(2); the moment a
    /// readable temporary file existed before is not observable here — strace showed it), the public key in
    /// NAME.pub; an existing key, or a symlink where the key would go, is never written through.
    @Test func keygenWritesASecretOnlyItsOwnerReadsAndOverwritesNothing() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let name = scratch.path + "/server"
        let made = try await cobalt("keygen", name)
        #expect(made.status == 0, "\(made.output)")
        let attributes = try FileManager.default.attributesOfItem(atPath: name + ".key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let secret = try String(contentsOfFile: name + ".key", encoding: .utf8)
        let publicKey = try String(contentsOfFile: name + ".pub", encoding: .utf8)
        #expect(secret.count == 41 && publicKey.count == 41 && made.output.contains(publicKey.trimmingCharacters(in: .newlines)))
        let again = try await cobalt("keygen", name)
        // A failure to do the work is exit 1 with the reason, not the usage text and 64 (a wrong command line).
        #expect(again.status == 1 && again.output.contains("refusing to overwrite") && !again.output.contains("Usage:"), "\(again.output)")
        #expect(try String(contentsOfFile: name + ".key", encoding: .utf8) == secret)
        let target = scratch.path + "/elsewhere"
        try FileManager.default.createSymbolicLink(atPath: scratch.path + "/linked.key", withDestinationPath: target)
        let linked = try await cobalt("keygen", scratch.path + "/linked")
        #expect(linked.status != 0 && !FileManager.default.fileExists(atPath: target), "\(linked.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted() == ["linked.key", "server.key", "server.pub"])
    }

    /// With no daemon answering, `cobalt send` says so while it keeps trying (it used to be silent until it gave
    /// up, a minute later), and gives up after `--timeout` seconds of silence with the events unanswered.
    @Test func sendSaysWhenNoDaemonAnswers() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let file = scratch.path + "/one.jsonl"
        try eventJSON(id: "n-1").write(toFile: file, atomically: true, encoding: .utf8)
        // A port nothing listens on: bound by a socket that is then closed.
        let endpoint = try { () throws -> String in
            let socket = try ZMQSocket(context: try ZMQContext(), type: .router, linger: 0)
            defer { socket.close() }
            try socket.bind("tcp://127.0.0.1:*")
            return try socket.lastEndpoint
        }()
        // That it gave up after --timeout (3 s), not the default minute, is read from what it says, not from an upper
        // bound on the time the command took (on a busy machine, starting it alone took more than the 30 s allowed).
        let sent = try await cobalt("send", "--ingest", endpoint, "--timeout", "3", file)
        #expect(sent.status == 1 && sent.output.contains("no answer from \(endpoint) for 1.5 seconds; still trying (giving up after 3.0 seconds"), "\(sent.output)")
        #expect(sent.output.contains("n-1: unanswered — no answer from \(endpoint) for 3.0 seconds"), "\(sent.output)")
    }

    @Test func sendSubscribeStatusMetricsAndReloadDoWhatTheReadmeSays() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/cobalt.db")
        defer { _ = daemon.terminate() }

        // send: one line per event, then the tally; a resend is a duplicate, not a second event.
        let sent = try await cobalt("send", "--ingest", daemon.ingest, Self.example)
        #expect(sent.status == 0, "\(sent.output)")
        #expect(sent.output == "c09-booking: accepted\nc09-lab: accepted\n2 acknowledged, 0 rejected\n")
        let again = try await cobalt("send", "--ingest", daemon.ingest, Self.example)
        #expect(again.output == "c09-booking: duplicate\nc09-lab: duplicate\n2 acknowledged, 0 rejected\n")
        // What the daemon will not use is said for a stored event too (it was shown only with --verbose).
        let unitless = scratch.path + "/unitless.jsonl"
        try eventJSON(id: "w-1", patient: "p-w", clinic: "north-antenatal", body: #""observations": [{"code": "b12.total", "value": 150}]"#)
            .write(toFile: unitless, atomically: true, encoding: .utf8)
        let warned = try await cobalt("send", "--ingest", daemon.ingest, unitless)
        #expect(warned.status == 0 && warned.output.contains("w-1: accepted\n    warning: observations[0]: unit missing"), "\(warned.output)")
        let missing = try await cobalt("send", "--ingest", daemon.ingest, scratch.path + "/none.jsonl")
        #expect(missing.status == 1 && missing.output.contains("none.jsonl: cannot read file") && !missing.output.contains("Usage:"), "\(missing.output)")

        // A corrected event reusing a refused event's id, in the same file: sent after the first is answered, so
        // the daemon judges it (accepted); a third version of a stored id gets 409; identical lines share a reply.
        let corrections = scratch.path + "/corrections.jsonl"
        try [
            eventJSON(id: "fix-1", patient: "p-fix", clinic: "north-antenatal", time: "not a time"),
            eventJSON(id: "fix-1", patient: "p-fix", clinic: "north-antenatal"),
            eventJSON(id: "fix-1", patient: "p-fix", clinic: "north-antenatal"),
            eventJSON(id: "fix-1", patient: "p-other", clinic: "north-antenatal"),
        ].joined(separator: "\n").write(toFile: corrections, atomically: true, encoding: .utf8)
        let corrected = try await cobalt("send", "--ingest", daemon.ingest, corrections)
        let verdicts = corrected.output.split(separator: "\n").filter { $0.hasPrefix("fix-1: ") }.map { $0.split(separator: " ")[1] }
        #expect(verdicts == ["rejected", "accepted", "accepted", "rejected"], "\(corrected.output)")
        #expect(corrected.output.contains("fix-1: rejected 409") && corrected.status == 1, "\(corrected.output)")

        // status: JSON with the counts, once both events are evaluated.
        var counts: JSONObject = [:]
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            let status = try await cobalt("status", "--control", daemon.control)
            #expect(status.status == 0, "\(status.output)")
            if case .object(let c)? = try object(status.output)["counts"] { counts = c }
            if counts["evaluated"] == .number(4) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(counts["accepted"] == .number(4) && counts["duplicate"] == .number(2) && counts["evaluated"] == .number(4), "\(counts)")

        // subscribe: replays what was published before it started, as JSON Lines equal to the alert log, in order;
        // with the saved cursor, a second run has nothing new to print.
        let log = try await replayAll(clinic: "north-antenatal", replay: daemon.replay)
        #expect(log.contains { $0["rule"] == .string("neuro.urgent") && $0["status"] == .string("firing") }, "\(log)")
        let cursor = scratch.path + "/cursor.json"
        let subscribed = try await cobalt(
            "subscribe", "--clinic", "north-antenatal", "--alerts", daemon.alerts, "--replay", daemon.replay,
            "--jsonl", "--cursor", cursor, "--count", "\(log.count)")
        #expect(subscribed.status == 0, "\(subscribed.output)")
        let lines = subscribed.output.split(separator: "\n").map(String.init)
        #expect(try lines.map { try object($0)["id"] } == log.map { $0["id"] })
        let rerun = try await cobalt(
            "subscribe", "--clinic", "north-antenatal", "--alerts", daemon.alerts, "--replay", daemon.replay,
            "--cursor", cursor, "--idle", "1")
        #expect(rerun.status == 0 && rerun.output.isEmpty, "\(rerun.output)")
        // The cursor names its clinic: another clinic's subscriber refuses it (it used to skip that clinic's alerts
        // up to the cursor's seq, printing nothing); a cursor that is not one is named; --count holds during
        // catch-up too; --reset-cursor starts again from the first alert.
        let otherClinic = try await cobalt(
            "subscribe", "--clinic", "south-antenatal", "--alerts", daemon.alerts, "--replay", daemon.replay,
            "--cursor", cursor, "--idle", "1")
        #expect(otherClinic.status == 1 && otherClinic.output.contains("clinic 'north-antenatal'") && !otherClinic.output.contains("Usage:"),
            "\(otherClinic.output)")
        let broken = scratch.path + "/broken.json"
        try "".write(toFile: broken, atomically: true, encoding: .utf8)
        let unreadable = try await cobalt(
            "subscribe", "--clinic", "north-antenatal", "--alerts", daemon.alerts, "--replay", daemon.replay,
            "--cursor", broken, "--idle", "1")
        #expect(unreadable.status != 0 && unreadable.output.contains("broken.json: not a cursor"), "\(unreadable.output)")
        let first = try await cobalt(
            "subscribe", "--clinic", "north-antenatal", "--alerts", daemon.alerts, "--replay", daemon.replay,
            "--cursor", cursor, "--reset-cursor", "--jsonl", "--count", "1")
        #expect(first.status == 0 && first.output.split(separator: "\n").count == 1, "\(first.output)")
        #expect(try object(first.output)["seq"] == .number(1))
        #expect(try JSONDecoder().decode(Subscriber.Cursor.self, from: Data(contentsOf: URL(fileURLWithPath: cursor)))
            == Subscriber.Cursor(epoch: try object(first.output)["epoch"]?.stringValue, last: 1, clinic: "north-antenatal"))

        // The readable form: sequence, status, severity, category, patient, summary.
        let readable = try await cobalt(
            "subscribe", "--clinic", "north-antenatal", "--alerts", daemon.alerts, "--replay", daemon.replay, "--count", "\(log.count)")
        #expect(readable.output.contains("[firing] CRITICAL neuro-urgent patient p-c09: "), "\(readable.output)")

        // metrics: Prometheus text with the events counted.
        let metrics = try await cobalt("metrics", "--control", daemon.control)
        #expect(metrics.status == 0)
        #expect(metrics.output.contains("# TYPE cobalt_events_received_total counter"), "\(metrics.output.prefix(2_000))")

        // reload: refused (exit 1) when the expected hash is not the running one; done when it is.
        let running = try object(try await cobalt("status", "--control", daemon.control).output)
        guard case .object(let ruleset)? = running["ruleset"], let hash = ruleset["hash"]?.stringValue else {
            Issue.record("no ruleset hash in status: \(running)")
            return
        }
        let refused = try await cobalt("reload", "--control", daemon.control, "--expect", "sha256:not-the-running-one")
        let refusal = try object(refused.output)["status"]
        #expect(refused.status == 1 && refusal != .string("ok"), "\(refused.output)")
        let reloaded = try await cobalt("reload", "--control", daemon.control, "--expect", hash)
        let outcome = try object(reloaded.output)["status"]
        #expect(reloaded.status == 0 && outcome == .string("ok"), "\(reloaded.output)")
        #expect(await daemon.stop() == 0)
    }
}
