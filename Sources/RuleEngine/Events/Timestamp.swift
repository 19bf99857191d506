/// Parses RFC 3339 timestamps (`2026-11-20T09:30:00Z`, `…+01:00`, fractional seconds) and plain dates
/// (`2026-03-01`, taken as midnight UTC) into seconds since 1970-01-01T00:00:00Z.
package enum Timestamp {
    /// The times Cobalt reads and writes: years 0000 to 9999, RFC 3339's four digits. Rule arithmetic that leaves
    /// this range gives unknown (``Evaluator/arithmetic(_:_:_:)``), so no time outside it reaches a text.
    package static let representable: ClosedRange<Double> = -62_167_219_200 ... 253_402_300_799

    package static func parse(_ text: String) -> Double? {
        var text = text
        return text.withUTF8 { parse(utf8: $0) }
    }

    /// ``parse(_:)`` of UTF-8 bytes: ingest reads times straight from the event's bytes, without a string for each.
    package static func parse(utf8 s: UnsafeBufferPointer<UInt8>) -> Double? {
        guard s.count >= 10, let year = number(s, 0, 4), s[4] == UInt8(ascii: "-"), let month = number(s, 5, 2),
            s[7] == UInt8(ascii: "-"), let day = number(s, 8, 2), (1...12).contains(month),
            (1...daysIn(month: month, year: year)).contains(day)
        else { return nil }
        let date = Double(daysFromCivil(year: year, month: month, day: day)) * 86_400
        if s.count == 10 { return date }
        guard s.count >= 20, s[10] == UInt8(ascii: "T") || s[10] == UInt8(ascii: "t") || s[10] == UInt8(ascii: " "),
            let hour = number(s, 11, 2), s[13] == UInt8(ascii: ":"), let minute = number(s, 14, 2),
            s[16] == UInt8(ascii: ":"), let second = number(s, 17, 2), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if s[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            let start = index
            while index < s.count, (48...57).contains(s[index]) {
                fraction += Double(s[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        guard index < s.count else { return nil }
        var offset = 0
        switch s[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard index == s.count - 1 else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard s.count - index == 6, let oh = number(s, index + 1, 2), s[index + 3] == UInt8(ascii: ":"),
                let om = number(s, index + 4, 2), oh < 24, om < 60
            else { return nil }
            offset = (oh * 3_600 + om * 60) * (s[index] == UInt8(ascii: "+") ? 1 : -1)
        default:
            return nil
        }
        // An offset can carry 0000-01-01 or 9999-12-31 outside the years Cobalt writes: refused, not clamped later.
        let seconds = date + Double(hour * 3_600 + minute * 60 + second - offset) + fraction
        return representable.contains(seconds) ? seconds : nil
    }

    /// Formats seconds since the epoch as RFC 3339 UTC (`2026-11-20T09:30:00Z`).
    package static func format(_ seconds: Double) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        write(seconds, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends ``format(_:)``'s text in double quotes, as a JSON string: alert and evidence JSON write their times
    /// this way, digit by digit, instead of building a string for each (a time is 20 bytes, too long for a
    /// string held inline, so each one was an allocation).
    package static func appendQuoted(_ seconds: Double, to out: inout [UInt8]) {
        out.append(0x22)
        write(seconds, to: &out)
        out.append(0x22)
    }

    /// Within ``representable`` (NaN as the epoch): a last resort, since converting a time beyond Int64 (or NaN)
    /// would stop the process. Evaluation never hands the formatters such a time (``Evaluator/arithmetic(_:_:_:)``).
    private static func clamped(_ seconds: Double) -> Double {
        min(max(seconds.isNaN ? 0 : seconds, representable.lowerBound), representable.upperBound)
    }

    private static func write(_ seconds: Double, to out: inout [UInt8]) {
        let whole = Int64(clamped(seconds).rounded(.down))
        let days = Int(floorDiv(whole, 86_400))
        let rest = Int(whole - Int64(days) * 86_400)
        let (y, m, d) = civilFromDays(days)
        if (0...9_999).contains(y) { digits(y, 4, &out) } else { out += pad(y, 4).utf8 }
        out.append(UInt8(ascii: "-"))
        digits(m, 2, &out)
        out.append(UInt8(ascii: "-"))
        digits(d, 2, &out)
        out.append(UInt8(ascii: "T"))
        digits(rest / 3_600, 2, &out)
        out.append(UInt8(ascii: ":"))
        digits(rest / 60 % 60, 2, &out)
        out.append(UInt8(ascii: ":"))
        digits(rest % 60, 2, &out)
        out.append(UInt8(ascii: "Z"))
    }

    /// Appends a value of `0..<10^width` as exactly `width` decimal digits.
    private static func digits(_ value: Int, _ width: Int, _ out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(UInt8(48 + rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    /// Formats with milliseconds (`2026-11-20T09:00:00.250Z`): the time stamps the daemon adds to alerts.
    package static func formatMilliseconds(_ seconds: Double) -> String {
        let milliseconds = Int64((clamped(seconds) * 1_000).rounded(.down))
        let whole = Double(floorDiv(milliseconds, 1_000))
        return String(format(whole).dropLast()) + "." + pad(Int(milliseconds - Int64(whole) * 1_000), 3) + "Z"
    }

    /// Formats the date part only (`2026-11-20`).
    package static func formatDate(_ seconds: Double) -> String {
        String(format(seconds).prefix(10))
    }

    private static func number(_ s: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        guard start + count <= s.count else { return nil }
        var value = 0
        for i in start..<(start + count) {
            guard (48...57).contains(s[i]) else { return nil }
            value = value * 10 + Int(s[i] - 48)
        }
        return value
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Howard Hinnant's days-from-civil algorithm.
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
