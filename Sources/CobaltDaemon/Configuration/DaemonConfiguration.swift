import Foundation
public import Logging
import Yams

/// Everything `cobalt serve` needs, built once from defaults, a configuration file and flags, then passed down.
///
/// Configuration file keys (YAML), each optional:
/// - `rules` (string, default `Rules`): the rules directory.
/// - `profile` (string, default none): a site profile applied to the rules.
/// - `database` (string, default `cobalt.db`): the SQLite file.
/// - `endpoints.ingest|alerts|replay|control` (string): ZeroMQ endpoints, defaults `tcp://127.0.0.1:5570`–`5573`.
/// - `endpoints.metrics` (string, default `http://127.0.0.1:5574`): the HTTP endpoint Prometheus scrapes
///   (`/metrics`, `/healthz`); `off` for none.
/// - `limits.max_event_bytes` (int, default 262144): larger events get a 413 NACK.
/// - `limits.max_message_bytes` (int, default 1048576): libzmq drops the connection of a larger message.
/// - `limits.max_in_flight` (int, default 4096): ingest messages read but not yet acknowledged.
/// - `limits.patient_cache` (int, default 10000): patient timelines kept in memory.
/// - `limits.patient_cache_records` (int, default 2000000): timeline records kept in memory over all patients
///   (a timeline grows with the patient's history; the least recently used patients are evicted first).
/// - `limits.evaluation_batch` (int, default 256): at most this many events per evaluation transaction (each is
///   sized to about 2 ms of work) and per journal read.
/// - `limits.handoff_events` (int, default 4096, about 5 KiB each): decoded events held in memory between ingest and
///   evaluation; when that many are waiting, ingest waits for evaluation (backpressure: senders are read more slowly).
/// - `limits.handoff_wait_ms` (int, default 1000): how long ingest waits for evaluation before it leaves events out
///   of the hand-off and goes on without it (evaluation then reads them back from the journal).
/// - `limits.future_tolerance_ms` (int, default 86400000, one day): how far after the daemon's clock an event's
///   `time` may be; a later one is refused (400), since the patient would be evaluated as of that time from then on.
/// - `limits.quarantine_rows` (int, default 5000): the most recent rejected messages kept in the quarantine table
///   (each with at most 64 KiB of its payload); older ones are deleted as new ones arrive.
/// - `limits.evaluation_workers` (int, default: the number of cores, at most 4): patients evaluated in parallel.
/// - `heartbeat_ms` (int, default 1000): interval of per-clinic heartbeats.
/// - `replay_page_limit` (int, default 500): most alerts in one replay page.
/// - `watch_rules` (bool, default true): reload when the rules directory changes.
/// - `watch_interval_ms` (int, default 1000): how often the rules directory is checked.
/// - `watch_settle_ms` (int, default 2000): how long the files must stay unchanged before a reload.
/// - `log.level` (string, default `info`): trace, debug, info, notice, warning, error or critical.
/// - `log.format` (string, default `text`): `text` (swift-log's lines) or `json` (one JSON object per line).
/// - `security.server_secret_key` (string): a file holding the server's Z85 CURVE secret key (`cobalt keygen`).
///   With it, every endpoint requires CURVE and a key on the matching allow-list:
/// - `security.ingest_keys`, `security.subscriber_keys`, `security.operator_keys` (strings): allow-list files,
///   one `Z85PUBLICKEY name [clinic,clinic|*]` per line.
public struct DaemonConfiguration: Sendable, Equatable {
    public var rules = "Rules"
    public var profile: String?
    public var database = "cobalt.db"
    public var ingest = "tcp://127.0.0.1:5570"
    public var alerts = "tcp://127.0.0.1:5571"
    public var replay = "tcp://127.0.0.1:5572"
    public var control = "tcp://127.0.0.1:5573"
    /// `http://HOST:PORT` for `/metrics` and `/healthz`; nil for none (`off` in the file and on the command line).
    public var metrics: String? = "http://127.0.0.1:5574"
    public var maxEventBytes = 262_144
    public var maxMessageBytes = 1_048_576
    public var maxInFlight = 4_096
    public var patientCache = 10_000
    public var patientCacheRecords = 2_000_000
    public var evaluationBatch = 256
    public var handOffEvents = 4_096
    public var handOffWaitMilliseconds = 1_000
    public var quarantineRows = 5_000
    public var futureToleranceMilliseconds = 86_400_000
    var futureToleranceSeconds: Double { Double(futureToleranceMilliseconds) / 1_000 }
    public var evaluationWorkers = min(ProcessInfo.processInfo.activeProcessorCount, 4)
    public var heartbeatMilliseconds = 1_000
    public var replayPageLimit = 500
    public var watchRules = true
    public var watchIntervalMilliseconds = 1_000
    public var watchSettleMilliseconds = 2_000
    public var logLevel: Logger.Level = .info
    public var logFormat: LogFormat = .text
    public var security: Security?

