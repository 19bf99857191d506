/// A runtime value of the condition language. `unknown` is a value of every type: the three-valued logic's
/// third truth value, and the result of reading a missing fact.
package enum Value: Sendable, Equatable {
    case unknown
    case bool(Bool)
    case number(Double)
    case quantity(Double, Unit)
    case text(String)
    case time(Double)
    case textSet(Set<String>)

    package var isUnknown: Bool {
        if case .unknown = self { return true }
        return false
    }

    /// Human-readable form for alert text: `18 pmol/L`, `2026-11-20`, `deficient`, `yes`.
    package var display: String {
        switch self {
        case .unknown: return "unknown"
        case .bool(let b): return b ? "yes" : "no"
        case .number(let n): return n.rounded(significant: 4).formatted
        case .quantity(let v, let u): return "\(v.rounded(significant: 4).formatted) \(u.symbol)"
        case .text(let t): return t
        case .time(let t): return Timestamp.formatDate(t)
        case .textSet(let s): return s.sorted().joined(separator: ", ")
        }
    }
}

extension Double {
    /// Rounded to `digits` significant digits, for display only. Scales by an exact power of ten and divides
    /// back, so the result is the `Double` nearest the rounded decimal (203.25 → 203.3, not 203.29999…).
    package func rounded(significant digits: Int) -> Double {
        guard self != 0, isFinite else { return self }
        var exponent = 0
        var magnitude = abs(self)
        while magnitude >= 10 { magnitude /= 10; exponent += 1 }
        while magnitude < 1 { magnitude *= 10; exponent -= 1 }
        let decimals = digits - 1 - exponent
        var power = 1.0
        for _ in 0..<abs(decimals) { power *= 10 }
        guard power.isFinite else { return self }  // a subnormal: no decimal scale reaches it
        let rounded = decimals >= 0 ? (self * power).rounded() / power : (self / power).rounded() * power
        return rounded.isFinite ? rounded : self  // the largest numbers round up past the largest Double
    }
}

/// The static type of an expression, checked at load time.
package enum ValueType: Sendable, Equatable, CustomStringConvertible {
    case bool
    case number
    case quantity(Dimension)
    /// Text, optionally restricted to known values (an enumeration such as `b12.status`).
    case text(values: [String]?)
    case time
    case textSet

    package var description: String {
        switch self {
        case .bool: return "boolean"
        case .number: return "number"
        case .quantity(let d): return d == .duration ? "duration" : "quantity (\(d))"
        case .text(let values): return values.map { "one of \($0.joined(separator: "|"))" } ?? "text"
        case .time: return "time"
        case .textSet: return "set of text"
        }
    }

    /// Whether two types may be compared with `==`.
    package func comparable(with other: ValueType) -> Bool {
        switch (self, other) {
        case (.text, .text), (.bool, .bool), (.number, .number), (.time, .time), (.textSet, .textSet): return true
        case (.quantity(let a), .quantity(let b)): return a == b
        default: return false
        }
    }
}
