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
}
