import Foundation
import Testing
@testable import RuleEngine

/// Kleene three-valued logic: unknown is not false. A rule fires only on true.
private let T = Value.bool(true)
private let F = Value.bool(false)
private let U = Value.unknown

@Suite struct ThreeValuedLogicTests {
    /// Evaluates code against an empty timeline.
    func eval(_ code: Code) -> Value {
        let timeline = PatientTimeline(patient: "p", clinic: "c", factCount: Support.bundled.vocabulary.facts.count)
        var state = Evaluator.State(timeline: timeline, now: 0, bundle: Support.bundled)
        return state.eval(code)
    }

    static let andTable: [(Value, Value, Value)] = [
        (T, T, T), (T, F, F), (T, U, U), (F, T, F), (F, F, F), (F, U, F), (U, T, U), (U, F, F), (U, U, U),
    ]
    static let orTable: [(Value, Value, Value)] = [
        (T, T, T), (T, F, T), (T, U, T), (F, T, T), (F, F, F), (F, U, U), (U, T, T), (U, F, U), (U, U, U),
    ]

    @Test(arguments: andTable)
    func and(_ a: Value, _ b: Value, _ expected: Value) {
        #expect(eval(.and([.constant(a), .constant(b)])) == expected)
    }

    @Test(arguments: orTable)
    func or(_ a: Value, _ b: Value, _ expected: Value) {
        #expect(eval(.or([.constant(a), .constant(b)])) == expected)
    }

    @Test(arguments: [(T, F), (F, T), (U, U)])
    func not(_ a: Value, _ expected: Value) {
        #expect(eval(.not(.constant(a))) == expected)
    }

    @Test(arguments: [ComparisonOperator.less, .lessEqual, .greater, .greaterEqual, .equal, .notEqual])
    func comparisonsWithUnknownAreUnknown(_ op: ComparisonOperator) {
        let q = Value.quantity(180, UnitTable.unit("ng/L")!)
        #expect(eval(.compare(op, .constant(U), .constant(q))) == U)
        #expect(eval(.compare(op, .constant(q), .constant(U))) == U)
    }

    @Test(arguments: [(U, F, T), (T, T, F), (F, T, F)])
    func explicitAbsenceTestsAreNeverUnknown(_ a: Value, _ known: Value, _ isUnknown: Value) {
        #expect(eval(.known(.constant(a))) == known)
        #expect(eval(.isUnknown(.constant(a))) == isUnknown)
    }

    @Test func comparisonsConvertUnitsExactly() {
        let umol = UnitTable.unit("umol/L")!
        let nmol = UnitTable.unit("nmol/L")!
        #expect(Evaluator.compare(.greater, .quantity(0.45, umol), .quantity(450, nmol)) == F)
        #expect(Evaluator.compare(.equal, .quantity(0.45, umol), .quantity(450, nmol)) == T)
        #expect(Evaluator.compare(.less, .quantity(11.2, UnitTable.unit("g/dL")!), .quantity(113, UnitTable.unit("g/L")!)) == T)
    }

    @Test func arithmeticPropagatesUnknownAndKeepsUnits() {
        let mgd = UnitTable.unit("mg/d")!
        #expect(Evaluator.arithmetic(.add, .quantity(5, mgd), .quantity(400, UnitTable.unit("ug/d")!)) == .quantity(5.4, mgd))
        #expect(Evaluator.arithmetic(.add, .quantity(5, mgd), U) == U)
        #expect(Evaluator.arithmetic(.divide, .number(1), .number(0)) == U)
        #expect(Evaluator.arithmetic(.subtract, .time(86_400 * 3), .time(0)) == .quantity(3, .day))
    }

    /// Kleene `and`/`or` of three terms, every combination, against a left-to-right fold of the two-term
    /// tables (evaluation nests longer chains: `a and (b and c)`).
    @Test func longChainsFollowTheTwoTermTables() {
        func fold(_ table: [(Value, Value, Value)], _ values: [Value]) -> Value {
            values.dropFirst().reduce(values[0]) { acc, v in table.first { $0.0 == acc && $0.1 == v }!.2 }
        }
        for a in [T, F, U] {
            for b in [T, F, U] {
                for c in [T, F, U] {
                    for d in [T, F, U] {
                        let three = [a, b, c]
                        let four = [a, b, c, d]
                        #expect(eval(.and(three.map { .constant($0) })) == fold(Self.andTable, three))
                        #expect(eval(.or(three.map { .constant($0) })) == fold(Self.orTable, three))
                        #expect(eval(.and(four.map { .constant($0) })) == fold(Self.andTable, four))
                        #expect(eval(.or(four.map { .constant($0) })) == fold(Self.orTable, four))
                    }
                }
            }
        }
    }

    /// Terms are evaluated left to right up to the deciding one, and only those record evidence.
    @Test func chainsStopAtTheDecidingTermAndRecordWhatTheyRead() {
        // Always true, and records that derived fact `slot` was read.
        func probe(_ slot: Int) -> Code { .or([.known(.derived(slot: slot)), .constant(T)]) }
        let timeline = PatientTimeline(patient: "p", clinic: "c", factCount: Support.bundled.vocabulary.facts.count)
        var state = Evaluator.State(timeline: timeline, now: 0, bundle: Support.bundled)
        #expect(state.eval(.and([probe(0), probe(1), .constant(F), probe(2)])) == F)
        #expect(state.evidence == [.derived(0), .derived(1)])
        state.evidence = []
        #expect(state.eval(.or([.not(probe(2)), .constant(U), probe(1), probe(0)])) == T)
        #expect(state.evidence == [.derived(2), .derived(1)])
    }

    @Test func coalesceAndEarliestSkipUnknown() {
        #expect(eval(.coalesce([.constant(U), .constant(.number(2)), .constant(.number(3))])) == .number(2))
        #expect(eval(.earliest([.constant(.time(5)), .constant(U), .constant(.time(3))])) == .time(3))
        #expect(eval(.earliest([.constant(U), .constant(U)])) == U)
        #expect(eval(.minimum([.constant(.number(1)), .constant(U)])) == U)
    }
}
