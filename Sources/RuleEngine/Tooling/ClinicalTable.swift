/// Renders the clinical rule table of `docs/clinical-rules.md` from a loaded bundle, so the document is
/// generated from the rule files and a test can prove it has not drifted.
package enum ClinicalTable {
    package static func markdown(_ bundle: RuleBundle) -> String {
        var out = """
            # Clinical rules

            Generated from `Rules/` by `cobalt rules table Rules > docs/clinical-rules.md`; a test fails when this file
            and the rules disagree. Rule sets are listed in file order and rules in declaration order. "Decides" is the
            derived fact a rule sets (decision tables: the first true row wins) or the alert it raises. Thresholds marked
            *(default)* are product defaults, not guideline text; sites override them with a profile.

            Bundle \(bundle.version).

            """
        let parameters = Dictionary(uniqueKeysWithValues: bundle.parameters.map { ($0.name, $0) })
        for ruleset in bundle.rulesets {
            out += "\n## \(ruleset.id) (\(ruleset.status.rawValue), owner: \(ruleset.owner), review by \(ruleset.reviewBy.map(Timestamp.formatDate) ?? "—"))\n\n"
            out += "| rule id | what it decides | threshold(s) | source |\n|---|---|---|---|\n"
            for rule in bundle.rules.filter({ $0.ruleset == ruleset.id }).sorted(by: { $0.order < $1.order }) {
                var decides: [String] = rule.sets.map { slot, code in
                    let name = bundle.derived[slot].name
                    if case .constant(let value) = code { return "`\(name)` = \(value.display)" }
                    return "`\(name)`"
                }
                if let alert = rule.alert { decides.append("alert: \(alert.category) (\(alert.severity.rawValue))") }
                let thresholds = rule.parameters.compactMap { parameters[$0] }.map { p in
                    "\(p.value.display)\(p.productDefault ? " *(default)*" : "") `\(p.name)`"
                }
                out += "| `\(rule.id)` | \(cell(decides.joined(separator: "; "))) | \(cell(thresholds.joined(separator: "; "))) | \(cell(rule.citations.joined(separator: "; "))) |\n"
            }
        }
        return out
    }

    private static func cell(_ text: String) -> String {
        text.isEmpty ? "—" : text.replacingAll("|", with: "\\|").replacingAll("\n", with: " ")
    }
}
