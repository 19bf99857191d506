/// Lower-case hexadecimal digits, for digests and JSON `\u` escapes.
let hexDigitCharacters: StaticString = "0123456789abcdef"

extension Sequence<UInt8> {
    /// Lower-case hexadecimal digits of the bytes (digests, identifiers); `limit` bytes at most.
    package func hexDigits(limit: Int = .max) -> String {
        let bytes = Array(prefix(limit))
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (i, byte) in bytes.enumerated() {
                out[2 * i] = hexDigitCharacters.utf8Start[Int(byte >> 4)]
                out[2 * i + 1] = hexDigitCharacters.utf8Start[Int(byte & 0x0F)]
            }
            return bytes.count * 2
        }
    }
}
