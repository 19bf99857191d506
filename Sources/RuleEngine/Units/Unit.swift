/// A unit of measure: a dimension plus an exact scale relative to that dimension's reference unit.
///
/// The scale is `num / den × 10^exp10`, kept apart so that decimal conversions stay exact in binary floating
/// point: 450 nmol/L becomes exactly the `Double` nearest 0.45 µmol/L, the same value as the literal `0.45`.
/// Boundaries such as "MMA > 0.45 µmol/L" therefore behave identically whatever unit the laboratory sent.
package struct Unit: Hashable, Sendable, CustomStringConvertible {
    /// The symbol as written, e.g. `ng/L`.
    package let symbol: String
    package let dimension: Dimension
    package let num: Double
    package let den: Double
    package let exp10: Int

    package init(_ symbol: String, _ dimension: Dimension, exp10: Int = 0, num: Double = 1, den: Double = 1) {
        self.symbol = symbol
        self.dimension = dimension
        self.num = num
        self.den = den
        self.exp10 = exp10
    }

    package var description: String { symbol }

    /// The dimensionless unit of plain numbers.
    package static let one = Unit("1", .none)
    /// Seconds: the reference unit of time, used for durations between instants.
    package static let second = Unit("s", .duration)
    /// Days.
    package static let day = Unit("d", .duration, num: 86_400)
    /// Weeks.
    package static let week = Unit("wk", .duration, num: 604_800)

    /// Whether two units measure the same thing with the same scale (so values compare without conversion).
    package func isSameScale(as other: Unit) -> Bool {
        dimension == other.dimension && exp10 == other.exp10 && num * other.den == other.num * den
    }

    /// Converts `value` from this unit to `target`; `nil` when the dimensions differ, or when the result is not a
    /// finite number (`1e303 kg` in milligrams): an infinity is no measurement, and no JSON number either.
    package func convert(_ value: Double, to target: Unit) -> Double? {
        guard let result = convertUnchecked(value, to: target), result.isFinite else { return nil }
        return result
    }

    private func convertUnchecked(_ value: Double, to target: Unit) -> Double? {
        guard dimension == target.dimension else { return nil }
        var result = value
        let n = num * target.den
        let d = den * target.num
        if n != d { result = result * n / d }
        let shift = exp10 - target.exp10
        if shift > 0 {
            result *= Unit.powersOfTen[min(shift, Unit.powersOfTen.count - 1)]
        } else if shift < 0 {
            result /= Unit.powersOfTen[min(-shift, Unit.powersOfTen.count - 1)]
        }
        return result
    }

    /// Exact powers of ten (all representable up to 10^22).
    private static let powersOfTen: [Double] = (0...22).map { exponent in
        var p = 1.0
        for _ in 0..<exponent { p *= 10 }
        return p
    }
}

extension Unit {
    /// The product of two units (for arithmetic on quantities).
    package static func * (lhs: Unit, rhs: Unit) -> Unit {
        if lhs.dimension == .none && lhs.exp10 == 0 && lhs.num == lhs.den { return rhs }
        if rhs.dimension == .none && rhs.exp10 == 0 && rhs.num == rhs.den { return lhs }
        return Unit(
            "\(lhs.symbol).\(rhs.symbol)",
            lhs.dimension * rhs.dimension,
            exp10: lhs.exp10 + rhs.exp10,
            num: lhs.num * rhs.num,
            den: lhs.den * rhs.den
        )
    }

    /// The quotient of two units (for arithmetic on quantities).
    package static func / (lhs: Unit, rhs: Unit) -> Unit {
        if rhs.dimension == .none && rhs.exp10 == 0 && rhs.num == rhs.den { return lhs }
        return Unit(
            "\(lhs.symbol)/\(rhs.symbol)",
            lhs.dimension / rhs.dimension,
            exp10: lhs.exp10 - rhs.exp10,
            num: lhs.num * rhs.den,
            den: lhs.den * rhs.num
        )
    }
}
