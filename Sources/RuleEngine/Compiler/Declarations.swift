/// A fact derived by rules (`b12.status`), declared in the rule set that owns it.
package struct DerivedFact: Sendable {
    package var slot: Int
    package var name: String
    package var type: ValueType
    /// Value when no rule sets it (`unknown` when none is declared).
    package var defaultValue: Value
    /// Whether it appears in `decisions` of evaluation results.
    package var publish: Bool
    package var ruleset: String
    /// Owned by a `draft` or `testing` rule set: published rules may not read it, and it is not published.
    package var shadow: Bool = false
    package var description: String
    package var location: SourceLocation
}

/// A named threshold or setting. Site profiles override values without touching rule logic.
package struct Parameter: Sendable {
    package var name: String
    package var value: Value
    package var type: ValueType
    /// Marked `[default]` in the clinical reference: a product decision, not guideline text.
    package var productDefault: Bool
    /// The fact whose analyte conversions the value may use (a B12 threshold given in pmol/L).
    package var fact: Int?
    package var description: String
    package var ruleset: String
    package var location: SourceLocation
    /// Set when a site profile replaced the rule set's value.
    package var overriddenBy: String?
}
