import Foundation

/// Reads a vocabulary file into a ``Vocabulary``, reporting every problem with its position.
enum VocabularyLoader {
    static func load(_ source: YAMLSource, _ log: inout DiagnosticLog) -> Vocabulary? {
        guard let rootNode = source.root else { return nil }
        let root = YAMLNode(rootNode, file: source.path)
        guard let entries = root.mapping("the vocabulary file", &log) else { return nil }
        YAMLNode.checkKeys(entries, allowed: ["vocabulary", "facts", "excluded_codes"], in: "the vocabulary file", &log)
        var version = "0"
        if let meta = entries.first(where: { $0.key == "vocabulary" })?.value,
            let fields = meta.mapping("vocabulary", &log)
        {
            YAMLNode.checkKeys(fields, allowed: ["version", "description"], in: "vocabulary", &log)
            version = fields.first { $0.key == "version" }?.value.string("version", &log) ?? version
        }
        var facts: [FactDefinition] = []
        var seenCodes: [String: String] = [:]
        if let factsNode = entries.first(where: { $0.key == "facts" })?.value,
            let factEntries = factsNode.mapping("facts", &log)
        {
            var identifiers: [String: String] = [:]
            for entry in factEntries {
                guard let fact = definition(entry.key, entry.keyNode, entry.value, index: facts.count, &log) else { continue }
                if let other = identifiers[fact.identifier] {
                    log.error(entry.keyNode.location, "fact '\(entry.key)' has the same rule name '\(fact.identifier)' as '\(other)'")
                    continue
                }
                if ContextFacts.isReserved(fact.identifier) {
                    log.error(entry.keyNode.location, "'\(entry.key)' is a built-in name and cannot be a vocabulary fact")
                    continue
                }
                identifiers[fact.identifier] = entry.key
                for code in fact.codes {
                    if let other = seenCodes[code.lowercased()] {
                        log.error(entry.keyNode.location, "code \(code) is mapped to both '\(other)' and '\(entry.key)'")
                    }
                    seenCodes[code.lowercased()] = entry.key
                }
                facts.append(fact)
            }
        } else {
            log.error(root.location, "the vocabulary file needs a 'facts' mapping")
        }
        var excluded: [String: String] = [:]
        if let node = entries.first(where: { $0.key == "excluded_codes" })?.value, let items = node.mapping("excluded_codes", &log) {
            for item in items {
                guard parseCode(item.key) != nil else {
                    log.error(item.keyNode.location, "excluded code '\(item.key)' must be written system:code")
                    continue
                }
                if let mapped = seenCodes[item.key.lowercased()] {
                    log.error(item.keyNode.location, "code \(item.key) is both excluded and mapped to '\(mapped)'")
                }
                excluded[item.key.lowercased()] = item.value.string("the reason", &log) ?? ""
            }
        }
        return Vocabulary(version: version, facts: facts, excludedCodes: excluded)
    }

    private static let systems: Set<String> = ["loinc", "icd10", "snomed", "atc", "rxnorm", "local"]

