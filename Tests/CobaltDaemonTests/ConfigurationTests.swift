import CobaltDaemon
import CobaltTestSupport
import Foundation
import Logging
import Testing

@Suite struct ConfigurationTests {
    /// The example shipped in deploy/ is a valid configuration, and says what the defaults are.
    @Test func theExampleConfigurationLoads() throws {
        let configuration = try DaemonConfiguration.load(file: Repository.root.appendingPathComponent("deploy/cobalt.yaml").path)
        try configuration.validate()
        let defaults = DaemonConfiguration()
        #expect(configuration == defaults)
    }

    /// Each limit is read from its own key (the example sets them all to their defaults, so it cannot tell).
    @Test func limitsAreReadFromTheirKeys() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let file = scratch.path + "/cobalt.yaml"
        try "limits:\n  patient_cache: 12\n  patient_cache_records: 345\n  handoff_events: 67\n  handoff_wait_ms: 89\n  quarantine_rows: 10\n  future_tolerance_ms: 11\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try DaemonConfiguration.load(file: file)
        #expect(configuration.patientCache == 12 && configuration.patientCacheRecords == 345 && configuration.handOffEvents == 67
            && configuration.handOffWaitMilliseconds == 89 && configuration.quarantineRows == 10 && configuration.futureToleranceMilliseconds == 11)
    }

    /// `log.level` and `log.format` are read; a level or format that does not exist, or a misspelt key in the
    /// section, is refused at its line.
    @Test func theLogSectionIsReadAndChecked() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let file = scratch.path + "/cobalt.yaml"
        try "log:\n  level: debug\n  format: json\n".write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try DaemonConfiguration.load(file: file)
        #expect(configuration.logLevel == .debug && configuration.logFormat == .json)
        #expect(DaemonConfiguration().logLevel == .info && DaemonConfiguration().logFormat == .text)
        for (text, says) in [
            ("log:\n  format: xml\n", "cobalt.yaml:2:11: 'log.format' must be text or json"),
            ("log:\n  level: loud\n", "cobalt.yaml:2:10: 'log.level' must be one of trace, debug"),
            ("log:\n  levle: debug\n", "cobalt.yaml:2:3: unknown key 'log.levle'"),
            ("log: json\n", "cobalt.yaml:1:6: 'log' must be a mapping"),
        ] {
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            #expect(throws: ConfigurationError.self, "\(text)") { try DaemonConfiguration.load(file: file) }
            do { _ = try DaemonConfiguration.load(file: file) } catch { #expect("\(error)".contains(says), "\(error)") }
        }
    }

    /// The metrics endpoint: read from `endpoints.metrics`, `off` for none; an address that is not `http://HOST:PORT`,
    /// or one off loopback without security, is refused by name.
    @Test func theMetricsEndpointIsReadAndChecked() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let file = scratch.path + "/cobalt.yaml"
        func load(_ metrics: String) throws -> DaemonConfiguration {
            try "endpoints:\n  metrics: \(metrics)\n".write(toFile: file, atomically: true, encoding: .utf8)
            return try DaemonConfiguration.load(file: file)
        }
        #expect(try load("http://127.0.0.1:9100").metrics == "http://127.0.0.1:9100")
        #expect(try load("off").metrics == nil && DaemonConfiguration().metrics == "http://127.0.0.1:5574")
        for good in ["http://127.0.0.1:9100", "http://[::1]:9100/", "http://localhost:*"] {
            #expect(throws: Never.self, "\(good)") { try load(good).validate() }
        }
        for (bad, says) in [
            ("tcp://127.0.0.1:9100", "must be http://HOST:PORT"), ("http://127.0.0.1", "must be http://HOST:PORT"),
            ("http://127.0.0.1:0", "must be http://HOST:PORT"), ("http://127.0.0.1:70000", "must be http://HOST:PORT"),
            ("http://127.0.0.1:9100/metrics", "must be http://HOST:PORT"), ("http://10.0.0.5:9100", "is not on loopback"),
            // A name (it passed the checks, then the start failed to resolve it), `*` as a host, a signed port.
            ("http://127.x:5599", "must be http://HOST:PORT"), ("http://*:5574", "must be http://HOST:PORT"),
            ("http://127.0.0.1:+5574", "must be http://HOST:PORT"),
        ] {
            do {
                try load(bad).validate()
                Issue.record("\(bad) was accepted")
            } catch {
                #expect("\(error)".contains(says), "\(bad): \(error)")
            }
        }
        // With security configured, any address: the same rule as the other endpoints.
        var secured = try load("http://10.0.0.5:9100")
        secured.security = .init(serverSecretKey: "k", ingestKeys: "i", subscriberKeys: "s", operatorKeys: "o")
        #expect(throws: Never.self) { try secured.validate() }
    }

    /// A misspelt setting is refused with its full name, never silently replaced by its default.
    @Test func misspeltSettingsAreRefusedByName() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        for (text, name) in [
            ("limits:\n  handof_events: 10\n", "limits.handof_events"), ("endpoints:\n  ingset: tcp://127.0.0.1:1\n", "endpoints.ingset"),
            ("heartbeat: 5\n", "heartbeat"),
        ] {
            let file = scratch.path + "/cobalt.yaml"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            #expect {
                _ = try DaemonConfiguration.load(file: file)
            } throws: { error in
                "\(error)".contains("unknown key '\(name)'")
            }
        }
    }

    /// A configuration that is not what it should be is refused at its line, never replaced by defaults: a list or
    /// a lone value as the document, a section that is not a mapping — `security:` with every entry commented out
    /// used to start the daemon without CURVE — and an empty value.
    @Test func malformedConfigurationsAreRefusedAtTheirLine() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        for (text, expected) in [
            ("- rules: /etc/cobalt/Rules\n", "cobalt.yaml:1:1: the configuration must be a mapping"),
            ("rules\n", "cobalt.yaml:1:1: the configuration must be a mapping"),
            ("database: x.db\nsecurity:\n  # server_secret_key: k\n", "cobalt.yaml:2:10: 'security' must be a mapping of settings (found nothing)"),
            ("limits: 5\n", "cobalt.yaml:1:9: 'limits' must be a mapping of settings (found '5')"),
            ("profile:\n", "cobalt.yaml:1:9: 'profile' is empty"),
            ("profile: ''\n", "cobalt.yaml:1:10: 'profile' is empty"),
            ("rules: x\n\nlimits:\n  handof_events: 10\n", "cobalt.yaml:4:3: unknown key 'limits.handof_events'"),
        ] {
            let file = scratch.path + "/cobalt.yaml"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            #expect {
                _ = try DaemonConfiguration.load(file: file)
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
        // An empty file is the defaults.
        try "# nothing set\n".write(toFile: scratch.path + "/empty.yaml", atomically: true, encoding: .utf8)
        #expect(try DaemonConfiguration.load(file: scratch.path + "/empty.yaml") == DaemonConfiguration())
    }
}
