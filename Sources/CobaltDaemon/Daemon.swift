import CobaltStore
import Foundation
import NIOCore
import Synchronization
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
    /// The most frames an ingest, replay or control request may have as its sender sends it: an empty delimiter
    /// (REQ) and the JSON, with room for routing ids added by proxies in between. The ROUTER adds one more, the
    /// sender's routing id, which is not the sender's to count.
    static let maximumRequestFrames = 8

    /// A refused request's size as its sender sent it: without the routing id the ROUTER put in front (the first
    /// frame, which a refused message keeps).
    static func asSent(_ size: MessageSize, _ message: Message) -> String {
        "message of \(size.frames - 1) frames and \(size.bytes - (message.frames.first?.count ?? 0)) bytes"
    }
    /// Replies a replay or control peer may leave unread in libzmq's queue (each up to about 1 MB).
    static let unreadRepliesPerPeer = 64

    public struct Endpoints: Sendable, Equatable {
        public let ingest: String
        public let alerts: String
        public let replay: String
        public let control: String
        /// `http://HOST:PORT` of `/metrics` and `/healthz`; nil when configured `off`.
        public let metrics: String?
    }

    /// The endpoints actually bound (ephemeral ports resolved).
    public let endpoints: Endpoints
    let group: ServiceGroup
    /// SIGTERM and SIGINT, trapped since before "cobalt started" (nil for embedded daemons).
    private let shutdownSignals: UnixSignalsSequence?

    private init(endpoints: Endpoints, group: ServiceGroup, shutdownSignals: UnixSignalsSequence?) {
        self.endpoints = endpoints
        self.group = group
        self.shutdownSignals = shutdownSignals
    }

    /// Logs the system calls SQLite reports failing (the call, the file and the errno: `open(/var/lib/cobalt/cobalt.db-shm)
    /// - No space left on device`), at most one line per 10 seconds with the number left out: a store failing on
    /// every transaction must not flood the log. Call once, before any database is opened (`cobalt serve` does).
    public static func logStoreSystemErrors(to logger: Logger) {
        let window = Mutex<(last: ContinuousClock.Instant?, suppressed: Int)>((nil, 0))
        SQLiteStore.installErrorLog { message in
            let suppressed: Int? = window.withLock { state in
                let now = ContinuousClock.now
                if let last = state.last, now - last < .seconds(10) {
                    state.suppressed += 1
                    return nil
                }
                defer { state = (now, 0) }
                return state.suppressed
            }
            guard let suppressed else { return }
            logger.warning("a system call on the database failed", metadata: ["sqlite": "\(message)", "not_logged_before": "\(suppressed)"])
        }
    }

    /// Builds everything and binds the sockets; throws a readable error when the rules, store or an endpoint
    /// cannot be used. `notifier` tells systemd when the daemon is ready, reloading and stopping (`cobalt serve`
    /// passes one; embedded daemons, in tests, do not).
    public static func start(
        configuration: DaemonConfiguration, logger: Logger, handleSignals: Bool = true,
        metrics: (@Sendable () -> String)? = nil, notifier: SystemdNotifier? = nil
    ) async throws -> Daemon {
        // SIGHUP asks for a reload. Until the reload service traps it, its default action would end the process:
        // a `systemctl reload` during the start (the rule gate, opening the store) must not stop the daemon.
        if handleSignals { signal(SIGHUP, SIG_IGN) }
        // What the rules watcher compares with: the files as they are before the gate reads them.
        let rulesOnDisk = configuration.watchRules ? (RulesWatcher.fingerprint(directory: configuration.rules, profile: configuration.profile) ?? []) : []
        let gated = try preflight(configuration)
        for warning in gated.warnings { logger.warning("\(warning)") }
        let bundle = gated.bundle
        let store: SQLiteStore
        SQLiteStore.lastSystemCallFailure = nil
        do {
            store = try SQLiteStore(path: configuration.database)
        } catch {
            let cause = SQLiteStore.lastSystemCallFailure.map { " (\($0))" } ?? ""
            throw StoreUnavailable("cannot open the database \(configuration.database): \(error)\(cause)")
        }
        try await store.recordRuleSet(version: bundle.version, hash: bundle.hash, at: Date().timeIntervalSince1970)
        let context = try ZMQContext()
        let audit = AuditLog()
        let (authenticator, serverSecret) = try Self.security(configuration, logger: logger, audit: audit)
        let maxMessage = Int64(configuration.maxMessageBytes)
        /// Options of every bound socket; with security, CURVE and an enforced ZAP domain.
        func secured(_ domain: String, _ extra: @escaping @Sendable (ZMQSocket) throws -> Void) -> @Sendable (ZMQSocket) throws -> Void {
            { socket in
                if let serverSecret {
                    try socket.set(.curveServer, 1)
                    try socket.set(.curveSecretKey, serverSecret)
                    try socket.set(.zapDomain, Array(domain.utf8))
                    try socket.set(.zapEnforceDomain, 1)
                    // Handshakes libzmq refuses before any ZAP request (plain TCP, a wrong server key) are seen
                    // only by a monitor: read by `monitor-<domain>` below, counted and audited like ZAP refusals.
                    try socket.monitor(Self.monitorEndpoint(domain), events: MonitorEvent.handshakeFailedBeforeAuthentication)
                }
                try socket.set(.handshakeInterval, 5_000)
                try extra(socket)
            }
        }
        let server: @Sendable (ZMQSocket) throws -> Void = { socket in
            try socket.set(.maxMessageSize, maxMessage)
            try socket.set(.receiveHighWaterMark, 10_000)
            try socket.set(.sendHighWaterMark, 10_000)
            try socket.set(.routerMandatory, 1)
            try socket.set(.heartbeatInterval, 10_000)
            try socket.set(.heartbeatTimeout, 30_000)
        }
        // Replay and control answer one request with one reply, a replay page up to about 1 MB (500 alerts): a
        // client that sends requests without reading the answers must not make the daemon hold thousands of them.
        // What a peer leaves unread beyond this (and a few held back) is dropped and counted, as on ingest.
        let requestServer: @Sendable (ZMQSocket) throws -> Void = { socket in
            try server(socket)
            try socket.set(.sendHighWaterMark, Int32(Self.unreadRepliesPerPeer))
        }
        let errorLogger = logger
        // Shown at 0 from the start (as Prometheus advises for known label values), so that a rate or an alert on
        // them has a series before the first failure.
        let undelivered = LabelledCounters(
            "cobalt_replies_undelivered_total", dimensions: ["endpoint", "reason"],
            initial: ["ingest", "replay", "control"].flatMap { endpoint in ["peer_not_reading", "peer_gone"].map { [endpoint, $0] } })
        var specs: [SocketSpec] = []
        if let authenticator {
            // The ZAP handler is bound before any secure socket, in the same context.
            specs.append(SocketSpec(name: "zap", type: .router, bind: [Authenticator.zapEndpoint], respond: { message, _ in
                authenticator.zap(message)
            }))
        }
        let base = specs.count
        let manualSubscriptions = authenticator != nil
        let retained = RetainedOps()
        let subscribedClinics = SubscribedClinics(counted: authenticator != nil)
        // Manual subscriptions (with security): nothing is applied while libzmq's pairing of requests with
        // connections is broken by a peer's data message (see ManualSubscriptions), or a request could be applied
        // to another subscriber's connection — one clinic's alerts sent to another's key.
        let manual = Mutex(ManualSubscriptions())
        let subscriptionHandler: @Sendable (Message, ZMQSocket) -> SocketSpec.Handling = { message, socket in
            if let authenticator {
                switch manual.withLock({ $0.check(message, on: socket) }) {
                case .notASubscription:
                    authenticator.recordFailure(
                        address: message.userID ?? "unauthenticated", domain: "alerts",
                        reason: "a message that is not a subscription; subscriptions queued behind it are not applied")
                    return .handled
                case .skipped(false, let topic) where message.userID == nil, .subscription(false, let topic) where message.userID == nil:
                    // libzmq's own, for a connection that closed (it carries no key): libzmq has applied it; the
                    // heartbeat's clinics must forget it too (they never did with security, so 1,000 topics
                    // subscribed and dropped by any one key silenced every other clinic's heartbeats).
                    // It may be of a subscription that was refused (another clinic's): SubscribedClinics tells.
                    subscribedClinics.noteClosed(topic)
                    return .handled
                case .skipped(let subscribe, let topic):
                    // libzmq holds it for the connection all the same, and unsubscribes it when that closes.
                    if subscribe { subscribedClinics.noteNotCounted(topic) }
                    authenticator.recordFailure(
                        address: message.userID ?? "unauthenticated", domain: "alerts",
                        reason: "subscription to '\(String(decoding: topic, as: UTF8.self))' not applied (queued behind another peer's non-subscription message); subscribe again")
                    return .handled
                case .subscription(let subscribe, let topic):
                    guard authenticator.approveSubscription(subscribe: subscribe, topic: topic, userID: message.userID, on: socket)
                    else {
                        // Refused, but libzmq holds it for the connection and unsubscribes it when that closes.
                        if subscribe { subscribedClinics.noteNotCounted(topic) }
                        return .handled
                    }
                }
            }
            retained.subscribed(message, on: socket)
            if let frame = message.frames.first, let kind = frame.first, kind <= 1 { subscribedClinics.note(subscribe: kind == 1, frame.dropFirst()) }
            return .handled
        }
        let alertsOptions: @Sendable (ZMQSocket) throws -> Void = { socket in
            try socket.set(.maxMessageSize, 4_096)
            try socket.set(.sendHighWaterMark, 100_000)
            try socket.set(.receiveHighWaterMark, 1_000)
            try socket.set(.heartbeatInterval, 10_000)
            try socket.set(.heartbeatTimeout, 30_000)
            // Every subscription comes up, not only a topic's first, so each new subscriber gets the retained
            // operational events.
            try socket.set(.xpubVerbose, 1)
            // Not XPUB_VERBOSER: without security a topic's unsubscription comes up when its last connection
            // leaves, which is what the heartbeat's clinics need (a SUB sends a repeated subscription up, its
            // unsubscription once); with security XPUB_MANUAL passes every one up anyway (SubscribedClinics).
            if manualSubscriptions { try socket.set(.xpubManual, 1) }
        }
        let pending = ThreadQueue<Message>()
        // libzmq's size limit is per frame; a request is a routing id, perhaps an empty delimiter, and one JSON frame.
        let requestLimit = MessageSize(frames: Self.maximumRequestFrames + 1, bytes: Int(maxMessage) + 4_096)
        let ingestSpec = SocketSpec(
            name: "ingest", type: .router, bind: [configuration.ingest], maxInFlight: configuration.maxInFlight,
            deliver: { pending.put(contentsOf: $0) }, messageLimit: requestLimit,
            configure: secured("ingest", server))
        let alertsSpec = SocketSpec(
            name: "alerts", type: .xpub, bind: [configuration.alerts], maxInFlight: 1_024, respond: subscriptionHandler,
            configure: secured("alerts", alertsOptions))
        let replaySpec = SocketSpec(
            name: "replay", type: .router, bind: [configuration.replay], maxInFlight: 64, heldPerPeer: 16,
            messageLimit: requestLimit, configure: secured("replay", requestServer))
        let controlSpec = SocketSpec(
            name: "control", type: .router, bind: [configuration.control], maxInFlight: 16, heldPerPeer: 16,
            messageLimit: requestLimit, configure: secured("control", requestServer))
        specs += [ingestSpec, alertsSpec, replaySpec, controlSpec]
        if let authenticator {
            // After the sockets they watch (whose configuration starts each monitor).
            specs += Authenticator.domains.map { domain in
                SocketSpec(name: "monitor-\(domain)", type: .pair, connect: [Self.monitorEndpoint(domain)], respond: { message, _ in
                    if let event = MonitorEvent(message) {
                        // libzmq's monitor names the local endpoint, not the peer: such refusals are summed per endpoint.
                        authenticator.recordFailure(address: "(before authentication)", domain: domain, reason: event.reason)
                    }
                    return .handled
                })
            }
        }
        let loop: SocketLoop
        do {
            loop = try await SocketLoop.start(
                context: context, name: "cobalt-sockets", specs: specs,
                onSendError: { socket, error in
                    // Either way the sender retries with the same id and is answered `duplicate`: nothing is lost.
                    let reason = error.code == EAGAIN ? "peer_not_reading" : "peer_gone"
                    undelivered.increment([socket, reason])
                    errorLogger.debug("reply not delivered", metadata: ["socket": "\(socket)", "reason": "\(reason)", "error": "\(error)"])
                })
        } catch let error as ZMQError where Self.refusedEndpoint.contains(error.code) {
            // An endpoint that cannot be bound as written (an ipc:// directory that is not there, a privileged port,
            // an unknown interface) is a configuration error; one in use, or an address not up yet, stays an
            // error that a restart may get past.
            throw ConfigurationError("\(error)")
        }
        let bound = loop.endpoints
        let ingestSocket = SocketLoop.Socket(base)
        let alertsSocket = SocketLoop.Socket(base + 1)
        let authorize: @Sendable (String?, String) -> Bool = { userID, clinic in
            guard let authenticator else { return true }
            return authenticator.principal(userID: userID)?.allows(clinic: clinic) ?? false
        }
        let rules = RulesHolder(bundle)
        let statistics = Statistics()
        let publisher = Publisher(loop: loop, socket: alertsSocket, epoch: store.epoch, lastSequences: try await store.lastSequences(),
            retained: retained, subscribed: subscribedClinics)
        let (work, wake) = AsyncStream<EvaluationPipeline.Work>.makeStream(bufferingPolicy: .unbounded)
        let handOff = HandOff(
            capacity: configuration.handOffEvents, patience: .milliseconds(configuration.handOffWaitMilliseconds))
        let journal = JournalQueue(store: store)
        let pipeline = EvaluationPipeline(
            store: store, committer: journal, handOff: handOff, rules: rules, publisher: publisher, cacheCapacity: configuration.patientCache,
            cacheRecords: configuration.patientCacheRecords, batchSize: configuration.evaluationBatch, workers: configuration.evaluationWorkers, statistics: statistics, logger: logger, requeue: wake)
        let started = Date().timeIntervalSince1970
        let reloader = Reloader(
            configuration: configuration, store: store, rules: rules, work: wake, publisher: publisher,
            statistics: statistics, logger: logger, reloadKeys: { authenticator?.reload() ?? [] }, audit: audit,
            notifier: notifier)
        // Bound last, when nothing after it can fail: its event-loop thread is shut down by its service's run.
        var metricsEndpoint: MetricsEndpoint?
        do {
            if let address = configuration.metrics.flatMap(MetricsEndpoint.Address.init) {
                metricsEndpoint = try await MetricsEndpoint.bind(address, metrics: metrics, logger: logger)
            }
        } catch {
            await loop.stop()
            // As for the ZeroMQ endpoints: an address in use, or not up yet, may be got past by a restart; any other
            // failure says the address cannot work as written.
            let message = "metrics endpoint \(configuration.metrics ?? ""): \(error)"
            if let error = error as? IOError, [EADDRINUSE, EADDRNOTAVAIL].contains(error.errnoCode) { throw EndpointUnavailable(description: message) }
            throw ConfigurationError(message)
        }
        let endpoints = Endpoints(
            ingest: bound[base][0], alerts: bound[base + 1][0], replay: bound[base + 2][0], control: bound[base + 3][0],
            metrics: metricsEndpoint?.endpoint)
        var services: [any Service] = [
            AuditService(audit: audit, store: store, authenticator: authenticator),
            SocketService(loop: loop, publisher: publisher, heartbeat: .milliseconds(configuration.heartbeatMilliseconds), context: context),
            RequestService(
                loop: loop, replaySocket: .init(base + 2), controlSocket: .init(base + 3),
                replay: ReplayHandler(store: store, epoch: store.epoch, pageLimit: configuration.replayPageLimit, authorize: authorize),
                control: ControlHandler(
                    configuration: configuration, store: store, rules: rules, pipeline: pipeline, publisher: publisher,
                    statistics: statistics, started: started, reloader: reloader, audit: audit, metrics: metrics)),
            EvaluationService(pipeline: pipeline, work: work),
            IngestService(
                loop: loop, socket: ingestSocket, pending: pending, journal: journal, processor: IngestProcessor(
                    maxEventBytes: configuration.maxEventBytes, authorize: authorize, futureTolerance: configuration.futureToleranceSeconds),
                store: store,
                rules: rules, statistics: statistics, audit: audit, handOff: handOff, wake: wake,
                quarantineRows: configuration.quarantineRows, logger: logger),
        ]
        if let metricsEndpoint { services.insert(metricsEndpoint, at: 1) }
        if handleSignals {
            services.insert(SignalReloadService(reloader: reloader, signals: await UnixSignalsSequence(trapping: .sighup)), at: 1)
        }
        if configuration.watchRules {
            services.insert(
                RulesWatcher(
                    directory: configuration.rules, profile: configuration.profile,
                    interval: .milliseconds(configuration.watchIntervalMilliseconds),
                    settle: .milliseconds(configuration.watchSettleMilliseconds), loaded: rulesOnDisk,
                    reload: { _ = await reloader.reload(expect: nil, actor: "watcher") }),
                at: 1)
        }
        if let notifier, notifier.isActive {
            services.append(SystemdService(notifier: notifier, status: Reloader.status(bundle), logger: logger))
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
        // Trapped here, not when the group runs: a SIGTERM that came between "cobalt started" and the group's own
        // trap (its run) took its default action and killed the daemon — no drain, no STOPPING=1 (the load audit
        // saw it; 9 of 10 tries with a SIGTERM sent on that line). Caught now, it stops the group gracefully as
        // soon as it runs. Before this point a signal still ends the process at once: nothing is acknowledged yet.
        let shutdownSignals = handleSignals ? await UnixSignalsSequence(trapping: .sigterm, .sigint) : nil
        publisher.ops("start", [
            ("version", ControlHandler.version.jsonQuoted),
            ("ruleset", "{\"version\":\(bundle.version.jsonQuoted),\"hash\":\(bundle.hash.jsonQuoted)}"),
        ], retain: true)
        logger.info("cobalt started", metadata: [
            "ingest": "\(endpoints.ingest)", "alerts": "\(endpoints.alerts)", "replay": "\(endpoints.replay)",
            "control": "\(endpoints.control)", "metrics": "\(endpoints.metrics ?? "off")", "ruleset.version": "\(bundle.version)",
            "ruleset.hash": "\(bundle.hash)",
        ])
        return Daemon(endpoints: endpoints, group: group, shutdownSignals: shutdownSignals)
    }

    /// Where a secured endpoint's socket monitor publishes its failed handshakes.
    static func monitorEndpoint(_ domain: String) -> String { "inproc://cobalt.monitor.\(domain)" }

    /// What ``start(configuration:logger:handleSignals:metrics:notifier:)`` checks before it opens the store: the
    /// settings, libzmq's CURVE support, and the rule gate — the same gate as a reload, so that a rule set a reload
    /// refused and that is still on disk does not go live at the next start (a crash, a reboot, systemd's restart).
    private static func preflight(_ configuration: DaemonConfiguration) throws -> (bundle: RuleBundle, warnings: [String]) {
        try configuration.validate()
        guard ZMQContext.has("curve") else { throw ConfigurationError("libzmq was built without CURVE support") }
        let gated = Reloader.gate(configuration)
        guard let bundle = gated.runnable else {
            throw ConfigurationError("the rules in \(configuration.rules) may not run:\n" + gated.errors.joined(separator: "\n"))
        }
        return (bundle, gated.warnings)
    }

    /// `cobalt serve --check`: everything a start checks without opening the store or binding an endpoint —
    /// settings, the rule gate (load, check, compile, rule tests), the server key and the allow-lists — so that an
    /// operator can test a change before a restart. Returns a summary; throws ``ConfigurationError`` as a start
    /// would.
    public static func check(configuration: DaemonConfiguration, logger: Logger) throws -> String {
        let gated = try preflight(configuration)
        let (authenticator, _) = try security(configuration, logger: logger, audit: AuditLog())
        let bundle = gated.bundle
        var lines = [
            "rules: \(configuration.rules)" + (configuration.profile.map { " with profile \($0)" } ?? ""),
            "  version \(bundle.version) \(bundle.hash)",
            "  \(bundle.rulesets.count) rule sets, \(bundle.rules.count) rules; rule tests passed",
            "database: \(configuration.database) (not opened)",
            "endpoints: ingest \(configuration.ingest), alerts \(configuration.alerts), replay \(configuration.replay), control \(configuration.control), metrics \(configuration.metrics ?? "off")",
            "security: " + (authenticator == nil
                ? "none (plain TCP, loopback only)"
                : "CURVE on every endpoint; server key and allow-lists read"),
        ]
        lines += gated.warnings.map { "warning: \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `bind` errors that say the endpoint, as written, cannot work.
    static let refusedEndpoint: Set<Int32> = [EINVAL, EPROTONOSUPPORT, ENOENT, ENODEV, EACCES, ENOTDIR, ENAMETOOLONG]

    /// An endpoint could not be bound for now (its address in use, or not up yet): not a configuration error.
    struct EndpointUnavailable: Error, CustomStringConvertible {
        let description: String
    }

    /// The store could not be opened: not a configuration error (it may be the disk, or a lock), so a service manager
    /// may start the daemon again.
    struct StoreUnavailable: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Loads the server key and the allow-lists when security is configured.
    private static func security(_ configuration: DaemonConfiguration, logger: Logger, audit: AuditLog) throws -> (Authenticator?, String?) {
        guard let security = configuration.security else { return (nil, nil) }
        guard let data = FileManager.default.contents(atPath: security.serverSecretKey) else {
            throw ConfigurationError("\(security.serverSecretKey): cannot read the server secret key")
        }
        let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            _ = try CurveKeyPair(secretKey: secret)  // validates it
        } catch {
            throw ConfigurationError("\(security.serverSecretKey): not a CURVE secret key (\(error))")
        }
        let authenticator = try Authenticator(
            files: [.ingest: security.ingestKeys, .subscriber: security.subscriberKeys, .operator: security.operatorKeys],
            logger: logger, audit: audit)
        return (authenticator, secret)
    }

    /// Runs until a shutdown signal or ``shutdown()``.
    public func run() async throws {
        guard let shutdownSignals else { return try await group.run() }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await self.group.run() }
            tasks.addTask {
                // The first starts the graceful shutdown (remembered if the group is not running yet); later ones
                // change nothing.
                for await _ in shutdownSignals { await self.group.triggerGracefulShutdown() }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }

    /// Starts a graceful shutdown.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
    }
}
