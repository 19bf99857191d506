import Testing
@testable import RuleEngine

/// The vocabulary covers every name of the event interface (INTERFACES §1) and every code of the clinical
/// reference (§2). The lists are copied here so the tests do not depend on files outside the project.
@Suite struct VocabularyCoverageTests {
    static let names: [(String, FactKind)] =
        ["b12.total", "b12.active", "mma", "homocysteine", "hb", "mcv", "ferritin", "folate.serum", "egfr", "platelets",
         "if-antibody", "film.megaloblastic"].map { ($0, .observation) }
        + ["folic-acid", "hydroxocobalamin", "cyanocobalamin", "metformin", "ppi", "h2ra", "azathioprine",
           "mercaptopurine", "methotrexate", "hydroxyurea", "insulin", "levothyroxine"].map { ($0, .medication) }
        + ["pernicious-anaemia", "bariatric-surgery.roux-en-y", "bariatric-surgery.sleeve", "bariatric-surgery.bpd-ds",
           "gastrectomy", "ileal-resection", "crohns.ileal", "coeliac", "type-1-diabetes", "type-2-diabetes",
           "autoimmune-thyroid", "thalassaemia-trait", "nitrous-oxide-use", "alternative-neuro-diagnosis"].map { ($0, .condition) }
        + ["paraesthesia", "numbness", "burning-feet", "unsteady-gait", "ataxia", "romberg-positive", "weakness", "falls",
           "blurred-vision", "scotoma", "vision-loss", "memory-loss", "confusion", "cognitive-change", "psychosis",
           "mood-change", "fatigue", "glossitis", "breathlessness"].map { ($0, .symptom) }
        + ["urticaria", "wheeze", "stridor", "facial-swelling", "lip-swelling", "tongue-swelling", "hypotension",
           "collapse", "injection-site-reaction"].map { ($0, .reaction) }

    @Test(arguments: names)
    func interfaceNameIsMapped(_ name: String, _ kind: FactKind) throws {
        guard case .fact(let fact) = Support.bundled.vocabulary.resolve(.init(system: nil, code: name)) else {
            Issue.record("\(name) is not in the vocabulary")
            return
        }
        #expect(fact.kind == kind)
    }

    static let codes: [(String, String, String)] = [
        ("loinc", "2132-9", "b12.total"), ("loinc", "14685-2", "b12.total"), ("loinc", "13964-2", "mma"),
        ("loinc", "13965-9", "homocysteine"), ("loinc", "718-7", "hb"), ("loinc", "787-2", "mcv"),
        ("loinc", "30428-7", "mcv"), ("loinc", "2276-4", "ferritin"), ("loinc", "2284-8", "folate.serum"),
        ("loinc", "14732-2", "folate.serum"), ("icd10", "D51.0", "pernicious-anaemia"),
        ("icd10", "Z98.84", "bariatric-surgery.roux-en-y"), ("icd10", "K50.0", "crohns.ileal"),
        ("icd10", "D51.1", "b12-deficiency-anaemia"), ("icd10", "D51.9", "b12-deficiency-anaemia"),
        ("atc", "B03BA01", "cyanocobalamin"), ("atc", "B03BA03", "hydroxocobalamin"), ("atc", "B03BB01", "folic-acid"),
        ("atc", "A10BA02", "metformin"), ("ICD10", "d51.0", "pernicious-anaemia"),
    ]

    @Test(arguments: codes)
    func referenceCodeIsMapped(_ system: String, _ code: String, _ name: String) {
        guard case .fact(let fact) = Support.bundled.vocabulary.resolve(.init(system: system.lowercased(), code: code)) else {
            Issue.record("\(system):\(code) is not mapped")
            return
        }
        #expect(fact.name == name)
    }

    /// ICD-10 is a hierarchy: a listed code covers every code below it, and nothing beside it.
    @Test func icd10CodesCoverTheirSubcodes() {
        func name(_ code: String, _ system: String = "icd10") -> String? {
            if case .fact(let fact) = Support.bundled.vocabulary.resolve(.init(system: system, code: code)) { return fact.name }
            return nil
        }
        #expect(name("E10.9") == "type-1-diabetes")
        #expect(name("E10.65") == "type-1-diabetes")
        #expect(name("E11.9") == "type-2-diabetes")
        #expect(name("K70.30") == "liver-disease")
        #expect(name("F10.20") == "alcohol-excess")
        #expect(name("D51.01") == "pernicious-anaemia")
        #expect(name("E1") == nil && name("E12.9") == nil && name("F10.9") == nil && name("K74.5") == nil)
        #expect(name("K90.4") == nil)  // malabsorption from intolerance: beside coeliac disease (K90.0), not below it
        #expect(name("2132-99", "loinc") == nil)  // LOINC is not a hierarchy
    }

    /// 16695-9 is B12 in whole blood: it must never be read as serum B12.
    @Test func wholeBloodB12IsExcluded() {
        guard case .excluded(let reason) = Support.bundled.vocabulary.resolve(.init(system: "loinc", code: "16695-9")) else {
            Issue.record("loinc:16695-9 must be excluded")
            return
        }
        #expect(reason.contains("whole blood"))
    }

    @Test func everyFactHasADescriptionOrIsSelfExplanatory() {
        for fact in Support.bundled.vocabulary.facts where fact.kind == .observation {
            #expect(fact.unit != nil || fact.values != nil, "\(fact.name)")
            #expect(!fact.description.isEmpty, "\(fact.name) needs a description")
        }
    }
}
