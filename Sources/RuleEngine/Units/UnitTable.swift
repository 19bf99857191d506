import Foundation

/// The units Cobalt understands: a UCUM-style subset covering the laboratory, dose and time units of the
/// event schema. Lookup accepts the usual spellings (`umol/L`, `µmol/L`, `μmol/L`; `ug`, `µg`, `mcg`).
package enum UnitTable {
    /// Looks up a unit by its symbol, or returns `nil` when the symbol is not a known unit.
    package static func unit(_ symbol: String) -> Unit? {
        units[symbol] ?? units[normalise(symbol)]
    }

    /// All symbols, longest first (the lexer matches the longest unit after a number).
    package static let symbolsLongestFirst: [String] = units.keys.sorted { $0.count > $1.count || ($0.count == $1.count && $0 < $1) }

    /// Every canonical spelling with its unit, for documentation and table tests.
    package static var all: [String: Unit] { units }

    /// Folds the spellings of micro (µ U+00B5, μ U+03BC, `mc` before g) to `u`, and `10^9` to `10*9`.
    package static func normalise(_ symbol: String) -> String {
        var s = symbol.trimmingWhitespace()
        s = s.replacingAll("µ", with: "u").replacingAll("μ", with: "u")
        s = s.replacingAll("10^", with: "10*")
        if s.hasPrefix("mcg") { s = "ug" + s.dropFirst(3) }
        s = s.replacingAll("/day", with: "/d").replacingAll("/week", with: "/wk")
        return s
    }

    private static let massUnits: [(String, Int)] = [("kg", 3), ("g", 0), ("mg", -3), ("ug", -6), ("ng", -9), ("pg", -12)]
    private static let volumeUnits: [(String, Int)] = [("L", 0), ("dL", -1), ("mL", -3), ("uL", -6), ("fL", -15)]
    private static let amountUnits: [(String, Int)] = [("mol", 0), ("mmol", -3), ("umol", -6), ("nmol", -9), ("pmol", -12)]
    private static let timeUnits: [(String, Double)] = [
        ("s", 1), ("min", 60), ("h", 3_600), ("d", 86_400), ("wk", 604_800),
        ("mo", 2_629_800),  // UCUM mean Julian month, 30.4375 d
        ("a", 31_557_600),  // UCUM mean Julian year, 365.25 d
    ]

    private static let units: [String: Unit] = {
        var table: [String: Unit] = ["1": .one, "%": Unit("%", .none, exp10: -2)]
        for (m, e) in massUnits {
            table[m] = Unit(m, .mass, exp10: e)
            for (v, ve) in volumeUnits {
                let symbol = "\(m)/\(v)"
                table[symbol] = Unit(symbol, .massConcentration, exp10: e - ve)
            }
            for (t, seconds) in timeUnits where t != "s" && t != "min" {
                let symbol = "\(m)/\(t)"
                table[symbol] = Unit(symbol, .doseRate, exp10: e, den: seconds)
            }
        }
        for (n, e) in amountUnits {
            table[n] = Unit(n, Dimension(amount: 1), exp10: e)
            for (v, ve) in volumeUnits {
                let symbol = "\(n)/\(v)"
                table[symbol] = Unit(symbol, .molarConcentration, exp10: e - ve)
            }
        }
        for (v, ve) in volumeUnits {
            table[v] = Unit(v, .volume, exp10: ve)
        }
        for (t, seconds) in timeUnits {
            table[t] = Unit(t, .duration, num: seconds)
        }
        table["10*9/L"] = Unit("10*9/L", .countConcentration, exp10: 9)
        table["10*12/L"] = Unit("10*12/L", .countConcentration, exp10: 12)
        table["mL/min/1.73m2"] = Unit("mL/min/1.73m2", Dimension(length: 3, time: -1), exp10: -3, den: 60)
        table["mL/min"] = Unit("mL/min", Dimension(length: 3, time: -1), exp10: -3, den: 60)
        return table
    }()
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars = scalars.dropFirst() }
        while let last = scalars.last, last.isWhitespace { scalars = scalars.dropLast() }
        return String(scalars)
    }

    func replacingAll(_ target: String, with replacement: String) -> String {
        guard contains(target) else { return self }
        return components(separatedBy: target).joined(separator: replacement)
    }
}
