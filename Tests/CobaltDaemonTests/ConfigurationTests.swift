import CobaltDaemon
import CobaltTestSupport
import Foundation
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
        try "limits:\n  patient_cache: 12\n  patient_cache_records: 345\n  handoff_events: 67\n  handoff_wait_ms: 89\n".write(toFile: file, atomically: true, encoding: .utf8)
        let configuration = try DaemonConfiguration.load(file: file)
        #expect(configuration.patientCache == 12 && configuration.patientCacheRecords == 345 && configuration.handOffEvents == 67
            && configuration.handOffWaitMilliseconds == 89)
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
