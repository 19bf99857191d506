/// The syntax tree of a condition or template expression, as parsed (before name resolution and type checking).
package indirect enum Expression: Sendable {
    case number(Double, at: Int)
    case quantity(Double, Unit, at: Int)
    case string(String, at: Int)
    case bool(Bool, at: Int)
    /// A `$name` parameter reference.
    case parameter(String, at: Int)
    /// A (possibly dotted) name: a fact, a derived fact or a context value such as `pregnancy.status`.
    case name(String, at: Int)
    case call(String, [CallArgument], at: Int)
    case negate(Expression, at: Int)
    case not(Expression, at: Int)
    case and([Expression], at: Int)
    case or([Expression], at: Int)
    case arithmetic(ArithmeticOperator, Expression, Expression, at: Int)
    /// A comparison chain `a < b <= c`, meaning `a < b and b <= c`.
    case compare([Expression], [ComparisonOperator], at: Int)
    case membership(Expression, Expression, negated: Bool, at: Int)
    case set([Expression], at: Int)

    /// The offset (Unicode scalars) where this expression starts in its text.
    package var offset: Int {
        switch self {
        case .number(_, let at), .quantity(_, _, let at), .string(_, let at), .bool(_, let at), .parameter(_, let at),
            .name(_, let at), .call(_, _, let at), .negate(_, let at), .not(_, let at), .and(_, let at),
            .or(_, let at), .arithmetic(_, _, _, let at), .compare(_, _, let at), .membership(_, _, _, let at),
            .set(_, let at):
            return at
        }
    }
}

/// A function argument, positional or named (`within: 90 d`).
package struct CallArgument: Sendable {
    package var label: String?
    package var value: Expression
    package var offset: Int
}

package enum ArithmeticOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/"
}

package enum ComparisonOperator: String, Sendable {
    case less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">=", equal = "==", notEqual = "!="

    package var isOrdering: Bool { self != .equal && self != .notEqual }
}
