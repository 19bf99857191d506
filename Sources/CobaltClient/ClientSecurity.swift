import Foundation
package import ZeroMQ

/// CURVE settings for a client: the server's public key and the client's key pair.
package struct ClientSecurity: Sendable {
    package var serverKey: String
    package var keys: CurveKeyPair

    package init(serverKey: String, keys: CurveKeyPair) {
        self.serverKey = serverKey
        self.keys = keys
    }

    /// Reads `--server-key` (a key, or a file holding it) and `--key` (a file holding the client's secret key).
    package static func load(serverKey: String?, keyFile: String?) throws -> ClientSecurity? {
        guard serverKey != nil || keyFile != nil else { return nil }
        guard let serverKey, let keyFile else {
            throw ZMQError(code: EINVAL, operation: "CURVE needs both --server-key and --key")
        }
        func text(_ valueOrFile: String) -> String {
            if CurveKeyPair.isZ85Key(valueOrFile) { return valueOrFile }
            let data = FileManager.default.contents(atPath: valueOrFile) ?? Data()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return ClientSecurity(serverKey: text(serverKey), keys: try CurveKeyPair(secretKey: text(keyFile)))
    }

    /// Applies CURVE to a socket before it connects.
    package func apply(to socket: ZMQSocket) throws {
        try socket.set(.curveServerKey, serverKey)
        try socket.set(.curvePublicKey, keys.publicKey)
        try socket.set(.curveSecretKey, keys.secretKey)
    }
}
