import CobaltStore
import Foundation
import Logging
import RuleEngine
import Synchronization

/// Takes a candidate rule set live only if it loads, checks, compiles and passes its rule tests — and, with an
/// expected hash, only if that is still the running one (compare-and-swap). Otherwise the running set stays.
/// Triggered by the control `reload` command, SIGHUP and the rules watcher; reloads run one at a time, in the order
/// they were asked for, so that the comparison with the expected hash and the swap are one step.
struct Reloader {
    enum Outcome: Equatable {
        /// Live; `duration` from the request to the swap (load, check, compile, test), of which `compile` reading,
        /// checking and compiling the rule files and `tests` running the rule tests; `pause` how long event
        /// evaluation waited (re-evaluating open alerts), `patients` re-evaluated; `reevaluationError` why the
        /// re-evaluation of open alerts failed (it is tried again until it succeeds), nil when it did not.
        case live(
            version: String, hash: String, duration: Duration, compile: Duration, tests: Duration, pause: Duration, patients: Int,
            reevaluationError: String?)
        /// The candidate passed the gate and is the rule set already running: nothing was swapped, re-evaluated,
        /// recorded or announced (an operator's reload and the watcher's for the same edit, or an edit that
        /// changed no rule input).
        case unchanged(version: String, hash: String)
        case refused(reason: String, errors: [String])
    }

    let configuration: DaemonConfiguration
    let store: any CobaltStore
    let rules: RulesHolder
    /// Where re-evaluation requests go; the pipeline's loop handles them in order with event evaluation.
    let work: AsyncStream<EvaluationPipeline.Work>.Continuation
    let publisher: Publisher
    let statistics: Statistics
    let logger: Logger
    /// Re-reads the key allow-lists (a reload trigger reloads both); returns the errors of refused lists.
    let reloadKeys: @Sendable () -> [String]
    let audit: AuditLog
    /// Tells systemd that a reload is running, then that the daemon is ready again (`systemctl status`); nil when
    /// not run by `cobalt serve`.
    let notifier: SystemdNotifier?
    /// Shared by copies of this reloader (the control handler, the signal handler, the watcher).
    private let serial = SerialQueue()
    /// The last reload's outcome, for `status`: after a watcher's or SIGHUP's reload nobody got the control reply,
    /// and `ops/ruleset` is not retained for a refusal.
    private let last = LastReload()

    private final class LastReload: Sendable {
        let value = Mutex<(outcome: Outcome, at: Double)?>(nil)
    }

    /// The last reload (since the start) as a JSON object for `status`, or `null`.
    var lastReloadJSON: String {
        guard let (outcome, at) = last.value.withLock({ $0 }) else { return "null" }
        let time = "\"at\":\(Timestamp.formatMilliseconds(at).jsonQuoted)"
        switch outcome {
        case .live(let version, let hash, _, _, _, _, _, _):
            return "{\"outcome\":\"live\",\(time),\"version\":\(version.jsonQuoted),\"hash\":\(hash.jsonQuoted)}"
        case .unchanged(let version, let hash):
            return "{\"outcome\":\"unchanged\",\(time),\"version\":\(version.jsonQuoted),\"hash\":\(hash.jsonQuoted)}"
        case .refused(let reason, let errors):
            let first = errors.first.map { Self.headline($0).jsonQuoted } ?? "null"
            return "{\"outcome\":\"refused\",\(time),\"reason\":\(reason.jsonQuoted),\"errors\":\(errors.count),\"first_error\":\(first)}"
        }
    }

    /// The first line of a diagnostic (`file:line:column: error: message`), without the source line and caret.
    static func headline(_ error: String) -> String {
        String(error.prefix { $0 != "\n" })
    }

    init(
        configuration: DaemonConfiguration, store: any CobaltStore, rules: RulesHolder,
        work: AsyncStream<EvaluationPipeline.Work>.Continuation, publisher: Publisher, statistics: Statistics,
        logger: Logger, reloadKeys: @escaping @Sendable () -> [String], audit: AuditLog,
        notifier: SystemdNotifier? = nil
    ) {
        self.configuration = configuration
        self.store = store
        self.rules = rules
        self.work = work
        self.publisher = publisher
        self.statistics = statistics
        self.logger = logger
        self.reloadKeys = reloadKeys
        self.audit = audit
        self.notifier = notifier
    }

    func reload(expect: String?, actor: String) async -> Outcome {
        await serial.run { await reloadNow(expect: expect, actor: actor) }
    }

