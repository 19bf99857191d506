/// A site profile's replacement value for a parameter.
struct ProfileOverride {
    var name: String
    var keyNode: YAMLNode
    var value: String
    var valueNode: YAMLNode
}

/// Compiles read rule-set files into ordered rules, running every static check.
struct BundleCompiler {
    struct Output {
        var derived: [DerivedFact]
        var parameters: [Parameter]
        var rules: [CompiledRule]
        var rulesets: [RuleSetInfo]
    }

    let vocabulary: Vocabulary
    let today: Double

    init(vocabulary: Vocabulary, today: Double) {
        self.vocabulary = vocabulary
        self.today = today
    }

    mutating func compile(files allFiles: [RuleSetFile], profile: String?, overrides: [ProfileOverride], log: inout DiagnosticLog) -> Output? {
        // Rule sets: unique ids; retired ones are not loaded; review dates.
        var files: [RuleSetFile] = []
        var rulesetIDs: [String: SourceLocation] = [:]
        for file in allFiles {
            if let other = rulesetIDs[file.info.id] {
                log.error(file.metaNode.location, "duplicate rule-set id '\(file.info.id)' (also at \(other))")
                continue
            }
            rulesetIDs[file.info.id] = file.metaNode.location
            if file.info.status == .retired {
                log.warning(file.metaNode.location, "rule set '\(file.info.id)' is retired and is not loaded")
                continue
            }
            if file.info.status == .draft {
                log.warning(file.metaNode.location, "rule set '\(file.info.id)' is a draft: it runs in shadow (evaluated, never published); set status: production to publish its alerts")
            }
            if let review = file.info.reviewBy, review < today {
                log.warning(file.reviewByNode?.location ?? file.metaNode.location, "rule set '\(file.info.id)' was due for clinical review on \(Timestamp.formatDate(review))")
            }
            files.append(file)
        }

        // Parameters, with profile overrides.
        var parameters: [String: Parameter] = [:]
        var parameterOrder: [String] = []
        for file in files {
            for raw in file.parameters {
                if let other = parameters[raw.name] {
                    log.error(raw.keyNode.location, "duplicate parameter '\(raw.name)' (also at \(other.location))")
                    continue
                }
                var fact: FactDefinition?
                if let (name, node) = raw.factName {
                    fact = vocabulary.fact(identifier: FactDefinition.identifier(for: name))
                    if fact == nil { log.error(node.location, "unknown fact '\(name)'") }
                }
                guard let (value, type) = parameterValue(raw.valueText, fact: fact, at: raw.valueNode, &log) else { continue }
                parameters[raw.name] = Parameter(
                    name: raw.name, value: value, type: type, productDefault: raw.productDefault, fact: fact?.index,
                    description: raw.description, ruleset: file.info.id, location: raw.keyNode.location)
                parameterOrder.append(raw.name)
            }
        }
        for override in overrides {
            guard var parameter = parameters[override.name] else {
                let hint = Spelling.suggestion(for: override.name, among: parameters.keys).map { " (did you mean '\($0)'?)" } ?? ""
                log.error(override.keyNode.location, "the profile overrides unknown parameter '\(override.name)'\(hint)")
                continue
            }
            let fact = parameter.fact.map { vocabulary.facts[$0] }
            guard let (value, type) = parameterValue(override.value, fact: fact, at: override.valueNode, &log) else { continue }
            guard type == parameter.type || (ExpressionCompiler.assignable(type, to: parameter.type)) else {
                log.error(override.valueNode.location, "'\(override.name)' is \(parameter.type); the profile gives \(type)")
                continue
            }
            parameter.value = Self.converted(value, like: parameter.value)
            parameter.overriddenBy = profile
            parameters[override.name] = parameter
        }

        // Derived facts: one owner each.
        var derived: [String: DerivedFact] = [:]
        var derivedOrder: [DerivedFact] = []
        for file in files {
            for raw in file.derived {
                if let other = derived[raw.name] {
                    log.error(raw.keyNode.location, "derived fact '\(raw.name)' is already declared at \(other.location)")
                    continue
                }
                if vocabulary.fact(identifier: raw.name) != nil || ContextFacts.isReserved(raw.name) {
                    log.error(raw.keyNode.location, "'\(raw.name)' is a vocabulary or built-in name; choose another name for a derived fact")
                    continue
                }
                var defaultValue = Value.unknown
                if let (text, node) = raw.defaultText {
                    var expressions = ExpressionCompiler(vocabulary: vocabulary, derived: [:], parameters: parameters)
                    if case .text(let values?) = raw.type {
                        if values.contains(text) { defaultValue = .text(text) } else {
                            log.error(node.location, "default '\(text)' is not one of \(values.joined(separator: ", "))")
                        }
                    } else {
                        do {
                            let code = try expressions.value(text, expecting: raw.type)
                            guard let value = code.constantValue else {
                                log.error(node.location, "a default must be a constant")
                                continue
                            }
                            defaultValue = value
                        } catch {
                            log.error(node.location, error.message)
                        }
                    }
                }
                let fact = DerivedFact(
                    slot: derivedOrder.count, name: raw.name, type: raw.type, defaultValue: defaultValue,
                    publish: raw.publish, ruleset: file.info.id, shadow: file.info.status.isShadow, description: raw.description,
                    location: raw.keyNode.location)
                derived[raw.name] = fact
                derivedOrder.append(fact)
            }
        }

        // Rules.
        var expressions = ExpressionCompiler(vocabulary: vocabulary, derived: derived, parameters: parameters)
        var rules: [CompiledRule] = []
        var ruleIDs: [String: SourceLocation] = [:]
        for file in files {
            for raw in file.rules {
                if let other = ruleIDs[raw.id] {
                    log.error(raw.idNode.location, "duplicate rule id '\(raw.id)' (also at \(other))")
                    continue
                }
                ruleIDs[raw.id] = raw.idNode.location
                if raw.status == .retired { continue }
                if let rule = compileRule(raw, file: file, order: rules.count, derived: derived, &expressions, &log) {
                    rules.append(rule)
                }
            }
        }
        for name in parameterOrder where !expressions.usedParameters.contains(name) {
            if let parameter = parameters[name] { log.warning(parameter.location, "parameter '\(name)' is never used") }
        }
        checkUnreachable(rules, derivedOrder, &log)
        guard !log.hasErrors else { return nil }
        guard let ordered = Self.order(rules, derived: derivedOrder, log: &log) else { return nil }
        return Output(
            derived: derivedOrder, parameters: parameterOrder.compactMap { parameters[$0] }, rules: ordered,
            rulesets: files.map(\.info))
    }

