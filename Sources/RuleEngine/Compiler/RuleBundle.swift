internal import Crypto

/// A compiled, immutable rule bundle: vocabulary, derived facts, parameters and rules in evaluation order.
/// One bundle is one snapshot; hot reload swaps whole bundles.
///
/// A class: evaluation hands the bundle to every evaluation, shard and lazily built alert, and as a struct each of
/// those copies retained and released its fifteen references.
package final class RuleBundle: Sendable {
    /// Summaries must be shorter than this many characters.
    package static let summaryLimit = 140

    package let version: String
    /// `sha256:` + hex digest of every loaded file (path and bytes), in path order.
    package let hash: String
    package let vocabulary: Vocabulary
    package let derived: [DerivedFact]
    package let parameters: [Parameter]
    /// Rules in evaluation (dependency) order.
    package let rules: [CompiledRule]
    package let rulesets: [RuleSetInfo]
    /// The site profile applied, if any.
    package let profile: String?
    /// Digest of the vocabulary file: patient timelines built under one vocabulary stay valid under any rule set
    /// with the same vocabulary.
    package let vocabularyHash: String
    /// The rules as the evaluator runs them, in the same order (see ``RuleStep``).
    let steps: [RuleStep]

    package init(
        version: String, hash: String, vocabulary: Vocabulary, derived: [DerivedFact], parameters: [Parameter],
        rules: [CompiledRule], rulesets: [RuleSetInfo], profile: String?, vocabularyHash: String
    ) {
        self.vocabularyHash = vocabularyHash
        self.version = version
        self.hash = hash
        self.vocabulary = vocabulary
        self.derived = derived
        self.parameters = parameters
        self.rules = rules
        self.rulesets = rulesets
        self.profile = profile
        steps = rules.map(RuleStep.init)
    }

    /// A derived fact by name.
    package func derivedFact(_ name: String) -> DerivedFact? {
        derived.first { $0.name == name }
    }
}

/// Metadata of one rule-set file.
package struct RuleSetInfo: Sendable {
    package enum Status: String, Sendable, CaseIterable {
        case draft, testing, production, retired

        /// Drafts and candidates run in shadow: evaluated and counted, never published.
        package var isShadow: Bool { self == .draft || self == .testing }
    }

    package var id: String
    package var version: String
    package var owner: String
    package var status: Status
    package var reviewBy: Double?
    package var citations: [String: String]
    package var file: String
    package var description: String
    package var ruleCount: Int
}

/// One compiled rule. A class: it is immutable once compiled, and the evaluator reads rules in a tight loop, so
/// sharing a reference avoids copying strings, arrays and templates for every rule of every event.
package final class CompiledRule: Sendable {
    package let id: String
    package let ruleset: String
    package let description: String
    package let condition: Code
    package let sets: [(slot: Int, value: Code)]
    package let alert: CompiledAlert?
    /// Citation texts of the rule (including its alert's).
    package let citations: [String]
    /// Whether the rule belongs to a `draft` or `testing` rule set: evaluated, never published.
    package let shadow: Bool
    package let location: SourceLocation
    /// Declaration order across the bundle (file order, then position).
    package let order: Int
    /// Derived-fact slots the rule reads.
    package let reads: Set<Int>
    /// The original condition text, for documentation and explanations.
    package let conditionText: String
    /// Parameters the rule reads (its thresholds).
    package let parameters: [String]
    /// SHA-256 of the constant part of the alert's content digest (see ``LazyEvaluation/digest(_:)``), so that
    /// each evaluation hashes only the values. Never mutated: evaluations update copies, and swift-crypto's hash
    /// state is copy-on-write (a copy that is updated first duplicates the shared context), so sharing it across
    /// threads only ever reads it.
    nonisolated(unsafe) let digestPrefix: SHA256
    /// The alert's placeholder expressions in order (summary, detail, recommendation): evaluated for every alert
    /// that fires, so kept as one list rather than gathered from the templates each time.
    let placeholders: [Code]

    package init(
        id: String, ruleset: String, description: String, condition: Code, sets: [(slot: Int, value: Code)],
        alert: CompiledAlert?, citations: [String], shadow: Bool, location: SourceLocation, order: Int, reads: Set<Int>,
        conditionText: String, parameters: [String]
    ) {
        self.id = id
        self.ruleset = ruleset
        self.description = description
        self.condition = condition
        self.sets = sets
        self.alert = alert
        self.citations = citations
        self.shadow = shadow
        self.location = location
        self.order = order
        self.reads = reads
        self.conditionText = conditionText
        self.parameters = parameters
        var hasher = SHA256()
        if let alert {
            hasher.update(data: Array("\(id)\u{1F}\(alert.category)\u{1F}\(alert.severity.rawValue)\u{1F}\(alert.wording)".utf8))
        }
        digestPrefix = hasher
        var placeholders: [Code] = []
        if let alert {
            for template in [alert.summary, alert.detail, alert.recommendation] {
                for case .code(let code) in template.parts { placeholders.append(code) }
            }
        }
        self.placeholders = placeholders
    }
}

/// The alert part of a rule.
package struct CompiledAlert: Sendable {
    package enum Severity: String, Sendable, CaseIterable {
        case info, warning, critical
    }

    package static let categories = [
        "deficiency", "route", "folate-masking", "neuro-urgent", "monitoring", "anaemia", "iron-deficiency",
        "anaphylaxis", "allergic-reaction", "infant-risk", "data-quality", "note",
    ]

    package var category: String
    package var severity: Severity
    package var summary: Template
    package var detail: Template
    package var recommendation: Template
    package var citations: [String]

    /// The literal text of the templates (placeholders removed) and citations, part of the alert's content digest;
    /// computed once when the rule is compiled.
    package var wording: String = ""

    package init(category: String, severity: Severity, summary: Template, detail: Template, recommendation: Template, citations: [String]) {
        self.category = category
        self.severity = severity
        self.summary = summary
        self.detail = detail
        self.recommendation = recommendation
        self.citations = citations
        self.wording = [summary.literalText, detail.literalText, recommendation.literalText, citations.joined(separator: ";")]
            .joined(separator: "\u{1F}")
    }
}
