import CobaltStore
import Foundation
public import Logging
import RuleEngine
import ServiceLifecycle
import UnixSignals
import ZeroMQ

/// `cobalt serve`: loads the rules, opens the store, binds the endpoints, and runs the services.
///
/// Shutdown order (the service group stops services in reverse order): ingest stops reading → the pipeline
/// evaluates everything journaled → replay and control stop → `ops/stop` is published, sockets close, the
/// context terminates.
public final class Daemon: Sendable {
    public struct Endpoints: Sendable, Equatable {
        public let ingest: String
        public let alerts: String
        public let replay: String
        public let control: String
    }

    /// The endpoints actually bound (ephemeral ports resolved).
    public let endpoints: Endpoints
    let group: ServiceGroup

    private init(endpoints: Endpoints, group: ServiceGroup) {
        self.endpoints = endpoints
        self.group = group
    }

    /// Builds everything and binds the sockets; throws a readable error when the rules, store or an endpoint
    /// cannot be used.
    public static func start(
        configuration: DaemonConfiguration, logger: Logger, handleSignals: Bool = true,
        metrics: (@Sendable () -> String)? = nil
    ) async throws -> Daemon {
        let signals: [UnixSignal] = handleSignals ? [.sigterm, .sigint] : []
        try configuration.validate()
        guard ZMQContext.has("curve") else { throw ConfigurationError("libzmq was built without CURVE support") }
        let loaded = RuleLoader().load(directory: configuration.rules, profile: configuration.profile)
        for warning in loaded.log.warnings { logger.warning("\(warning.headline)") }
        guard let bundle = loaded.bundle else {
            throw ConfigurationError("the rules in \(configuration.rules) do not load:\n" + loaded.log.sorted.map(\.description).joined(separator: "\n"))
        }
        let store = try SQLiteStore(path: configuration.database)
        try await store.recordRuleSet(version: bundle.version, hash: bundle.hash, at: Date().timeIntervalSince1970)
        let context = try ZMQContext()
        let maxMessage = Int64(configuration.maxMessageBytes)
        let server: @Sendable (ZMQSocket) throws -> Void = { socket in
            try socket.set(.maxMessageSize, maxMessage)
            try socket.set(.routerMandatory, 1)
            try socket.set(.handshakeInterval, 5_000)
            try socket.set(.heartbeatInterval, 10_000)
            try socket.set(.heartbeatTimeout, 30_000)
        }
        let errorLogger = logger
        let loop = try await SocketLoop.start(
            context: context, name: "cobalt-sockets",
            specs: [
                SocketSpec(name: "ingest", type: .router, bind: [configuration.ingest], maxInFlight: configuration.maxInFlight, configure: server),
                SocketSpec(name: "alerts", type: .xpub, bind: [configuration.alerts], maxInFlight: 1_024) { socket in
                    try socket.set(.maxMessageSize, 4_096)
                    try socket.set(.sendHighWaterMark, 100_000)
                    try socket.set(.handshakeInterval, 5_000)
                },
                SocketSpec(name: "replay", type: .router, bind: [configuration.replay], maxInFlight: 64, configure: server),
                SocketSpec(name: "control", type: .router, bind: [configuration.control], maxInFlight: 16, configure: server),
            ],
            onSendError: { socket, error in
                errorLogger.debug("reply not delivered; the peer has gone", metadata: ["socket": "\(socket)", "error": "\(error)"])
            })
        let bound = loop.endpoints
        let endpoints = Endpoints(ingest: bound[0][0], alerts: bound[1][0], replay: bound[2][0], control: bound[3][0])
        let rules = RulesHolder(bundle)
        let statistics = Statistics()
        let publisher = Publisher(loop: loop, socket: .init(1), epoch: store.epoch, lastSequences: try await store.lastSequences())
        let pipeline = EvaluationPipeline(
            store: store, rules: rules, publisher: publisher, cacheCapacity: configuration.patientCache,
            batchSize: configuration.evaluationBatch, statistics: statistics, logger: logger)
        let (work, wake) = AsyncStream<EvaluationPipeline.Work>.makeStream(bufferingPolicy: .unbounded)
        let started = Date().timeIntervalSince1970
        let reloader = Reloader(
            configuration: configuration, store: store, rules: rules, work: wake, publisher: publisher,
            statistics: statistics, logger: logger)
        var services: [any Service] = [
            SocketService(loop: loop, subscriptions: .init(1), publisher: publisher, heartbeat: .milliseconds(configuration.heartbeatMilliseconds), context: context),
            RequestService(
                loop: loop, replaySocket: .init(2), controlSocket: .init(3),
                replay: ReplayHandler(store: store, epoch: store.epoch, pageLimit: configuration.replayPageLimit),
                control: ControlHandler(
                    configuration: configuration, store: store, rules: rules, pipeline: pipeline, publisher: publisher,
                    statistics: statistics, started: started, reloader: reloader, metrics: metrics)),
            EvaluationService(pipeline: pipeline, work: work),
            IngestService(
                loop: loop, socket: .init(0), processor: IngestProcessor(maxEventBytes: configuration.maxEventBytes), store: store,
                rules: rules, statistics: statistics, wake: wake),
        ]
        if handleSignals { services.insert(SignalReloadService(reloader: reloader), at: 1) }
        if configuration.watchRules {
            services.insert(
                RulesWatcher(
                    directory: configuration.rules, interval: .milliseconds(configuration.watchIntervalMilliseconds),
                    settle: .milliseconds(configuration.watchSettleMilliseconds), reloader: reloader),
                at: 1)
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: signals, cancellationSignals: [], logger: logger))
        publisher.ops("start", [
            ("version", ControlHandler.version.jsonQuoted),
            ("ruleset", "{\"version\":\(bundle.version.jsonQuoted),\"hash\":\(bundle.hash.jsonQuoted)}"),
        ])
        logger.info("cobalt started", metadata: [
            "ingest": "\(endpoints.ingest)", "alerts": "\(endpoints.alerts)", "replay": "\(endpoints.replay)",
            "control": "\(endpoints.control)", "ruleset.version": "\(bundle.version)", "ruleset.hash": "\(bundle.hash)",
        ])
        return Daemon(endpoints: endpoints, group: group)
    }

    /// Runs until a shutdown signal or ``shutdown()``.
    public func run() async throws {
        try await group.run()
    }

    /// Starts a graceful shutdown.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
    }
}