    private func reloadNow(expect: String?, actor: String) async -> Outcome {
        let started = ContinuousClock.now
        notifier?.send(["RELOADING=1", SystemdNotifier.monotonicMicroseconds, "STATUS=reloading the rules"], logger: logger)
        for error in reloadKeys() { logger.warning("key allow-list refused; the previous one stays", metadata: ["error": "\(error)"]) }
        let outcome = await attempt(expect: expect, started: started)
        last.value.withLock { $0 = (outcome, Date().timeIntervalSince1970) }
        switch outcome {
        case .live(let version, let hash, let duration, _, _, _, _, let reevaluationError):
            // From the request to the swap, as `reload_ms` (the re-evaluation after it has its own pause metric).
            statistics.recordReload(outcome: "live", duration: duration)
            audit.record(
                actor: actor, action: "reload.live",
                detail: "version=\(version) hash=\(hash)" + (reevaluationError.map { " reevaluation_failed=\($0)" } ?? ""))
        case .unchanged(let version, let hash):
            statistics.recordReload(outcome: "unchanged", duration: ContinuousClock.now - started)
            audit.record(actor: actor, action: "reload.unchanged", detail: "version=\(version) hash=\(hash)")
        case .refused(let reason, let errors):
            statistics.recordReload(outcome: "refused", duration: ContinuousClock.now - started)
            audit.record(actor: actor, action: "reload.refused", detail: "\(reason) (\(errors.count) errors)")
        }
        let running = rules.snapshot
        let result = switch outcome {
        case .live: "live"
        case .unchanged: "unchanged"
        case .refused: "refused, the running set stays"
        }
        notifier?.send(["READY=1", "STATUS=\(Self.status(running)); last reload \(result)"], logger: logger)
        return outcome
    }

    /// Most errors of a refused rule set logged one by one (all of them are in the control reply).
    static let loggedErrors = 20

    /// The `STATUS=` text systemd shows for a rule set.
    static func status(_ bundle: RuleBundle) -> String {
        "serving; rules \(bundle.version) \(bundle.hash.prefix(19))"
    }

    private func attempt(expect: String?, started: ContinuousClock.Instant) async -> Outcome {
        let current = rules.snapshot
        if let expect, expect != current.hash {
            logger.warning("reload refused: it expected another running rule set", metadata: [
                "expected": "\(expect)", "ruleset.hash": "\(current.hash)",
            ])
            return .refused(reason: "stale expectation: the running rule set is \(current.hash)", errors: [])
        }
        let gated = Self.gate(configuration)
        if let bundle = gated.runnable, bundle.hash == current.hash {
            logger.info("rule set unchanged", metadata: ["ruleset.version": "\(bundle.version)", "ruleset.hash": "\(bundle.hash)"])
            return .unchanged(version: bundle.version, hash: bundle.hash)
        }
        if let bundle = gated.runnable {
            // From the swap on, events (and the re-evaluation) change alerts under the new set; until its
            // re-evaluation finishes, the store must not say that open alerts agree with the old one, or a start
            // on the old set after a crash (a rollback) would keep what the new set concluded.
            // Announced first: a re-evaluation finishing now must not record the old set after this forgetting.
            rules.beginChange()
            do {
                try await store.forgetReevaluated()
            } catch {
                rules.cancelChange()
                logger.error("reload refused: the store could not be told that the rules change", metadata: ["error": "\(error)"])
                return .refused(reason: "the store could not be written (\(error)); the running set keeps running", errors: [])
            }
            rules.swap(bundle)
            let swapped = ContinuousClock.now - started
            var reevaluation = EvaluationPipeline.Reevaluation(patients: 0, changes: 0, pause: .zero)
            var reevaluationError: String?
            do {
                reevaluation = try await withCheckedThrowingContinuation { continuation in
                    if case .terminated = work.yield(.reevaluate(continuation)) {
                        continuation.resume(throwing: ConfigurationError(
                            "the pipeline has stopped; open alerts are re-evaluated at the next start"))
                    }
                }
            } catch {
                // The pipeline tries again on its own (and at the next start, if it never succeeds before).
                reevaluationError = "\(error)"
            }
            do {
                try await store.recordRuleSet(version: bundle.version, hash: bundle.hash, at: Date().timeIntervalSince1970)
            } catch {
                // The rules are live either way; only the store's history of rule sets misses this one.
                logger.error("the rule set went live but was not recorded in the store's rule-set history", metadata: [
                    "ruleset.version": "\(bundle.version)", "ruleset.hash": "\(bundle.hash)", "error": "\(error)",
                ])
            }
            publisher.ops(
                "ruleset",
                [("outcome", "\"live\""), ("version", bundle.version.jsonQuoted), ("hash", bundle.hash.jsonQuoted)]
                    + (reevaluationError == nil ? [] : [("reevaluation", "\"failed\"")]),
                retain: true)
            logger.info("rule set went live", metadata: ["ruleset.version": "\(bundle.version)", "ruleset.hash": "\(bundle.hash)"])
            // As at a start: a clinical review date passed, a retired set not loaded, an unused parameter.
            for warning in gated.warnings { logger.warning("\(warning)") }
            return .live(
                version: bundle.version, hash: bundle.hash, duration: swapped, compile: gated.compile,
                tests: gated.tests, pause: reevaluation.pause, patients: reevaluation.patients, reevaluationError: reevaluationError)
        }
        publisher.ops("ruleset", [
            ("outcome", "\"rejected\""), ("errors", "[" + gated.errors.prefix(20).map(\.jsonQuoted).joined(separator: ",") + "]"),
        ])
        logger.warning("rule set rejected; the running set keeps running", metadata: ["errors": "\(gated.errors.count)"])
        // Why, where an operator looks (the journal): after a watcher's or SIGHUP's reload nobody gets the reply.
        // Rule files, rule tests and their synthetic patients only: no patient data.
        for error in gated.errors.prefix(Self.loggedErrors) {
            logger.warning("rule set rejected because", metadata: ["error": "\(Self.headline(error))"])
        }
        if gated.errors.count > Self.loggedErrors {
            logger.warning("rule set rejected: more errors not logged", metadata: ["more": "\(gated.errors.count - Self.loggedErrors)"])
        }
        return .refused(reason: "the rule set was not loaded; the running set keeps running", errors: gated.errors)
    }

