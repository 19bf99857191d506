/// A rule-set file as read, before compilation: metadata, citations, parameters, derived facts and rules,
/// each with the YAML nodes needed to point diagnostics at the right line and column.
struct RuleSetFile {
    struct RawParameter {
        var name: String
        var valueText: String
        var valueNode: YAMLNode
        var productDefault: Bool
        var factName: (String, YAMLNode)?
        var description: String
        var keyNode: YAMLNode
    }

    struct RawDerived {
        var name: String
        var type: ValueType
        var defaultText: (String, YAMLNode)?
        var publish: Bool
        var description: String
        var keyNode: YAMLNode
    }

    struct RawAlert {
        var category: (String, YAMLNode)?
        var severity: (String, YAMLNode)?
        var summary: (String, YAMLNode)?
        var detail: (String, YAMLNode)?
        var recommendation: (String, YAMLNode)?
        var citations: [(String, YAMLNode)]
        var node: YAMLNode
    }

    struct RawRule {
        var id: String
        var idNode: YAMLNode
        var description: String
        var status: RuleSetInfo.Status?
        var when: (String, YAMLNode)?
        var sets: [(name: String, keyNode: YAMLNode, value: String, valueNode: YAMLNode)]
        var alert: RawAlert?
        var citations: [(String, YAMLNode)]
        var node: YAMLNode
    }

    var info: RuleSetInfo
    var metaNode: YAMLNode
    var reviewByNode: YAMLNode?
    var parameters: [RawParameter] = []
    var derived: [RawDerived] = []
    var rules: [RawRule] = []
    var source: String
    /// The file's lines, for mapping expression offsets to columns (only needed when there is an error): split
    /// once, at the first error. (Split again for every error, 5,000 faulty rules took seconds to report.)
    var sourceLines: [[Unicode.Scalar]] { lineCache.lines(of: source) }
    private let lineCache = LineCache()

    private final class LineCache {
        private var lines: [[Unicode.Scalar]]?

        /// Split as libyaml counts lines (``SourceLines/split(_:)``): its marks index them.
        func lines(of source: String) -> [[Unicode.Scalar]] {
            if let lines { return lines }
            let split = YAMLSource.lines(of: source)
            lines = split
            return split
        }
    }

    /// Reads the structure of a rule-set file. Returns `nil` when the file is unusable.
    static func read(_ source: YAMLSource, _ log: inout DiagnosticLog) -> RuleSetFile? {
        guard let rootNode = source.root else { return nil }
        let root = YAMLNode(rootNode, file: source.path)
        guard let entries = root.mapping("a rule-set file", &log) else { return nil }
        YAMLNode.checkKeys(entries, allowed: ["ruleset", "parameters", "derive", "rules"], in: "a rule-set file", &log)
        func entry(_ key: String) -> YAMLNode? { entries.first { $0.key == key }?.value }
        guard let metaNode = entry("ruleset"), let meta = metaNode.mapping("ruleset", &log) else {
            log.error(root.location, "a rule-set file starts with a 'ruleset' mapping (id, version, owner, status, review_by, citations)")
            return nil
        }
        YAMLNode.checkKeys(meta, allowed: ["id", "version", "owner", "status", "review_by", "citations", "description"], in: "ruleset", &log)
        func field(_ key: String) -> YAMLNode? { meta.first { $0.key == key }?.value }
        func required(_ key: String) -> String? {
            guard let node = field(key) else {
                log.error(metaNode.location, "ruleset needs '\(key)'")
                return nil
            }
            return node.string(key, &log)
        }
        let id = required("id") ?? ""
        let version = required("version") ?? ""
        let owner = required("owner") ?? ""
        var status = RuleSetInfo.Status.draft
        if let text = required("status") {
            if let parsed = RuleSetInfo.Status(rawValue: text) { status = parsed } else {
                log.error(field("status")!.location, "unknown status '\(text)'; expected draft, testing, production or retired")
            }
        }
        var reviewBy: Double?
        if let node = field("review_by"), let text = node.string("review_by", &log) {
            reviewBy = Timestamp.parse(text)
            if reviewBy == nil { log.error(node.location, "review_by must be a date such as 2027-11-01") }
        } else {
            log.error(metaNode.location, "ruleset needs 'review_by' (the date its clinical owner must review it)")
        }
        var citations: [String: String] = [:]
        if let node = field("citations"), let items = node.mapping("citations", &log) {
            for item in items { citations[item.key] = item.value.string("citation", &log) }
        }
        let info = RuleSetInfo(
            id: id, version: version, owner: owner, status: status, reviewBy: reviewBy, citations: citations,
            file: source.path, description: field("description")?.scalar ?? "", ruleCount: 0)
        var file = RuleSetFile(
            info: info, metaNode: metaNode, reviewByNode: field("review_by"),
            source: source.text)
        if let node = entry("parameters"), let items = node.mapping("parameters", &log) {
            for item in items { file.readParameter(item.key, item.keyNode, item.value, &log) }
        }
        if let node = entry("derive"), let items = node.mapping("derive", &log) {
            for item in items { file.readDerived(item.key, item.keyNode, item.value, &log) }
        }
        if let node = entry("rules"), let items = node.sequence("rules", &log) {
            for item in items { file.readRule(item, &log) }
        } else if entry("rules") == nil {
            log.error(root.location, "a rule-set file needs a 'rules' list")
        }
        file.info.ruleCount = file.rules.count
        return file
    }

