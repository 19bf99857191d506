import Foundation
import ArgumentParser
import CobaltDaemon
import Logging
import Metrics
import Prometheus

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: ingest events, evaluate them, publish alerts. SIGTERM/SIGINT stop it gracefully.")

    @Option(help: "A YAML configuration file (see deploy/cobalt.yaml).") var config: String?
    @Option(help: "The rules directory (default Rules).") var rules: String?
    @Option(help: "A site profile applied to the rules.") var profile: String?
    @Option(help: "The SQLite database file (default cobalt.db).") var db: String?
    @Option(help: "Ingest endpoint (default tcp://127.0.0.1:5570).") var ingest: String?
    @Option(help: "Alerts endpoint (default tcp://127.0.0.1:5571).") var alerts: String?
    @Option(help: "Replay endpoint (default tcp://127.0.0.1:5572).") var replay: String?
    @Option(help: "Control endpoint (default tcp://127.0.0.1:5573).") var control: String?
    @Option(help: "HTTP endpoint for Prometheus (/metrics, /healthz), or off (default http://127.0.0.1:5574).") var metrics: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String?
    @Option(help: "Log format on stderr: text, or json (one object per line; default text).") var logFormat: String?
    @Flag(help: "Check the configuration, flags, rules (with their tests) and key files as a start would, without opening the database or binding an endpoint; exit 0, or 2 with the reason.")
    var check = false

    /// Exit status when the daemon cannot start because of what it was given — the configuration file, a flag, the
    /// rules, a key file — so that restarting it would fail the same way (the systemd unit does not restart on it:
    /// `RestartPreventExitStatus=2`). Anything else that stops the daemon (the store cannot be opened, say) exits 1,
    /// and systemd tries again.
    static let configurationFailure: Int32 = 2

    func run() async throws {
        let configuration: DaemonConfiguration
        do {
            configuration = try settings()
            if check {
                // What a start would say about the key files (a warning for each refused line, say), without info.
                let logger = Logger(label: "cobalt", factory: configuration.logFormat.handlerFactory(level: .warning))
                print(try Daemon.check(configuration: configuration, logger: logger) + "configuration OK")
                return
            }
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("cobalt: cannot start: \(error.description)\n".utf8))
            throw ExitCode(Self.configurationFailure)
        }
        // The journal holds patient data: the database and its log files are created readable by this user only,
        // whatever the umask the daemon was started with (deploy/cobalt.service sets UMask=0077 too).
        umask(0o077)
        // A log line written to a stderr whose reader has gone (a pipe to `tee` or a log shipper that stopped) must
        // not end the daemon: SIGPIPE's default action is to terminate, and systemd's IgnoreSIGPIPE=yes covers only
        // the unit. Ignored, a write fails with EPIPE and the line is lost; ZeroMQ and NIO never rely on the signal.
        signal(SIGPIPE, SIG_IGN)
        LoggingSystem.bootstrap(configuration.logFormat.handlerFactory(level: configuration.logLevel))
        let logger = Logger(label: "cobalt")
        Daemon.logStoreSystemErrors(to: logger)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let daemon: Daemon
        do {
            daemon = try await Daemon.start(
                configuration: configuration, logger: logger, metrics: { registry.emitToString() }, notifier: SystemdNotifier())
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(error is ConfigurationError ? Self.configurationFailure : 1)
        }
        try await daemon.run()
        logger.info("cobalt stopped")
    }

    /// The configuration file with the flags over it.
    private func settings() throws -> DaemonConfiguration {
        var configuration = try config.map(DaemonConfiguration.load(file:)) ?? DaemonConfiguration()
        if let rules { configuration.rules = rules }
        if let profile { configuration.profile = profile }
        if let db { configuration.database = db }
        if let ingest { configuration.ingest = ingest }
        if let alerts { configuration.alerts = alerts }
        if let replay { configuration.replay = replay }
        if let control { configuration.control = control }
        if let metrics { configuration.metrics = DaemonConfiguration.metrics(metrics) }
        if let logLevel {
            guard let level = Logger.Level(rawValue: logLevel) else {
                throw ConfigurationError("--log-level: '\(logLevel)' \(DaemonConfiguration.logLevelChoices)")
            }
            configuration.logLevel = level
        }
        if let logFormat {
            guard let format = LogFormat(rawValue: logFormat) else {
                throw ConfigurationError("--log-format: '\(logFormat)' \(DaemonConfiguration.logFormatChoices)")
            }
            configuration.logFormat = format
        }
        return configuration
    }
}
