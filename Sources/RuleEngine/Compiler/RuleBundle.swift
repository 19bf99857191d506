/// A compiled, immutable rule bundle: vocabulary, derived facts, parameters and rules in evaluation order.
/// One bundle is one snapshot; hot reload swaps whole bundles.
package struct RuleBundle: Sendable {
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

    package init(
        version: String, hash: String, vocabulary: Vocabulary, derived: [DerivedFact], parameters: [Parameter],
        rules: [CompiledRule], rulesets: [RuleSetInfo], profile: String?, vocabularyHash: String = ""
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

/// One compiled rule.
package struct CompiledRule: Sendable {
    package var id: String
    package var ruleset: String
    package var description: String
    package var condition: Code
    package var sets: [(slot: Int, value: Code)]
    package var alert: CompiledAlert?
    /// Citation texts of the rule (including its alert's).
    package var citations: [String]
    /// Whether the rule belongs to a `testing` rule set: evaluated, never published.
    package var shadow: Bool
    package var location: SourceLocation
    /// Declaration order across the bundle (file order, then position).
    package var order: Int
    /// Derived-fact slots the rule reads.
    package var reads: Set<Int>
    /// The original condition text, for documentation and explanations.
    package var conditionText: String
    /// Parameters the rule reads (its thresholds).
    package var parameters: [String]
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