    /// CURVE keys and allow-lists; `nil` means plain TCP, allowed on loopback only.
    public struct Security: Sendable, Equatable {
        public var serverSecretKey: String
        public var ingestKeys: String
        public var subscriberKeys: String
        public var operatorKeys: String

        public init(serverSecretKey: String, ingestKeys: String, subscriberKeys: String, operatorKeys: String) {
            self.serverSecretKey = serverSecretKey
            self.ingestKeys = ingestKeys
            self.subscriberKeys = subscriberKeys
            self.operatorKeys = operatorKeys
        }
    }

    public init() {}

    /// Reads a YAML configuration file over the defaults.
    public static func load(file: String) throws -> DaemonConfiguration {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError("\(file): cannot read the configuration file")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw ConfigurationError("\(file): \(error)") }
        var configuration = DaemonConfiguration()
        /// `file:line:column` of a node (the file alone when the node has no position).
        func at(_ node: Node?) -> String {
            node?.mark.map { "\(file):\($0.line):\($0.column)" } ?? file
        }
        // An empty file is the defaults; anything else must be settings. (A list, or a lone value, used to be
        // ignored, and the daemon started on defaults.)
        guard let node else { return configuration }
        guard let mapping = node.mapping else {
            throw ConfigurationError("\(at(node)): the configuration must be a mapping of settings (rules:, database:, …)")
        }
        func string(_ node: Node?, _ key: String) throws -> String? {
            guard let node else { return nil }
            guard let value = node.scalar?.string else { throw ConfigurationError("\(at(node)): '\(key)' must be text") }
            guard !value.isEmpty else { throw ConfigurationError("\(at(node)): '\(key)' is empty; remove it for the default") }
            return value
        }
        func int(_ node: Node?, _ key: String) throws -> Int? {
            guard let node else { return nil }
            guard let value = node.int, value > 0 else { throw ConfigurationError("\(at(node)): '\(key)' must be a positive whole number") }
            return value
        }
        /// A section (`endpoints`, `limits`, `security`): absent, or a mapping. `security:` with every entry
        /// commented out used to be taken as no security at all.
        func section(_ key: String) throws -> Node.Mapping? {
            guard let node = mapping[key] else { return nil }
            guard let section = node.mapping else {
                throw ConfigurationError("\(at(node)): '\(key)' must be a mapping of settings (found \(node.scalar.map { $0.string.isEmpty ? "nothing" : "'\($0.string)'" } ?? "a list"))")
            }
            return section
        }
        let known = [
            "rules", "profile", "database", "endpoints", "limits", "heartbeat_ms", "replay_page_limit", "watch_rules",
            "watch_interval_ms", "watch_settle_ms", "log", "security",
        ]
        func refuseUnknown(_ mapping: Node.Mapping, _ known: [String], in section: String?) throws {
            for keyNode in mapping.keys {
                guard let key = keyNode.string, !known.contains(key) else { continue }
                let name = section.map { "\($0).\(key)" } ?? key
                throw ConfigurationError("\(at(keyNode)): unknown key '\(name)'; expected one of \(known.joined(separator: ", "))")
            }
        }
        try refuseUnknown(mapping, known, in: nil)
        // A misspelt setting must not silently fall back to its default.
        if let endpoints = try section("endpoints") { try refuseUnknown(endpoints, ["ingest", "alerts", "replay", "control", "metrics"], in: "endpoints") }
        if let limits = try section("limits") {
            try refuseUnknown(
                limits, ["max_event_bytes", "max_message_bytes", "max_in_flight", "patient_cache", "patient_cache_records",
                    "evaluation_batch", "handoff_events", "handoff_wait_ms", "quarantine_rows", "future_tolerance_ms", "evaluation_workers"],
                in: "limits")
        }
        if let log = try section("log") { try refuseUnknown(log, ["level", "format"], in: "log") }
        if let security = try section("security") {
            try refuseUnknown(security, ["server_secret_key", "ingest_keys", "subscriber_keys", "operator_keys"], in: "security")
        }
        configuration.rules = try string(mapping["rules"], "rules") ?? configuration.rules
        configuration.profile = try string(mapping["profile"], "profile")
        configuration.database = try string(mapping["database"], "database") ?? configuration.database
        if let endpoints = mapping["endpoints"]?.mapping {
            configuration.ingest = try string(endpoints["ingest"], "endpoints.ingest") ?? configuration.ingest
            configuration.alerts = try string(endpoints["alerts"], "endpoints.alerts") ?? configuration.alerts
            configuration.replay = try string(endpoints["replay"], "endpoints.replay") ?? configuration.replay
            configuration.control = try string(endpoints["control"], "endpoints.control") ?? configuration.control
            if let metrics = try string(endpoints["metrics"], "endpoints.metrics") { configuration.metrics = Self.metrics(metrics) }
        }
        if let limits = mapping["limits"]?.mapping {
            configuration.maxEventBytes = try int(limits["max_event_bytes"], "limits.max_event_bytes") ?? configuration.maxEventBytes
            configuration.maxMessageBytes = try int(limits["max_message_bytes"], "limits.max_message_bytes") ?? configuration.maxMessageBytes
            configuration.maxInFlight = try int(limits["max_in_flight"], "limits.max_in_flight") ?? configuration.maxInFlight
            configuration.patientCache = try int(limits["patient_cache"], "limits.patient_cache") ?? configuration.patientCache
            configuration.patientCacheRecords =
                try int(limits["patient_cache_records"], "limits.patient_cache_records") ?? configuration.patientCacheRecords
            configuration.evaluationBatch = try int(limits["evaluation_batch"], "limits.evaluation_batch") ?? configuration.evaluationBatch
            configuration.handOffEvents = try int(limits["handoff_events"], "limits.handoff_events") ?? configuration.handOffEvents
            configuration.handOffWaitMilliseconds =
                try int(limits["handoff_wait_ms"], "limits.handoff_wait_ms") ?? configuration.handOffWaitMilliseconds
            configuration.futureToleranceMilliseconds =
                try int(limits["future_tolerance_ms"], "limits.future_tolerance_ms") ?? configuration.futureToleranceMilliseconds
            configuration.quarantineRows = try int(limits["quarantine_rows"], "limits.quarantine_rows") ?? configuration.quarantineRows
            configuration.evaluationWorkers = try int(limits["evaluation_workers"], "limits.evaluation_workers") ?? configuration.evaluationWorkers
        }
        configuration.heartbeatMilliseconds = try int(mapping["heartbeat_ms"], "heartbeat_ms") ?? configuration.heartbeatMilliseconds
        configuration.replayPageLimit = try int(mapping["replay_page_limit"], "replay_page_limit") ?? configuration.replayPageLimit
        if let node = mapping["watch_rules"] {
            guard let value = node.bool else { throw ConfigurationError("\(at(node)): 'watch_rules' must be true or false") }
            configuration.watchRules = value
        }
        configuration.watchIntervalMilliseconds = try int(mapping["watch_interval_ms"], "watch_interval_ms") ?? configuration.watchIntervalMilliseconds
        configuration.watchSettleMilliseconds = try int(mapping["watch_settle_ms"], "watch_settle_ms") ?? configuration.watchSettleMilliseconds
        if let log = mapping["log"]?.mapping {
            if let node = log["level"], let text = try string(node, "log.level") {
                guard let level = Logger.Level(rawValue: text) else { throw ConfigurationError("\(at(node)): 'log.level' \(Self.logLevelChoices)") }
                configuration.logLevel = level
            }
            if let node = log["format"], let text = try string(node, "log.format") {
                guard let format = LogFormat(rawValue: text) else { throw ConfigurationError("\(at(node)): 'log.format' \(Self.logFormatChoices)") }
                configuration.logFormat = format
            }
        }
        if let security = mapping["security"]?.mapping {
            func required(_ key: String) throws -> String {
                guard let value = try string(security[key], "security.\(key)") else {
                    throw ConfigurationError("\(at(mapping["security"])): security needs '\(key)'")
                }
                return value
            }
            configuration.security = Security(
                serverSecretKey: try required("server_secret_key"), ingestKeys: try required("ingest_keys"),
                subscriberKeys: try required("subscriber_keys"), operatorKeys: try required("operator_keys"))
        }
        return configuration
    }

    /// Refuses settings that would be unsafe or cannot work.
    public func validate() throws {
        for (name, endpoint) in [("ingest", ingest), ("alerts", alerts), ("replay", replay), ("control", control)] {
            guard endpoint.hasPrefix("tcp://") || endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") else {
                throw ConfigurationError("\(name) endpoint '\(endpoint)' must be tcp://, ipc:// or inproc://")
            }
            // libzmq takes a port above 65535 modulo 65536 (99999 bound 34463): the daemon listened where nobody
            // would look for it.
            if endpoint.hasPrefix("tcp://") {
                let port = endpoint.split(separator: ":", omittingEmptySubsequences: false).last ?? ""
                guard port == "*" || UInt16(port).map({ $0 > 0 }) == true else {
                    throw ConfigurationError("\(name) endpoint '\(endpoint)' needs a port: 1 to 65535, or * for any free one")
                }
            }
            // Without CURVE, patient data never leaves the machine.
            if endpoint.hasPrefix("tcp://"), !Self.isLoopback(endpoint), security == nil {
                throw ConfigurationError(
                    "\(name) endpoint '\(endpoint)' is not on loopback: plain TCP is only allowed on 127.0.0.1/::1; configure security (CURVE keys) to bind elsewhere")
            }
        }
        if let metrics {
            guard let address = MetricsEndpoint.Address(metrics) else {
                throw ConfigurationError("metrics endpoint '\(metrics)' must be http://HOST:PORT (a port from 1 to 65535, or * for any free one), or off")
            }
            // Counts labelled with clinic and rule ids, no patient data — but unauthenticated: off loopback only in
            // a deployment secured like the rest.
            if !address.isLoopback, security == nil {
                throw ConfigurationError(
                    "metrics endpoint '\(metrics)' is not on loopback: without security configured every endpoint stays on 127.0.0.1/::1")
            }
        }
        guard maxEventBytes <= maxMessageBytes else {
            throw ConfigurationError("limits.max_event_bytes (\(maxEventBytes)) must not exceed limits.max_message_bytes (\(maxMessageBytes))")
        }
    }

    /// What a wrong level or format is told.
    public static let logLevelChoices = "must be one of trace, debug, info, notice, warning, error, critical"
    public static let logFormatChoices = "must be text or json"

    /// The metrics setting as written: `off` (any case) for none.
    public static func metrics(_ text: String) -> String? { text.lowercased() == "off" ? nil : text }

    static func isLoopback(_ endpoint: String) -> Bool {
        isLoopback(host: endpoint.dropFirst("tcp://".count).split(separator: ":").dropLast().joined(separator: ":"))
    }

    /// The one loopback rule for every endpoint's host (ZeroMQ's `[::1]` or the metrics endpoint's `::1`).
    static func isLoopback(host: String) -> Bool {
        host == "localhost" || host == "[::1]" || host == "::1" || host.hasPrefix("127.")
    }
}

/// A configuration problem, said plainly.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