    /// Keeps a profile's value in the unit of the rule set's value, so alert text reads the same way.
    private static func converted(_ value: Value, like original: Value) -> Value {
        if case .quantity(let v, let u) = value, case .quantity(_, let target) = original, let c = u.convert(v, to: target) {
            return .quantity(c, target)
        }
        return value
    }

    /// Parses a parameter value: a quantity, number, quoted text or boolean. With `fact`, a quantity in a unit of
    /// another dimension is converted through the fact's analyte conversions (a B12 threshold given in pmol/L).
    private func parameterValue(_ text: String, fact: FactDefinition?, at node: YAMLNode, _ log: inout DiagnosticLog) -> (Value, ValueType)? {
        let tokens: [Token]
        do { tokens = try Lexer.tokenize(text) } catch {
            log.error(node.location, error.message)
            return nil
        }
        guard tokens.count == 2 || (tokens.count == 3 && tokens[0].kind == .symbol(.minus)) else {
            log.error(node.location, "a parameter value is one number, quantity, quoted text or true/false; found '\(text)'")
            return nil
        }
        let sign = tokens.count == 3 ? -1.0 : 1.0
        switch tokens[tokens.count - 2].kind {
        case .number(let n): return (.number(sign * n), .number)
        case .quantity(let v, let unit):
            if let fact, let canonical = fact.unit, unit.dimension != canonical.dimension {
                guard let converted = NormalisedEvent.convert(sign * v, from: unit, for: fact, canonical: canonical) else {
                    log.error(node.location, "\(unit.symbol) cannot be converted to \(canonical.symbol) for \(fact.name)")
                    return nil
                }
                return (.quantity(converted, canonical), .quantity(canonical.dimension))
            }
            if let fact, let canonical = fact.unit, let converted = unit.convert(sign * v, to: canonical) {
                return (.quantity(converted, canonical), .quantity(canonical.dimension))
            }
            return (.quantity(sign * v, unit), .quantity(unit.dimension))
        case .string(let s): return (.text(s), .text(values: nil))
        case .keyword(.true): return (.bool(true), .bool)
        case .keyword(.false): return (.bool(false), .bool)
        default:
            log.error(node.location, "a parameter value is one number, quantity, quoted text or true/false; found '\(text)'")
            return nil
        }
    }

