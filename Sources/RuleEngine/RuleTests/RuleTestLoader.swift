import Foundation

/// Reads rule-test files (`tests/*.yaml` beside the rule sets).
///
/// ```yaml
/// tests:
///   - name: C03 unit trap, 150 pmol/L while breastfeeding
///     at: 2026-11-20T10:00:00Z          # optional; default: the last event's time
///     events:                             # event JSON written as YAML; id, patient, clinic are filled in
///       - time: 2026-11-20T09:00:00Z
///         pregnancy: {status: postpartum, delivery_date: 2026-09-11, breastfeeding: true}
///         observations: [{code: b12.total, value: 150, unit: pmol/L}]
///     expect:
///       decisions: {b12.status: borderline, b12.route: defer}
///       alerts: [monitoring, {category: data-quality, severity: warning, text: ["unit missing"]}]
///       absent: [folate-masking, neuro-urgent]
///       fired: [route.recommendation, monitoring.confirmatory-test]   # optional: exactly these rules' alerts
/// ```
package enum RuleTestLoader {
    /// Loads a rule-test file, or every one in a directory.
    package static func load(path: String, log: inout DiagnosticLog) -> [RuleTest] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            log.error(SourceLocation(file: path, line: 1, column: 1), "no such rule-test file or directory")
            return []
        }
        return isDirectory.boolValue ? load(directory: path, log: &log) : load(source: YAMLSource.read(path: path, display: path, log: &log), log: &log)
    }

    /// Loads every `*.yaml` file in `directory` (sorted); problems are diagnostics with positions.
    package static func load(directory: String, log: inout DiagnosticLog) -> [RuleTest] {
        let names = RuleLoader.yamlFiles(in: directory)
        var tests: [RuleTest] = []
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            tests += load(source: YAMLSource.read(path: path, display: path, log: &log), log: &log)
        }
        return tests
    }

    static func load(source: YAMLSource, log: inout DiagnosticLog) -> [RuleTest] {
        guard let root = source.root else { return [] }
        let file = YAMLNode(root, file: source.path)
        guard let entries = file.mapping("a rule-test file", &log) else { return [] }
        YAMLNode.checkKeys(entries, allowed: ["tests"], in: "a rule-test file", &log)
        guard let list = entries.first(where: { $0.key == "tests" })?.value.sequence("tests", &log) else {
            log.error(file.location, "a rule-test file needs a 'tests' list")
            return []
        }
        var tests: [RuleTest] = []
        var names: Set<String> = []
        for node in list {
            guard let test = test(node, &log) else { continue }
            if !names.insert(test.name).inserted { log.error(node.location, "duplicate test name '\(test.name)'") }
            tests.append(test)
        }
        return tests
    }

    private static func test(_ node: YAMLNode, _ log: inout DiagnosticLog) -> RuleTest? {
        guard let fields = node.mapping("a test", &log) else { return nil }
        YAMLNode.checkKeys(fields, allowed: ["name", "description", "at", "patient", "clinic", "events", "expect"], in: "a test", &log)
        func field(_ key: String) -> YAMLNode? { fields.first { $0.key == key }?.value }
        guard let name = field("name")?.string("name", &log) else {
            log.error(node.location, "a test needs a 'name'")
            return nil
        }
        var at: Double?
        if let atNode = field("at"), let text = atNode.string("at", &log) {
            at = Timestamp.parse(text)
            if at == nil { log.error(atNode.location, "'at' must be an RFC 3339 time") }
        }
        let patient = field("patient")?.string("patient", &log) ?? "test-patient"
        let clinic = field("clinic")?.string("clinic", &log) ?? "test-clinic"
        var events: [PatientEvent] = []
        if let list = field("events")?.sequence("events", &log) {
            for (i, eventNode) in list.enumerated() {
                guard case .object(var object)? = eventNode.json(&log) else {
                    log.error(eventNode.location, "an event must be a mapping")
                    continue
                }
                object["id"] = object["id"] ?? .string("\(name)#\(i + 1)")
                object["patient"] = object["patient"] ?? .string(patient)
                object["clinic"] = object["clinic"] ?? .string(clinic)
                do {
                    events.append(try EventDecoder.decode(.object(object)))
                } catch {
                    for e in error.errors { log.error(eventNode.location, "event \(i + 1): \(e.path): \(e.message)") }
                }
            }
        } else {
            log.error(node.location, "test '\(name)' needs 'events'")
        }
        var decisions: [(String, String)] = []
        var alerts: [RuleTest.AlertExpectation] = []
        var absent: [String] = []
        var fired: [String]?
        if let expectNode = field("expect"), let expect = expectNode.mapping("expect", &log) {
            YAMLNode.checkKeys(expect, allowed: ["decisions", "alerts", "absent", "fired"], in: "expect", &log)
            for item in expect {
                switch item.key {
                case "decisions":
                    for d in item.value.mapping("decisions", &log) ?? [] {
                        if let v = d.value.string("a decision", &log) { decisions.append((d.key, v)) }
                    }
                case "alerts":
                    for a in item.value.sequence("alerts", &log) ?? [] {
                        if let text = a.scalar {
                            alerts.append(.init(match: text, severity: nil, text: []))
                        } else if let spec = a.mapping("an expected alert", &log) {
                            YAMLNode.checkKeys(spec, allowed: ["match", "severity", "text"], in: "an expected alert", &log)
                            guard let match = spec.first(where: { $0.key == "match" })?.value.string("match", &log) else {
                                log.error(a.location, "an expected alert needs 'match' (a rule id or category)")
                                continue
                            }
                            let severity = spec.first { $0.key == "severity" }?.value.string("severity", &log)
                            let texts = spec.first { $0.key == "text" }?.value.sequence("text", &log, allowScalar: true)?
                                .compactMap { $0.string("text", &log) } ?? []
                            alerts.append(.init(match: match, severity: severity, text: texts))
                        }
                    }
                case "absent":
                    absent = (item.value.sequence("absent", &log, allowScalar: true) ?? []).compactMap { $0.string("absent", &log) }
                case "fired":
                    fired = (item.value.sequence("fired", &log) ?? []).compactMap { $0.string("fired", &log) }
                default: break
                }
            }
        } else {
            log.error(node.location, "test '\(name)' needs 'expect'")
        }
        return RuleTest(
            name: name, location: node.location, at: at, events: events, decisions: decisions, alerts: alerts, absent: absent, fired: fired)
    }
}