    private mutating func readParameter(_ name: String, _ keyNode: YAMLNode, _ node: YAMLNode, _ log: inout DiagnosticLog) {
        if node.scalar != nil {
            parameters.append(RawParameter(name: name, valueText: node.scalar!, valueNode: node, productDefault: false, factName: nil, description: "", keyNode: keyNode))
            return
        }
        guard let fields = node.mapping("parameter '\(name)'", &log) else { return }
        YAMLNode.checkKeys(fields, allowed: ["value", "product_default", "for", "description"], in: "parameter '\(name)'", &log)
        func field(_ key: String) -> YAMLNode? { fields.first { $0.key == key }?.value }
        guard let valueNode = field("value"), let value = valueNode.string("value", &log) else {
            log.error(keyNode.location, "parameter '\(name)' needs a value")
            return
        }
        let productDefault = field("product_default").flatMap { $0.bool("product_default", &log) } ?? false
        let fact = field("for").flatMap { n in n.string("for", &log).map { ($0, n) } }
        parameters.append(RawParameter(
            name: name, valueText: value, valueNode: valueNode, productDefault: productDefault, factName: fact,
            description: field("description")?.scalar ?? "", keyNode: keyNode))
    }

    private mutating func readDerived(_ name: String, _ keyNode: YAMLNode, _ node: YAMLNode, _ log: inout DiagnosticLog) {
        guard let fields = node.mapping("derived fact '\(name)'", &log) else { return }
        YAMLNode.checkKeys(fields, allowed: ["values", "type", "unit", "default", "publish", "description"], in: "derived fact '\(name)'", &log)
        func field(_ key: String) -> YAMLNode? { fields.first { $0.key == key }?.value }
        var type: ValueType?
        if let valuesNode = field("values"), let items = valuesNode.sequence("values", &log) {
            type = .text(values: items.compactMap { $0.string("a value", &log) })
        } else if let typeNode = field("type"), let text = typeNode.string("type", &log) {
            switch text {
            case "bool": type = .bool
            case "number": type = .number
            case "text": type = .text(values: nil)
            case "time": type = .time
            case "quantity":
                if let unitNode = field("unit"), let symbol = unitNode.string("unit", &log) {
                    if let unit = UnitTable.unit(symbol) { type = .quantity(unit.dimension) } else {
                        log.error(unitNode.location, "unknown unit '\(symbol)'")
                    }
                } else {
                    log.error(typeNode.location, "a quantity needs a 'unit' (e.g. ng/L)")
                }
            default:
                log.error(typeNode.location, "unknown type '\(text)'; expected bool, number, text, time or quantity")
            }
        } else {
            log.error(keyNode.location, "derived fact '\(name)' needs 'values' (a list) or a 'type'")
        }
        guard let type else { return }
        derived.append(RawDerived(
            name: name, type: type, defaultText: field("default").flatMap { n in n.scalar.map { ($0, n) } },
            publish: field("publish").flatMap { $0.bool("publish", &log) } ?? false,
            description: field("description")?.scalar ?? "", keyNode: keyNode))
    }

    private mutating func readRule(_ node: YAMLNode, _ log: inout DiagnosticLog) {
        guard let fields = node.mapping("a rule", &log) else { return }
        YAMLNode.checkKeys(fields, allowed: ["id", "description", "status", "when", "set", "alert", "citations"], in: "a rule", &log)
        func field(_ key: String) -> YAMLNode? { fields.first { $0.key == key }?.value }
        guard let idNode = field("id"), let id = idNode.string("id", &log), !id.isEmpty else {
            log.error(node.location, "a rule needs an 'id'")
            return
        }
        var status: RuleSetInfo.Status?
        if let statusNode = field("status"), let text = statusNode.string("status", &log) {
            status = RuleSetInfo.Status(rawValue: text)
            if status == nil { log.error(statusNode.location, "unknown status '\(text)'") }
        }
        let when = field("when").flatMap { n in n.string("when", &log).map { ($0, n) } }
        if when == nil { log.error(node.location, "rule '\(id)' needs a 'when' condition") }
        var sets: [(String, YAMLNode, String, YAMLNode)] = []
        if let setNode = field("set"), let items = setNode.mapping("set", &log) {
            for item in items {
                guard let value = item.value.string("the value of \(item.key)", &log) else { continue }
                sets.append((item.key, item.keyNode, value, item.value))
            }
        }
        var alert: RawAlert?
        if let alertNode = field("alert"), let items = alertNode.mapping("alert", &log) {
            YAMLNode.checkKeys(items, allowed: ["category", "severity", "summary", "detail", "recommendation", "citations"], in: "an alert", &log)
            func text(_ key: String) -> (String, YAMLNode)? {
                items.first { $0.key == key }.flatMap { item in item.value.string(key, &log).map { ($0, item.value) } }
            }
            alert = RawAlert(
                category: text("category"), severity: text("severity"), summary: text("summary"), detail: text("detail"),
                recommendation: text("recommendation"),
                citations: Self.citationList(items.first { $0.key == "citations" }?.value, &log), node: alertNode)
        }
        if sets.isEmpty, alert == nil {
            log.error(node.location, "rule '\(id)' neither sets a fact nor raises an alert")
        }
        rules.append(RawRule(
            id: id, idNode: idNode, description: field("description")?.scalar ?? "", status: status, when: when,
            sets: sets, alert: alert, citations: Self.citationList(field("citations"), &log), node: node))
    }

    private static func citationList(_ node: YAMLNode?, _ log: inout DiagnosticLog) -> [(String, YAMLNode)] {
        guard let node, let items = node.sequence("citations", &log, allowScalar: true) else { return [] }
        return items.compactMap { item in item.string("a citation", &log).map { ($0, item) } }
    }
}