    private func compileRule(
        _ raw: RuleSetFile.RawRule, file: RuleSetFile, order: Int, derived: [String: DerivedFact],
        _ expressions: inout ExpressionCompiler, _ log: inout DiagnosticLog
    ) -> CompiledRule? {
        let errorsBefore = log.errors.count
        expressions.resetReads()
        func locate(_ node: YAMLNode, _ text: String, _ error: ExpressionError) -> SourceLocation {
            ExpressionLocator(node: node, text: text, sourceLines: file.sourceLines).location(error.offset)
        }
        var condition = Code.constant(.bool(false))
        if let (text, node) = raw.when {
            do { condition = try expressions.condition(text) } catch {
                log.error(locate(node, text, error), error.message)
            }
        }
        var sets: [(Int, Code)] = []
        for assignment in raw.sets {
            guard let fact = derived[assignment.name] else {
                let hint = Spelling.suggestion(for: assignment.name, among: derived.keys).map { " (did you mean '\($0)'?)" } ?? ""
                log.error(assignment.keyNode.location, "'\(assignment.name)' is not a derived fact declared under 'derive'\(hint)")
                continue
            }
            guard fact.ruleset == file.info.id else {
                log.error(assignment.keyNode.location, "'\(assignment.name)' belongs to rule set '\(fact.ruleset)'; only its own rules may set it")
                continue
            }
            if case .text(let values?) = fact.type {
                guard values.contains(assignment.value) else {
                    let hint = Spelling.suggestion(for: assignment.value, among: values).map { " (did you mean '\($0)'?)" } ?? ""
                    log.error(assignment.valueNode.location, "'\(assignment.value)' is not a value of \(fact.name)\(hint); expected one of \(values.joined(separator: ", "))")
                    continue
                }
                sets.append((fact.slot, .constant(.text(assignment.value))))
                continue
            }
            if case .text(nil) = fact.type {
                // Free text is a template, like alert texts: literal words with {{ expression }} placeholders.
                do { sets.append((fact.slot, .template(try expressions.template(assignment.value)))) } catch {
                    log.error(locate(assignment.valueNode, assignment.value, error), error.message)
                }
                continue
            }
            do { sets.append((fact.slot, try expressions.value(assignment.value, expecting: fact.type))) } catch {
                log.error(locate(assignment.valueNode, assignment.value, error), error.message)
            }
        }
        func resolveCitations(_ items: [(String, YAMLNode)]) -> [String] {
            items.compactMap { key, node in
                guard let text = file.info.citations[key] else {
                    let hint = Spelling.suggestion(for: key, among: file.info.citations.keys).map { " (did you mean '\($0)'?)" } ?? ""
                    log.error(node.location, "unknown citation '\(key)'\(hint); declare it under ruleset.citations")
                    return nil
                }
                return text
            }
        }
        var citations = resolveCitations(raw.citations)
        var alert: CompiledAlert?
        if let rawAlert = raw.alert {
            alert = compileAlert(rawAlert, ruleID: raw.id, citations: resolveCitations(rawAlert.citations), &expressions, locate, &log)
            for citation in alert?.citations ?? [] where !citations.contains(citation) { citations.append(citation) }
        }
        if raw.citations.isEmpty, raw.alert?.citations.isEmpty ?? true {
            let message = "rule '\(raw.id)' has no citation; every rule must be traceable to its source"
            if file.info.status == .draft { log.warning(raw.idNode.location, message) } else { log.error(raw.idNode.location, message) }
        }
        // Shadow logic must not change what is published: a published rule may not read a fact that a draft or
        // testing rule set derives (facts are set only by their own rule set's rules, so this covers every chain).
        if !file.info.status.isShadow {
            for fact in derived.values where fact.shadow && expressions.readsDerived.contains(fact.slot) {
                log.error(raw.idNode.location, "rule '\(raw.id)' publishes but reads '\(fact.name)', which rule set '\(fact.ruleset)' derives in shadow (draft or testing); make that rule set production first, or this one testing")
            }
        }
        guard log.errors.count == errorsBefore else { return nil }
        return CompiledRule(
            id: raw.id, ruleset: file.info.id, description: raw.description, condition: condition, sets: sets, alert: alert,
            citations: citations, shadow: file.info.status.isShadow, location: raw.idNode.location, order: order,
            reads: expressions.readsDerived, conditionText: raw.when?.0 ?? "", parameters: expressions.recentParameters)
    }

    private func compileAlert(
        _ raw: RuleSetFile.RawAlert, ruleID: String, citations: [String], _ expressions: inout ExpressionCompiler,
        _ locate: (YAMLNode, String, ExpressionError) -> SourceLocation, _ log: inout DiagnosticLog
    ) -> CompiledAlert? {
        var category = ""
        if let (text, node) = raw.category {
            if CompiledAlert.categories.contains(text) { category = text } else {
                let hint = Spelling.suggestion(for: text, among: CompiledAlert.categories).map { " (did you mean '\($0)'?)" } ?? ""
                log.error(node.location, "unknown category '\(text)'\(hint)")
            }
        } else {
            log.error(raw.node.location, "alert of '\(ruleID)' needs a category")
        }
        var severity = CompiledAlert.Severity.info
        if let (text, node) = raw.severity {
            if let parsed = CompiledAlert.Severity(rawValue: text) { severity = parsed } else {
                log.error(node.location, "unknown severity '\(text)'; expected info, warning or critical")
            }
        } else {
            log.error(raw.node.location, "alert of '\(ruleID)' needs a severity")
        }
        func template(_ field: (String, YAMLNode)?, _ name: String, required: Bool) -> Template {
            guard let (text, node) = field else {
                if required { log.error(raw.node.location, "alert of '\(ruleID)' needs a \(name)") }
                return Template(parts: [])
            }
            do { return try expressions.template(text) } catch {
                log.error(locate(node, text, error), error.message)
                return Template(parts: [])
            }
        }
        let summary = template(raw.summary, "summary", required: true)
        if let (text, node) = raw.summary, summary.literalText.count >= RuleBundle.summaryLimit {
            log.error(node.location, "summary is \(text.count) characters; it must be under \(RuleBundle.summaryLimit)")
        }
        let detail = template(raw.detail, "detail", required: true)
        let recommendation = template(raw.recommendation, "recommendation", required: true)
        return CompiledAlert(
            category: category, severity: severity, summary: summary, detail: detail, recommendation: recommendation,
            citations: citations)
    }

