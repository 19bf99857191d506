import Crypto
import Foundation

/// Lower-case hexadecimal digits, for digests and JSON `\u` escapes.
let hexDigitCharacters: StaticString = "0123456789abcdef"

extension Digest {
    /// Lower-case hexadecimal digits of the digest (content digests, identifiers); `limit` bytes at most.
    ///
    /// Reads the digest's bytes in place: going through `Sequence` (an iterator and an array per call, generic
    /// code not specialised across modules) cost more than hashing a 700-byte event.
    package func hexDigits(limit: Int = .max) -> String {
        self.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw.prefix(limit))
            return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
                for (i, byte) in bytes.enumerated() {
                    out[2 * i] = hexDigitCharacters.utf8Start[Int(byte >> 4)]
                    out[2 * i + 1] = hexDigitCharacters.utf8Start[Int(byte & 0x0F)]
                }
                return bytes.count * 2
            }
        }
    }
}
