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

    /// Reads `--server-key` (a key, or a file holding it) and `--key` (the file holding the client's secret key).
    package static func load(serverKey: String?, keyFile: String?) throws -> ClientSecurity? {
        guard serverKey != nil || keyFile != nil else { return nil }
        guard let serverKey, let keyFile else {
            throw ZMQError(code: EINVAL, operation: "CURVE needs both --server-key and --key")
        }
        func contents(_ file: String, _ option: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ZMQError(code: ENOENT, operation: "\(option) \(file): cannot read the file")
            }
            let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard CurveKeyPair.isZ85Key(key) else {
                throw ZMQError(code: EINVAL, operation: "\(option) \(file): not a CURVE key (40 Z85 characters)")
            }
            return key
        }
        // The server's key is public: given as is or in a file. The client's secret only in a file: typed on the
        // command line it would show in `ps` and the shell's history.
        let server = CurveKeyPair.isZ85Key(serverKey) ? serverKey : try contents(serverKey, "--server-key")
        guard !CurveKeyPair.isZ85Key(keyFile) else {
            throw ZMQError(code: EINVAL, operation: "--key takes the file holding the secret key, not the key itself (it would show in ps and the shell's history)")
        }
        return ClientSecurity(serverKey: server, keys: try CurveKeyPair(secretKey: try contents(keyFile, "--key")))
    }

    /// Applies CURVE to a socket before it connects.
    package func apply(to socket: ZMQSocket) throws {
        try socket.set(.curveServerKey, serverKey)
        try socket.set(.curvePublicKey, keys.publicKey)
        try socket.set(.curveSecretKey, keys.secretKey)
    }
}