    /// Warns about a rule that can never fire: it sets the same facts as an earlier rule whose condition is
    /// always true.
    private func checkUnreachable(_ rules: [CompiledRule], _ derived: [DerivedFact], _ log: inout DiagnosticLog) {
        var alwaysSet: [Int: String] = [:]
        for rule in rules where !rule.sets.isEmpty {
            if let slot = rule.sets.first(where: { alwaysSet[$0.slot] != nil })?.slot {
                log.warning(rule.location, "rule '\(rule.id)' is unreachable: '\(alwaysSet[slot]!)' always sets \(derived[slot].name) first")
                continue
            }
            if case .constant(.bool(true)) = rule.condition {
                for (slot, _) in rule.sets { alwaysSet[slot] = rule.id }
            }
        }
    }

    /// Orders rules so that every setter of a derived fact runs before its readers, and setters of one fact keep
    /// their declaration order (first true wins). A cycle is an error naming the rules in it.
    static func order(_ rules: [CompiledRule], derived: [DerivedFact], log: inout DiagnosticLog) -> [CompiledRule]? {
        var setters: [[Int]] = Array(repeating: [], count: derived.count)
        for (i, rule) in rules.enumerated() {
            for (slot, _) in rule.sets { setters[slot].append(i) }
        }
        var edges: [Set<Int>] = Array(repeating: [], count: rules.count)
        for (i, rule) in rules.enumerated() {
            for slot in rule.reads {
                for setter in setters[slot] where setter != i { edges[setter].insert(i) }
                if setters[slot].contains(i) {
                    log.error(rule.location, "rule '\(rule.id)' reads \(derived[slot].name), which it sets itself")
                }
            }
        }
        for list in setters where list.count > 1 {
            for (a, b) in zip(list, list.dropFirst()) { edges[a].insert(b) }
        }
        guard !log.hasErrors else { return nil }
        var indegree = Array(repeating: 0, count: rules.count)
        for targets in edges { for t in targets { indegree[t] += 1 } }
        var ready = (0..<rules.count).filter { indegree[$0] == 0 }
        var result: [CompiledRule] = []
        while !ready.isEmpty {
            ready.sort(by: >)
            let next = ready.removeLast()
            result.append(rules[next])
            for t in edges[next] {
                indegree[t] -= 1
                if indegree[t] == 0 { ready.append(t) }
            }
        }
        guard result.count == rules.count else {
            let cycle = findCycle(edges, among: Set((0..<rules.count).filter { indegree[$0] > 0 }))
            let names = cycle.map { rules[$0].id }
            let first = cycle.first.map { rules[$0].location } ?? SourceLocation(file: "", line: 1, column: 1)
            log.error(first, "rules depend on each other in a cycle: \((names + [names.first ?? ""]).joined(separator: " → "))")
            return nil
        }
        return result
    }

    /// A cycle among `nodes` (the rules ordering could not place): each of them has a predecessor among them, so
    /// walking predecessors must come back to a rule already seen — that loop is a cycle. (Walking successors from
    /// the first rule could start at a rule that merely reads a fact set in a cycle and name only it.) The cycle is
    /// given in dependency order, from its first-declared rule.
    private static func findCycle(_ edges: [Set<Int>], among nodes: Set<Int>) -> [Int] {
        guard let start = nodes.min() else { return [] }
        var predecessors: [Int: [Int]] = [:]
        for from in nodes { for to in edges[from] where nodes.contains(to) { predecessors[to, default: []].append(from) } }
        var path: [Int] = [start]
        var current = start
        while let previous = predecessors[current]?.min() {
            if let index = path.firstIndex(of: previous) {
                let cycle = Array(path[index...].reversed())
                let first = cycle.indices.min { cycle[$0] < cycle[$1] }!
                return Array(cycle[first...] + cycle[..<first])
            }
            path.append(previous)
            current = previous
        }
        return path
    }
}
