import BenchmarkSupport
import Foundation

/// Monotonic nanoseconds (CLOCK_MONOTONIC through Dispatch).
@inline(__always)
func nowNanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

/// Summary statistics of a list of durations in nanoseconds. Percentiles use the nearest-rank method on the
/// sorted samples: p(q) is the smallest sample such that at least q % of the samples are at or below it.
struct Summary {
    let count: Int
    let min: Double
    let p50: Double
    let p90: Double
    let p99: Double
    let max: Double
    let mean: Double

    /// - Parameter nanoseconds: raw samples; reported in the unit given by `divisor` (1_000 = µs, 1_000_000 = ms).
    init(_ nanoseconds: [UInt64], divisor: Double = 1_000) {
        precondition(!nanoseconds.isEmpty, "no samples")
        let sorted = nanoseconds.sorted()
        func rank(_ q: Double) -> Double {
            let index = Swift.max(0, Swift.min(sorted.count - 1, Int((q / 100 * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[index]) / divisor
        }
        count = sorted.count
        min = Double(sorted[0]) / divisor
        p50 = rank(50)
        p90 = rank(90)
        p99 = rank(99)
        max = Double(sorted[sorted.count - 1]) / divisor
        mean = Double(sorted.reduce(0) { $0 + Double($1) }) / Double(sorted.count) / divisor
    }

    /// The median of the samples (for the compile-time runs: with an even count, the mean of the middle two).
    static func median(_ nanoseconds: [UInt64], divisor: Double) -> Double {
        let sorted = nanoseconds.sorted()
        let n = sorted.count
        if n % 2 == 1 { return Double(sorted[n / 2]) / divisor }
        return (Double(sorted[n / 2 - 1]) + Double(sorted[n / 2])) / 2 / divisor
    }
}

func pad(_ text: String, _ width: Int, right: Bool = true) -> String {
    guard text.count < width else { return text }
    let fill = String(repeating: " ", count: width - text.count)
    return right ? fill + text : text + fill
}
