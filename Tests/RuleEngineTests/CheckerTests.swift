import Foundation
import Testing
@testable import RuleEngine

/// Static checks: every diagnostic names file, line and column, and the loader refuses to load on errors.
@Suite struct CheckerTests {
    /// Loads one rule set and returns the diagnostics as `line:column: severity: message`.
    func diagnostics(_ body: String, file: String = "a.yaml", extra: [String: String] = [:]) throws -> (RuleLoader.Result, [String]) {
        let scratch = try Support.ScratchRules([file: Support.header() + "\n" + body].merging(extra) { a, _ in a })
        defer { scratch.remove() }
        let result = scratch.load()
        let lines = result.log.sorted.filter { $0.location.file.hasSuffix(file) }
            .map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message)" }
        return (result, lines)
    }

    @Test func validSetLoads() throws {
        let (result, lines) = try diagnostics("""
            parameters:
              low: {value: 180 ng/L, for: b12.total}
            rules:
              - id: r1
                when: latest(b12.total) < $low
                alert: {category: deficiency, severity: warning, summary: "Low {{latest(b12.total)}}", detail: d, recommendation: r, citations: [SRC]}
            """)
        #expect(result.bundle != nil)
        #expect(lines.isEmpty, "\(lines)")
    }

    @Test func unknownFactWithSuggestionAndCaret() throws {
        let (result, lines) = try diagnostics("""
            rules:
              - id: r1
                when: latest(b12.totl) < 180 ng/L
                alert: {category: deficiency, severity: warning, summary: s, detail: d, recommendation: r, citations: [SRC]}
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["11:18: error: unknown fact 'b12.totl' (did you mean 'b12.total'?)"])
        let rendered = result.log.errors[0].description
        #expect(rendered.contains("    when: latest(b12.totl) < 180 ng/L\n                 ^"))
    }

    @Test func unitDimensionMismatch() throws {
        let (_, lines) = try diagnostics("""
            rules:
              - id: r1
                when: latest(b12.total) < 1 mg
                citations: [SRC]
                alert: {category: deficiency, severity: warning, summary: s, detail: d, recommendation: r}
            """)
        #expect(lines == ["11:31: error: unit mismatch: cannot compare quantity (mass concentration) with quantity (mass)"])
    }

    /// A product of many quantities once overflowed the dimension's exponents and stopped the process (the daemon
    /// at every reload and start while the file was there); it is a load error at the product.
    @Test func aProductWhoseUnitExponentsRunAwayIsAnError() throws {
        let product = Array(repeating: "latest(b12.total)", count: 44).joined(separator: " * ")
        let (result, lines) = try diagnostics("""
            rules:
              - id: r1
                when: \(product) > 1
                citations: [SRC]
                alert: {category: deficiency, severity: warning, summary: s, detail: d, recommendation: r}
            """)
        #expect(result.bundle == nil)
        #expect(lines.count == 1 && lines[0].hasPrefix("11:") && lines[0].contains("exponent beyond ±12"), "\(lines)")
    }

    @Test func plainNumberAgainstQuantity() throws {
        let (_, lines) = try diagnostics("""
            rules:
              - id: r1
                when: latest(hb) < 105
                citations: [SRC]
                alert: {category: anaemia, severity: warning, summary: s, detail: d, recommendation: r}
            """)
        #expect(lines.first?.hasPrefix("11:24: error: cannot compare quantity (mass concentration) with a plain number") == true)
    }

    @Test func typeMismatchAndEnumValues() throws {
        let (_, lines) = try diagnostics("""
            rules:
              - id: r1
                when: diet == "vegetable"
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
              - id: r2
                when: latest(hb)
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """)
        #expect(lines == [
            "11:19: error: 'vegetable' is never a value here; expected one of vegan, vegetarian, omnivore",
            "15:11: error: a condition must be true or false, but this expression is quantity (mass concentration)",
        ])
    }

    @Test func unknownFunctionAndFilter() throws {
        let (_, lines) = try diagnostics("""
            rules:
              - id: r1
                when: lastest(hb) < 100 g/L
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
              - id: r2
                when: |
                  exists(hb, withn: 90 d)
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """)
        #expect(lines == [
            "11:11: error: unknown function 'lastest' (did you mean 'latest'?)",
            "16:18: error: unknown filter 'withn:' (did you mean 'within'?); filters are since, before, within, route, min_dose, after",
        ])
    }

    @Test func duplicateRuleIDAcrossFiles() throws {
        let rule = """
            rules:
              - id: same
                when: exists(paraesthesia)
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """
        let scratch = try Support.ScratchRules([
            "a.yaml": Support.header(id: "set.a") + "\n" + rule, "b.yaml": Support.header(id: "set.b") + "\n" + rule,
        ])
        defer { scratch.remove() }
        let result = scratch.load()
        #expect(result.bundle == nil)
        let error = try #require(result.log.errors.first)
        #expect(error.location.file.hasSuffix("b.yaml") && error.location.line == 10 && error.location.column == 9, "\(error)")
        #expect(error.message.hasPrefix("duplicate rule id 'same' (also at"))
    }

    @Test func cycleNamesTheRules() throws {
        let (result, lines) = try diagnostics("""
            derive:
              x: {type: bool}
              y: {type: bool}
            rules:
              - id: makes-x
                when: y
                set: {x: "true"}
                citations: [SRC]
              - id: makes-y
                when: x
                set: {y: "true"}
                citations: [SRC]
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["13:9: error: rules depend on each other in a cycle: makes-x → makes-y → makes-x"])
    }

    /// A rule that merely reads a fact set inside a cycle (declared before the cycle) is not part of it: the error
    /// must name the rules of the cycle, at the first of them — not "reads-x → reads-x".
    @Test func cycleNamesTheRulesEvenWithAReaderDeclaredFirst() throws {
        let (result, lines) = try diagnostics("""
            derive:
              x: {type: bool}
              y: {type: bool}
              z: {type: bool}
            rules:
              - id: reads-x
                when: x
                set: {z: "true"}
                citations: [SRC]
              - id: makes-x
                when: y
                set: {x: "true"}
                citations: [SRC]
              - id: makes-y
                when: x
                set: {y: "true"}
                citations: [SRC]
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["18:9: error: rules depend on each other in a cycle: makes-x → makes-y → makes-x"])
    }

    @Test func aRuleReadingTheFactItSetsIsNamed() throws {
        let (result, lines) = try diagnostics("""
            derive:
              x: {type: bool}
            rules:
              - id: loops
                when: x
                set: {x: "true"}
                citations: [SRC]
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["12:9: error: rule 'loops' reads x, which it sets itself"])
    }

    @Test func missingCitationIsAnErrorInProductionAndAWarningInDraft() throws {
        let body = """
            rules:
              - id: r1
                when: exists(paraesthesia)
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """
        let (production, lines) = try diagnostics(body)
        #expect(production.bundle == nil)
        #expect(lines == ["10:9: error: rule 'r1' has no citation; every rule must be traceable to its source"])
        let scratch = try Support.ScratchRules(["a.yaml": Support.header(status: "draft") + "\n" + body])
        defer { scratch.remove() }
        let draft = scratch.load()
        #expect(draft.bundle != nil)
        #expect(draft.log.warnings.map(\.message) == [
            "rule set 'test.set' is a draft: it runs in shadow (evaluated, never published); set status: production to publish its alerts",
            "rule 'r1' has no citation; every rule must be traceable to its source",
        ])
    }

    @Test func unusedParameterAndUnknownCitationAndUnreachableRule() throws {
        let (result, lines) = try diagnostics("""
            parameters:
              spare: 3
            derive:
              x: {values: [a, b]}
            rules:
              - id: always
                when: "true"
                set: {x: a}
                citations: [SRC]
              - id: never
                when: exists(numbness)
                set: {x: b}
                citations: [SRC]
              - id: miscited
                when: exists(numbness)
                citations: [NOPE]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """)
        #expect(result.bundle == nil)
        #expect(lines == [
            "10:3: warning: parameter 'spare' is never used",
            "18:9: warning: rule 'never' is unreachable: 'always' always sets x first",
            "24:17: error: unknown citation 'NOPE'; declare it under ruleset.citations",
        ])
    }

    @Test func yamlSyntaxErrorsHavePositions() throws {
        let (result, lines) = try diagnostics("""
            rules:
              - id: r1
                when: latest(b12.total, since: now) < 180 ng/L
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["11:34: error: YAML syntax: mapping values are not allowed in this context (a value containing ': ', such as a condition with named filters, must be quoted or a block: write `when: |` and the expression on the next line)"])
    }


    /// A key written twice in one mapping is an error at its second appearance, naming the key — whether written plainly or
    /// quoted, and whatever the text looks like (`1` and `'1'`, `yes` and `"yes"` are the same key to a reader of
    /// the file, and to the loader, which reads every key as text).
    @Test func duplicateKeysAreErrors() throws {
        let (result, lines) = try diagnostics("""
            rules:
              - id: r1
                when: exists(numbness)
                when: exists(fatigue)
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["12:5: error: duplicate key when in mapping (also at line 11)"])
        // Whichever of the two libyaml marks, the later is reported and the earlier named: in a list item's mapping
        // (the first key on the dash's line), at the top level, and with the next item's same key below left alone.
        let cases: [(String, String)] = [
            ("""
            rules:
              - id: r1
                when: exists(numbness)
                id: r2
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
              - id: r3
                when: exists(fatigue)
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """, "12:5: error: duplicate key id in mapping (also at line 10)"),
            ("""
            parameters:
              low: {value: 180 ng/L, for: b12.total}
            # a comment between
            parameters:
              high: {value: 190 ng/L, for: b12.total}
            """, "12:1: error: duplicate key parameters in mapping (also at line 9)"),
        ]
        for (body, expected) in cases {
            let (result, lines) = try diagnostics(body)
            #expect(result.bundle == nil)
            #expect(lines == [expected])
        }
        // Three times: the last, naming the others. With CRLF line ends (CR LF is one Swift Character, so splitting
        // on "\n" saw one line, and every error in such a file was put on line 1). In a flow mapping: the plain message
        // at the key libyaml marks, with no guess at the other.
        let more: [(String, String)] = [
            ("rules:\n  - id: r1\n    when: exists(numbness)\n    citations: [SRC]\n    when: exists(fatigue)\n    when: exists(pallor)\n",
             "14:5: error: duplicate key when in mapping (also at lines 11, 13)"),
            ("parameters:\r\n  low: {value: 180 ng/L, for: b12.total}\r\n  # a comment\r\n  low: {value: 190 ng/L, for: b12.total}\r\n",
             "12:3: error: duplicate key low in mapping (also at line 10)"),
            ("parameters:\n  low: {value: 180 ng/L, value: 190 ng/L, for: b12.total}\n",
             "10:9: error: duplicate key value in mapping"),
        ]
        for (body, expected) in more {
            let (result, lines) = try diagnostics(body)
            #expect(result.bundle == nil)
            #expect(lines == [expected], "\(body.debugDescription)")
        }
        // Any error in a CRLF file is on its own line, not clamped to the first.
        let (_, crlf) = try diagnostics("parameters:\r\n  low: {value: 180 ng/L, for: b12.total}\r\nrules:\r\n  - id: r1\r\n    when: [unclosed\r\n")
        #expect(crlf.first?.hasPrefix("13:20: error: YAML syntax") == true, "\(crlf)")
        for (first, second) in [("1", "'1'"), ("yes", "\"yes\""), ("null", "'null'"), ("2026-01-01", "\"2026-01-01\"")] {
            let (result, lines) = try diagnostics("""
                parameters:
                  \(first): {value: 180 ng/L, for: b12.total}
                  \(second): {value: 190 ng/L, for: b12.total}
                """)
            #expect(result.bundle == nil)
            #expect(lines.first?.hasPrefix("11:3: error: duplicate key") == true, "\(first) and \(second): \(lines)")
            // Spelt the same, the first is named too.
            if second == "'1'" { #expect(lines == ["11:3: error: duplicate key 1 in mapping (also at line 10)"]) }
        }
    }
    @Test func unknownKeysAreErrorsWithSuggestions() throws {
        let (_, lines) = try diagnostics("""
            rules:
              - id: r1
                when: exists(numbness)
                citations: [SRC]
                alert: {category: note, severty: info, summary: s, detail: d, recommendation: r}
            """)
        #expect(lines.first == "13:29: error: unknown key 'severty' in an alert (did you mean 'severity'?); expected one of category, severity, summary, detail, recommendation, citations")
    }

    @Test func derivedValuesAndOwnership() throws {
        let scratch = try Support.ScratchRules([
            "a.yaml": Support.header(id: "set.a") + """

                derive:
                  status: {values: [low, high]}
                rules:
                  - id: a1
                    when: exists(numbness)
                    set: {status: lo}
                    citations: [SRC]
                """,
            "b.yaml": Support.header(id: "set.b") + """

                rules:
                  - id: b1
                    when: exists(numbness)
                    set: {status: high}
                    citations: [SRC]
                """,
        ])
        defer { scratch.remove() }
        let messages = scratch.load().log.errors.map { "\($0.location.file.split(separator: "/").last!):\($0.location.line):\($0.location.column): \($0.message)" }
        #expect(messages == [
            "a.yaml:14:19: 'lo' is not a value of status (did you mean 'low'?); expected one of low, high",
            "b.yaml:12:11: 'status' belongs to rule set 'set.a'; only its own rules may set it",
        ])
    }

    @Test func summaryMustBeShort() throws {
        let long = String(repeating: "x", count: 150)
        let (_, lines) = try diagnostics("""
            rules:
              - id: r1
                when: exists(numbness)
                citations: [SRC]
                alert: {category: note, severity: info, summary: \(long), detail: d, recommendation: r}
            """)
        #expect(lines == ["13:54: error: summary is 150 characters; it must be under 140"])
    }

    @Test func retiredSetsAreSkippedAndReviewDatesWarn() throws {
        let rule = "\nrules:\n  - id: r1\n    when: exists(numbness)\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"
        let old = Support.header(id: "old").replacingOccurrences(of: "2027-01-01", with: "2026-01-01")
        let scratch = try Support.ScratchRules([
            "a.yaml": old + rule,
            "b.yaml": Support.header(id: "gone", status: "retired") + rule.replacingOccurrences(of: "r1", with: "r2"),
        ])
        defer { scratch.remove() }
        let result = scratch.load()
        let bundle = try #require(result.bundle)
        #expect(bundle.rules.map(\.id) == ["r1"])
        #expect(result.log.warnings.map(\.message) == [
            "rule set 'old' was due for clinical review on 2026-01-01",
            "rule set 'gone' is retired and is not loaded",
        ])
    }

    @Test func profileOverridesAreCheckedAndApplied() throws {
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + """

            parameters:
              low: {value: 180 ng/L, for: b12.total}
            rules:
              - id: r1
                when: latest(b12.total) < $low
                citations: [SRC]
                alert: {category: deficiency, severity: warning, summary: s, detail: d, recommendation: r}
            """])
        defer { scratch.remove() }
        let profile = scratch.path + "/site.yaml"
        try "profile: {id: site-a}\nparameters:\n  low: 110 pmol/L\n".write(toFile: profile, atomically: true, encoding: .utf8)
        let bundle = try #require(scratch.load(profile: profile).bundle)
        let low = try #require(bundle.parameters.first { $0.name == "low" })
        #expect(low.value == .quantity(149.05, UnitTable.unit("ng/L")!))
        #expect(low.overriddenBy == "site-a")

        try "profile: {id: site-b}\nparameters:\n  lo: 150 ng/L\n  low: 3 mg\n".write(toFile: profile, atomically: true, encoding: .utf8)
        let bad = scratch.load(profile: profile)
        #expect(bad.bundle == nil)
        #expect(bad.log.errors.map { "\($0.location.line):\($0.location.column): \($0.message)" } == [
            "3:3: the profile overrides unknown parameter 'lo' (did you mean 'low'?)",
            "4:8: mg cannot be converted to ng/L for b12.total",
        ])
    }

    /// An empty profile file (truncated by a deploy, or being written) applied no overrides and no profile, without a
    /// word: the site's thresholds silently reverted to the product defaults, also on a hot reload.
    @Test func anEmptyProfileIsAnError() throws {
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + "\nparameters:\n  low: {value: 180 ng/L, for: b12.total}\nrules:\n  - id: r\n    when: latest(b12.total) < $low\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"])
        defer { scratch.remove() }
        let profile = scratch.path + "/site.yaml"
        try "".write(toFile: profile, atomically: true, encoding: .utf8)
        let result = scratch.load(profile: profile)
        #expect(result.bundle == nil, "an empty profile loaded as no profile")
        #expect(result.log.errors.contains { $0.location.file == profile })
    }

    /// Unknown keys anywhere are errors (docs/rule-language.md) — also in a profile's `profile:` mapping.
    @Test func unknownKeysInAProfileAreErrors() throws {
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + "\nparameters:\n  low: {value: 180 ng/L, for: b12.total}\nrules:\n  - id: r\n    when: latest(b12.total) < $low\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"])
        defer { scratch.remove() }
        let profile = scratch.path + "/site.yaml"
        try "profile: {id: site-a, descripton: typo}\nparameters:\n  low: 150 ng/L\n".write(toFile: profile, atomically: true, encoding: .utf8)
        #expect(scratch.load(profile: profile).bundle == nil)
    }

    /// A rule file saved with CRLF line ends: an expression error must still point at its line and column (it fell
    /// back to the `when: |` line, because the file was split on "\n" and "\r\n" is one Swift Character).
    @Test func expressionErrorsInCRLFFilesKeepTheirPosition() throws {
        let body = "rules:\n  - id: r\n    when: |\n      exists(numbness)\n        and bogus\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"
        let text = (Support.header() + "\n" + body).replacingOccurrences(of: "\n", with: "\r\n")
        let scratch = try Support.ScratchRules(["a.yaml": text])
        defer { scratch.remove() }
        let error = try #require(scratch.load().log.errors.first)
        #expect(error.message == "unknown name 'bogus'")
        #expect((error.location.line, error.location.column) == (13, 13), "\(error.location)")
    }

    /// Every line end libyaml counts (LF, CR LF, a lone CR, NEL, LS, PS): the error shows its own source line under
    /// the headline, with the caret at the column (the printer split on LF alone, so a file with lone CRs showed the
    /// whole file as one line, and NEL, LS or PS files the wrong line).
    @Test func theOffendingLineIsShownWhateverTheLineEnds() throws {
        let body = "rules:\n  - id: r\n    when: |\n      exists(numbness)\n        and bogus\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"
        for end in ["\n", "\r\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            let text = (Support.header() + "\n" + body).replacingOccurrences(of: "\n", with: end)
            let scratch = try Support.ScratchRules(["a.yaml": text])
            defer { scratch.remove() }
            let error = try #require(scratch.load().log.errors.first, "\(end.debugDescription)")
            #expect((error.location.line, error.location.column) == (13, 13), "\(end.debugDescription): \(error.location)")
            #expect(error.sourceLine == "        and bogus", "\(end.debugDescription)")
            #expect(error.description.hasSuffix("\n        and bogus\n            ^"), "\(end.debugDescription): \(error)")
        }
    }

    /// The same files give the same hash whatever the directory is called or how its path is spelt: the hash
    /// identifies the rules (alerts, `reload --expect`, the start-up re-evaluation check), not where they were read.
    @Test func theHashDoesNotDependOnTheDirectoryPath() throws {
        let scratch = try Support.ScratchRules(["a.yaml": Support.header() + "\nrules:\n  - id: r\n    when: exists(numbness)\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"])
        defer { scratch.remove() }
        let a = try #require(scratch.load().bundle?.hash)
        let b = try #require(RuleLoader(today: Support.today).load(directory: scratch.path + "/../" + URL(fileURLWithPath: scratch.path).lastPathComponent).bundle?.hash)
        #expect(a == b)
    }

    /// A rule set must say its status: a missing one is refused at the rule set's header, not guessed (the docs
    /// said it would be a draft).
    @Test func aRuleSetWithoutStatusIsRefusedAtItsHeader() throws {
        let header = Support.header().replacingOccurrences(of: "  status: production\n", with: "")
        let scratch = try Support.ScratchRules(["a.yaml": header + "\nrules:\n  - id: r\n    when: exists(numbness)\n    citations: [SRC]\n    alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}\n"])
        defer { scratch.remove() }
        let result = scratch.load()
        #expect(result.bundle == nil)
        #expect(result.log.errors.map { "\($0.location.line):\($0.location.column): \($0.message)" } == ["2:3: ruleset needs 'status'"])
    }

    /// A plain (or double-quoted) condition continued on the next line, which YAML allows: the error must point at
    /// `bogus` on its own line, not past the end of the first line (11:32 here, a caret under nothing).
    @Test func errorsInMultiLinePlainConditionsPointAtTheirLine() throws {
        let (result, lines) = try diagnostics("""
            rules:
              - id: r1
                when: exists(numbness)
                  and bogus
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["12:11: error: unknown name 'bogus'"])
    }

    /// Quoted conditions whose source is longer than their value in ways the locator does not foresee: an escape
    /// longer than two characters (`\u00e9`, `\U0001F600`, `\x41`), an escaped line break in a double-quoted scalar,
    /// and a doubled quote (`''`) in a single-quoted one — the usual way to write a text literal there. Each error
    /// must point at `bogus`; after the escape the walk stopped and offsets ran on from its start (11:27 for 11:36,
    /// 11:33 for 12:11, 11:48 for 11:52).
    @Test(arguments: [
        (#"    when: "'\U0001F600' == 'a' and bogus""#, "11:36"),
        (#"    when: "'\u00e9' == 'a' and bogus""#, "11:32"),
        (#"    when: "'\x41' == 'a' and bogus""#, "11:30"),
        ("    when: \"exists(numbness) \\\n      and bogus\"", "12:11"),
        ("    when: 'exists(numbness) and ''a'' == ''a'' and bogus'", "11:52"),
    ])
    func errorsAfterEscapesInQuotedConditionsPointAtTheirToken(_ when: String, _ expected: String) throws {
        let (result, lines) = try diagnostics("""
            rules:
              - id: r1
            \(when)
                citations: [SRC]
                alert: {category: note, severity: info, summary: s, detail: d, recommendation: r}
            """)
        #expect(result.bundle == nil)
        #expect(lines == ["\(expected): error: unknown name 'bogus'"], "\(when)")
    }

    @Test func bundledRulesLoadWithoutDiagnostics() {
        let result = RuleLoader(today: Support.today).load(directory: Support.rulesDirectory)
        #expect(result.bundle != nil)
        #expect(result.log.diagnostics.isEmpty, "\(result.log.sorted.map(\.description))")
    }
}
