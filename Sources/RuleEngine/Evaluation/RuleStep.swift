/// What the evaluator runs of one rule: its condition, assignments and alert placeholders compiled to closures
/// (see ``CompiledCode``). A bundle keeps its rules' steps side by side in one array, in evaluation order.
///
/// Why not read them from ``CompiledRule``: the evaluator visits every rule for every event, and a compiled rule
/// is a large object (texts, templates, a hash state) of its own on the heap, so reading its condition cost cache
/// misses per rule. Steps are small values read in order.
struct RuleStep: Sendable {
    let condition: CompiledCode
    let sets: [(slot: Int, value: CompiledCode)]
    let hasAlert: Bool
    let placeholders: [CompiledCode]

    init(_ rule: CompiledRule) {
        condition = CompiledCode(rule.condition)
        sets = rule.sets.map { ($0.slot, CompiledCode($0.value)) }
        hasAlert = rule.alert != nil
        placeholders = rule.placeholders.map(CompiledCode.init)
    }
}
