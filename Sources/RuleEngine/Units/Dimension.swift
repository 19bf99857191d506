/// A physical dimension as exponents of mass, amount of substance, length and time.
///
/// Volume is length³, so `ng/L` is mass·length⁻³ and `pmol/L` is amount·length⁻³: comparing the two is a
/// dimension mismatch unless an analyte-specific conversion (declared in the vocabulary) bridges them.
package struct Dimension: Hashable, Sendable, CustomStringConvertible {
    package var mass: Int8
    package var amount: Int8
    package var length: Int8
    package var time: Int8

    package init(mass: Int8 = 0, amount: Int8 = 0, length: Int8 = 0, time: Int8 = 0) {
        self.mass = mass
        self.amount = amount
        self.length = length
        self.time = time
    }

    package static let none = Dimension()
    package static let massConcentration = Dimension(mass: 1, length: -3)
    package static let molarConcentration = Dimension(amount: 1, length: -3)
    package static let volume = Dimension(length: 3)
    package static let mass = Dimension(mass: 1)
    package static let duration = Dimension(time: 1)
    package static let doseRate = Dimension(mass: 1, time: -1)
    package static let countConcentration = Dimension(length: -3)

    /// The largest exponent (in magnitude) a rule's arithmetic may produce. Clinical quantities stay within ±3;
    /// the limit only keeps a rule file from overflowing the exponents (a product of many quantities).
    package static let exponentLimit = 12

    /// `lhs × rhs` (`dividing`: `lhs ÷ rhs`), or nil when an exponent would pass ``exponentLimit``. The compiler
    /// checks every product and quotient with this, so the operators below never overflow at evaluation.
    package static func combining(_ lhs: Dimension, _ rhs: Dimension, dividing: Bool) -> Dimension? {
        func exponent(_ a: Int8, _ b: Int8) -> Int8? {
            let value = Int(a) + (dividing ? -Int(b) : Int(b))
            return abs(value) <= exponentLimit ? Int8(value) : nil
        }
        guard let mass = exponent(lhs.mass, rhs.mass), let amount = exponent(lhs.amount, rhs.amount),
            let length = exponent(lhs.length, rhs.length), let time = exponent(lhs.time, rhs.time)
        else { return nil }
        return Dimension(mass: mass, amount: amount, length: length, time: time)
    }

    package static func * (lhs: Dimension, rhs: Dimension) -> Dimension {
        Dimension(
            mass: lhs.mass + rhs.mass,
            amount: lhs.amount + rhs.amount,
            length: lhs.length + rhs.length,
            time: lhs.time + rhs.time
        )
    }

    package static func / (lhs: Dimension, rhs: Dimension) -> Dimension {
        Dimension(
            mass: lhs.mass - rhs.mass,
            amount: lhs.amount - rhs.amount,
            length: lhs.length - rhs.length,
            time: lhs.time - rhs.time
        )
    }

    /// A clinician-readable name, e.g. "mass concentration".
    package var description: String {
        switch self {
        case .none: return "dimensionless"
        case .massConcentration: return "mass concentration"
        case .molarConcentration: return "molar concentration"
        case .volume: return "volume"
        case .mass: return "mass"
        case .duration: return "duration"
        case .doseRate: return "dose per time"
        case .countConcentration: return "count per volume"
        default:
            var parts: [String] = []
            for (name, exp) in [("mass", mass), ("amount", amount), ("length", length), ("time", time)] where exp != 0 {
                parts.append(exp == 1 ? name : "\(name)^\(exp)")
            }
            return parts.joined(separator: "·")
        }
    }
}
