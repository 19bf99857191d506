public import Foundation

/// The public face of the rule engine, for embedding and for the benchmark package: load a compiled rule
/// snapshot, decode events, keep a patient's state and evaluate it.
///
/// ```swift
/// let rules = try RuleSnapshot.load(directory: "Rules")
/// var state = PatientState(patient: "p-1", clinic: "north", rules: rules)
/// state.apply(try rules.decode(jsonData))
/// let result = state.evaluate(rules)
/// print(result.json)
/// ```
public struct RuleSnapshot: Sendable {
    let bundle: RuleBundle

    /// The bundle version (`Rules/bundle.yaml`).
    public var version: String { bundle.version }
    /// `sha256:` digest of every loaded file.
    public var hash: String { bundle.hash }
    /// Number of compiled rules.
    public var ruleCount: Int { bundle.rules.count }

    /// Loads and compiles a rules directory.
    /// - Throws: ``RuleLoadError`` with every diagnostic when the directory does not load.
    public static func load(directory: String, profile: String? = nil) throws(RuleLoadError) -> RuleSnapshot {
        let result = RuleLoader().load(directory: directory, profile: profile)
        guard let bundle = result.bundle else {
            throw RuleLoadError(diagnostics: result.log.sorted.map(\.description))
        }
        return RuleSnapshot(bundle: bundle)
    }

    /// Decodes and normalises one event (INTERFACES.md §1).
    /// - Throws: ``EventRejection`` listing every error with its JSON path.
    public func decode(_ data: Data) throws(EventRejection) -> DecodedEvent {
        do {
            let event = try EventDecoder.decode(data)
            return DecodedEvent(normalised: NormalisedEvent(event, vocabulary: bundle.vocabulary))
        } catch {
            throw EventRejection(errors: error.errors.map(\.description))
        }
    }
}

/// A rules directory that did not load.
public struct RuleLoadError: Error, Sendable, CustomStringConvertible {
    /// `file:line:column: error: message` lines with snippets.
    public let diagnostics: [String]
    public var description: String { diagnostics.joined(separator: "\n") }
}

/// An event that was rejected whole.
public struct EventRejection: Error, Sendable, CustomStringConvertible {
    /// `path: message` for every problem found.
    public let errors: [String]
    public var description: String { errors.joined(separator: "\n") }
}

/// A decoded, vocabulary-mapped event.
public struct DecodedEvent: Sendable {
    let normalised: NormalisedEvent

    public var id: String { normalised.event.id }
    public var patient: String { normalised.event.patient }
    public var clinic: String { normalised.event.clinic }
    /// Data-quality findings (values not used), as text.
    public var findings: [String] { normalised.findings.map { "\($0.path): \($0.reason)" } }
}

/// Everything known about one patient.
public struct PatientState: Sendable {
    var timeline: PatientTimeline

    public init(patient: String, clinic: String, rules: RuleSnapshot) {
        timeline = PatientTimeline(patient: patient, clinic: clinic, factCount: rules.bundle.vocabulary.facts.count)
    }

    /// Adds an event's facts.
    public mutating func apply(_ event: DecodedEvent) {
        timeline.apply(event.normalised)
    }

    /// Evaluates the state as of `at` (seconds since 1970), or as of the latest event.
    public func evaluate(_ rules: RuleSnapshot, at: Double? = nil) -> Evaluation {
        Evaluation(result: Evaluator(bundle: rules.bundle).evaluate(timeline, at: at))
    }
}

/// What the daemon computes for every event: decisions, and a content digest per fired alert to detect
/// changes. Texts and evidence are built only for alerts that are published (``alertJSON(_:)``).
public struct ChangeEvaluation: Sendable {
    let evaluation: LazyEvaluation

    /// Number of alerts fired.
    public var count: Int { evaluation.count }
    /// `(rule, digest)` per fired alert.
    public var digests: [(rule: String, digest: String)] {
        (0..<evaluation.count).map { (evaluation.rule($0), evaluation.digest($0)) }
    }
    /// The alert's JSON with its text and evidence (built now).
    public func alertJSON(_ index: Int) -> String { evaluation.alert(index).json }
}

extension PatientState {
    /// Evaluates as the daemon does per event (see ``ChangeEvaluation``).
    public func evaluateForChanges(_ rules: RuleSnapshot, at: Double? = nil) -> ChangeEvaluation {
        ChangeEvaluation(evaluation: Evaluator(bundle: rules.bundle).evaluateLazily(timeline, at: at))
    }
}

/// The outcome of an evaluation (INTERFACES.md §2).
public struct Evaluation: Sendable {
    let result: EvaluationResult

    /// Published decisions, e.g. `["b12.status": "deficient"]`.
    public var decisions: [String: String] {
        Dictionary(uniqueKeysWithValues: result.decisions.map { ($0.name, $0.value.display) })
    }
    /// `(rule, category, severity)` of each alert raised.
    public var alerts: [(rule: String, category: String, severity: String)] {
        result.alerts.map { ($0.rule, $0.category, $0.severity) }
    }
    /// The result as JSON.
    public var json: String { result.json }
}