    /// What ``gate(_:)`` found: the bundle when the rules loaded, every error, the load warnings, and how long
    /// loading (read, check, compile) and the rule tests took.
    struct Gate {
        var bundle: RuleBundle?
        var errors: [String]
        var warnings: [String]
        var compile: Duration
        var tests: Duration = .zero

        /// The bundle, when it may go live: it loaded and nothing failed.
        var runnable: RuleBundle? { errors.isEmpty ? bundle : nil }
    }

    /// What a rule set must pass before it runs, at start as on every reload: it loads, checks and compiles, it
    /// has rule tests (`tests/` beside the rule sets), and every test passes.
    static func gate(_ configuration: DaemonConfiguration) -> Gate {
        let started = ContinuousClock.now
        let loaded = RuleLoader().load(directory: configuration.rules, profile: configuration.profile)
        let compiled = ContinuousClock.now
        var gate = Gate(
            bundle: loaded.bundle, errors: loaded.log.errors.map(\.description), warnings: loaded.log.warnings.map(\.headline),
            compile: compiled - started)
        guard loaded.bundle != nil else { return gate }
        let tests = RuleTestRunner.gate(loaded, directory: configuration.rules, profile: configuration.profile)
        gate.errors += tests.log.errors.map(\.description)
        if !tests.changedByProfile.isEmpty {
            gate.warnings.append(
                "the profile's parameters change the outcome of \(tests.changedByProfile.count) of the rules' own tests "
                    + "(its own tests should cover them): " + tests.changedByProfile.joined(separator: "; "))
        }
        for (label, outcomes) in [("rule test", tests.shipped), ("profile rule test", tests.profile)] {
            for outcome in outcomes where !outcome.passed {
                gate.errors.append("\(label) failed: \(outcome.test.name): \(outcome.failures.joined(separator: "; "))")
            }
        }
        gate.tests = ContinuousClock.now - compiled
        return gate
    }
}

/// Runs async jobs one after another, in the order they were submitted (an actor alone would interleave them at
/// every `await`).
final class SerialQueue: Sendable {
    private let tail = Mutex<Task<Void, Never>?>(nil)

    func run<T: Sendable>(_ job: @escaping @Sendable () async -> T) async -> T {
        let task = tail.withLock { tail -> Task<T, Never> in
            let previous = tail
            let task = Task {
                await previous?.value
                return await job()
            }
            tail = Task { _ = await task.value }
            return task
        }
        return await task.value
    }
}
