import Testing
@testable import RuleEngine

/// Every unit conversion Cobalt relies on, as a table: generic (same dimension) and analyte-specific.
@Suite struct UnitConversionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let fact: String
        let value: Double
        let unit: String
        let expected: Double
        var testDescription: String { "\(fact): \(value) \(unit) → \(expected)" }
    }

    static let cases: [Case] = [
        // Total B12, canonical ng/L: pg/mL = ng/L; pmol/L × 1.355.
        Case(fact: "b12.total", value: 180, unit: "ng/L", expected: 180),
        Case(fact: "b12.total", value: 180, unit: "pg/mL", expected: 180),
        Case(fact: "b12.total", value: 150, unit: "pmol/L", expected: 203.25),
        Case(fact: "b12.total", value: 0.15, unit: "nmol/L", expected: 203.25),
        Case(fact: "b12.total", value: 0.18, unit: "ug/L", expected: 180),
        // Active B12, canonical pmol/L.
        Case(fact: "b12.active", value: 25, unit: "pmol/L", expected: 25),
        // Folate, canonical µg/L: nmol/L ÷ 2.266; ng/mL = µg/L.
        Case(fact: "folate.serum", value: 22.66, unit: "nmol/L", expected: 10),
        Case(fact: "folate.serum", value: 9, unit: "ng/mL", expected: 9),
        Case(fact: "folate.serum", value: 9, unit: "µg/L", expected: 9),
        // MMA, canonical µmol/L: nmol/L ÷ 1000; nmol/mL = µmol/L.
        Case(fact: "mma", value: 620, unit: "nmol/L", expected: 0.62),
        Case(fact: "mma", value: 450, unit: "nmol/L", expected: 0.45),
        Case(fact: "mma", value: 0.45, unit: "umol/L", expected: 0.45),
        Case(fact: "mma", value: 0.45, unit: "μmol/L", expected: 0.45),
        Case(fact: "mma", value: 0.45, unit: "nmol/mL", expected: 0.45),
        // Haemoglobin, canonical g/L: g/dL × 10.
        Case(fact: "hb", value: 11.2, unit: "g/dL", expected: 112),
        Case(fact: "hb", value: 10.5, unit: "g/dL", expected: 105),
        Case(fact: "hb", value: 112, unit: "g/L", expected: 112),
        // Ferritin, canonical µg/L: ng/mL = µg/L.
        Case(fact: "ferritin", value: 30, unit: "ng/mL", expected: 30),
        // MCV fL; platelets 10^9/L.
        Case(fact: "mcv", value: 100, unit: "fL", expected: 100),
        Case(fact: "platelets", value: 250, unit: "10^9/L", expected: 250),
        Case(fact: "platelets", value: 250, unit: "10*9/L", expected: 250),
    ]

    @Test(arguments: cases)
    func converts(_ c: Case) throws {
        let fact = try #require(Support.bundled.vocabulary.fact(identifier: FactDefinition.identifier(for: c.fact)))
        let unit = try #require(UnitTable.unit(c.unit), "unit \(c.unit) is known")
        let converted = try #require(NormalisedEvent.convert(c.value, from: unit, for: fact, canonical: fact.unit!))
        #expect(abs(converted - c.expected) < 1e-9 * max(1, abs(c.expected)))
    }

    /// Boundaries must be exact whatever unit the laboratory used: 450 nmol/L is exactly the Double 0.45.
    @Test func decimalConversionsAreExactAtBoundaries() throws {
        let nmol = try #require(UnitTable.unit("nmol/L"))
        let umol = try #require(UnitTable.unit("umol/L"))
        #expect(nmol.convert(450, to: umol) == 0.45)
        let gdl = try #require(UnitTable.unit("g/dL"))
        let gl = try #require(UnitTable.unit("g/L"))
        #expect(gdl.convert(10.5, to: gl) == 105)
        let pgml = try #require(UnitTable.unit("pg/mL"))
        let ngl = try #require(UnitTable.unit("ng/L"))
        #expect(pgml.convert(350, to: ngl) == 350)
    }

    @Test(arguments: [("ug", "mg", 400.0, 0.4), ("g", "mg", 1, 1000), ("mg/wk", "mg/d", 35, 5), ("ug/d", "mg/d", 5000, 5),
                      ("wk", "d", 2, 14), ("h", "min", 1, 60), ("a", "d", 1, 365.25), ("mo", "d", 1, 30.4375)])
    func genericConversions(_ from: String, _ to: String, _ value: Double, _ expected: Double) throws {
        let a = try #require(UnitTable.unit(from))
        let b = try #require(UnitTable.unit(to))
        let converted = try #require(a.convert(value, to: b))
        #expect(abs(converted - expected) < 1e-9 * expected)
    }

    @Test func crossDimensionNeedsAnAnalyteConversion() throws {
        // Molar to mass concentration only through a declared conversion: MMA has none to ng/L.
        let pmol = try #require(UnitTable.unit("pmol/L"))
        let ngl = try #require(UnitTable.unit("ng/L"))
        #expect(pmol.convert(150, to: ngl) == nil)
        let mma = try #require(Support.bundled.vocabulary.fact(identifier: "mma"))
        #expect(NormalisedEvent.convert(1, from: ngl, for: mma, canonical: mma.unit!) == nil)
        let mg = try #require(UnitTable.unit("mg"))
        #expect(mg.convert(1, to: ngl) == nil)
    }

    @Test(arguments: ["", "xyz", "ng", "mmHg", "IU/L"])
    func unknownOrWrongUnits(_ symbol: String) {
        let b12 = Support.bundled.vocabulary.fact(identifier: "b12.total")!
        if let unit = UnitTable.unit(symbol) {
            #expect(NormalisedEvent.convert(1, from: unit, for: b12, canonical: b12.unit!) == nil)
        } else {
            #expect(UnitTable.unit(symbol) == nil)
        }
    }
}
