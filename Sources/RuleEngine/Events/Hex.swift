extension Sequence<UInt8> {
    /// Lower-case hexadecimal digits of the bytes (digests, identifiers); `limit` bytes at most.
    package func hexDigits(limit: Int = .max) -> String {
        let digits: StaticString = "0123456789abcdef"
        var hex: [UInt8] = []
        hex.reserveCapacity(underestimatedCount * 2)
        for byte in prefix(limit) {
            hex.append(digits.utf8Start[Int(byte >> 4)])
            hex.append(digits.utf8Start[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