    private static func parseCode(_ text: String) -> (String, String)? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let system = text[..<colon].lowercased()
        let code = String(text[text.index(after: colon)...])
        guard systems.contains(system), !code.isEmpty else { return nil }
        return (system, code)
    }

    private static func definition(
        _ name: String, _ keyNode: YAMLNode, _ node: YAMLNode, index: Int, _ log: inout DiagnosticLog
    ) -> FactDefinition? {
        guard name.range(of: "^[a-z][a-z0-9]*([-.][a-z0-9]+)*$", options: .regularExpression) != nil else {
            log.error(keyNode.location, "fact name '\(name)' must be lower-case words joined by '-' or '.'")
            return nil
        }
        guard let fields = node.mapping("fact '\(name)'", &log) else { return nil }
        YAMLNode.checkKeys(
            fields, allowed: ["kind", "unit", "values", "description", "codes", "conversions", "plausible"],
            in: "fact '\(name)'", &log)
        func field(_ key: String) -> YAMLNode? { fields.first { $0.key == key }?.value }
        guard let kindNode = field("kind"), let kindText = kindNode.string("kind", &log) else {
            log.error(keyNode.location, "fact '\(name)' needs a kind (\(FactKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        guard let kind = FactKind(rawValue: kindText) else {
            log.error(kindNode.location, "unknown kind '\(kindText)'; expected one of \(FactKind.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        var unit: Unit?
        if let unitNode = field("unit"), let symbol = unitNode.string("unit", &log) {
            unit = UnitTable.unit(symbol)
            if unit == nil { log.error(unitNode.location, "unknown unit '\(symbol)'") }
        }
        if kind == .medication, unit == nil {
            unit = UnitTable.unit("mg/d")
        }
        if let unit, kind == .medication, unit.dimension != .doseRate {
            log.error(field("unit")?.location ?? keyNode.location, "a medication's unit is a daily dose such as mg/d, not \(unit.symbol)")
        }
        var values: [String]?
        if let valuesNode = field("values"), let items = valuesNode.sequence("values", &log) {
            values = items.compactMap { $0.string("a value", &log) }
            if kind != .observation { log.error(valuesNode.location, "only observations have qualitative values") }
            if unit != nil { log.error(valuesNode.location, "a fact has either a unit or qualitative values, not both") }
        }
        if kind == .observation, unit == nil, values == nil {
            log.error(keyNode.location, "observation '\(name)' needs a unit or a list of values")
        }
        var codes: [String] = []
        if let codesNode = field("codes"), let items = codesNode.sequence("codes", &log, allowScalar: true) {
            for item in items {
                guard let text = item.string("a code", &log) else { continue }
                guard let (system, code) = parseCode(text) else {
                    log.error(item.location, "code '\(text)' must be system:code with system one of \(systems.sorted().joined(separator: ", "))")
                    continue
                }
                codes.append("\(system):\(code)")
            }
        }
        var conversions: [AnalyteConversion] = []
        if let node = field("conversions"), let items = node.mapping("conversions", &log) {
            for item in items {
                guard let canonical = unit else {
                    log.error(item.keyNode.location, "conversions need the fact's canonical unit")
                    break
                }
                guard let from = UnitTable.unit(item.key) else {
                    log.error(item.keyNode.location, "unknown unit '\(item.key)'")
                    continue
                }
                if from.dimension == canonical.dimension {
                    log.error(item.keyNode.location, "\(item.key) converts to \(canonical.symbol) by itself; analyte conversions are for other dimensions")
                    continue
                }
                guard let spec = item.value.mapping("conversion", &log) else { continue }
                YAMLNode.checkKeys(spec, allowed: ["multiply", "divide"], in: "conversion", &log)
                let errorsBefore = log.errors.count
                if let m = spec.first(where: { $0.key == "multiply" })?.value.number("multiply", &log), m > 0 {
                    conversions.append(AnalyteConversion(from: from, factor: m, divides: false, divisor: 1))
                } else if let d = spec.first(where: { $0.key == "divide" })?.value.number("divide", &log), d > 0 {
                    conversions.append(AnalyteConversion(from: from, factor: 1 / d, divides: true, divisor: d))
                } else if log.errors.count == errorsBefore {  // a factor that is not a number was reported already
                    log.error(item.value.location, "a conversion needs a positive 'multiply' or 'divide'")
                }
            }
        }
        var plausibility = Plausibility()
        if let node = field("plausible"), let items = node.mapping("plausible", &log) {
            YAMLNode.checkKeys(items, allowed: ["min", "max", "above", "below", "flag_above"], in: "plausible", &log)
            for item in items {
                guard let text = item.value.string(item.key, &log) else { continue }
                guard let limit = limitValue(text, unit: unit, at: item.value, &log) else { continue }
                switch item.key {
                case "min": plausibility.min = limit
                case "max": plausibility.max = limit
                case "above": plausibility.above = limit
                case "below": plausibility.below = limit
                case "flag_above": plausibility.flagAbove = limit
                default: break
                }
            }
        }
        let description = field("description")?.string("description", &log) ?? ""
        return FactDefinition(
            index: index, name: name, identifier: FactDefinition.identifier(for: name), kind: kind, unit: unit,
            values: values, conversions: conversions, plausibility: plausibility, description: description,
            codes: codes, location: keyNode.location)
    }

    /// A limit written as a quantity (`20000 ng/L`) converted to the canonical unit, or a bare number for
    /// facts without a unit.
    private static func limitValue(_ text: String, unit: Unit?, at node: YAMLNode, _ log: inout DiagnosticLog) -> Double? {
        guard let tokens = try? Lexer.tokenize(text), tokens.count == 2 else {
            log.error(node.location, "'\(text)' is not a number or quantity")
            return nil
        }
        switch tokens[0].kind {
        case .number(let value) where unit == nil || value == 0:
            return value
        case .quantity(let value, let written):
            guard let unit, let converted = written.convert(value, to: unit) else {
                log.error(node.location, "'\(text)' is not in the fact's dimension (\(unit?.symbol ?? "no unit"))")
                return nil
            }
            return converted
        default:
            log.error(node.location, "'\(text)' needs a unit (the fact is in \(unit?.symbol ?? "no unit"))")
            return nil
        }
    }
}
