import Foundation
package import RuleEngine
package import ZeroMQ

/// One request, one reply, over a DEALER socket (used for replay and control).
package struct Requester {
    let socket: ZMQSocket
    let endpoint: String

    package init(context: ZMQContext, endpoint: String, security: ClientSecurity? = nil) throws {
        self.endpoint = endpoint
        socket = try ZMQSocket(context: context, type: .dealer)
        try socket.set(.immediate, 1)
        try security?.apply(to: socket)
        try socket.connect(endpoint)
    }

    /// Sends `json` and waits up to `timeout` milliseconds for the reply.
    package func request(_ json: String, timeout: Int = 10_000) throws -> JSONValue {
        // With ZMQ_IMMEDIATE a send waits for a connected peer; a refused handshake never gives one, so bound it.
        try socket.set(.sendTimeout, Int32(timeout))
        let sent = try socket.send([Array(json.utf8)], dontWait: false)
        guard sent, try socket.waitForInput(timeout: timeout), let message = try socket.receive(), let payload = message.frames.last else {
            throw ZMQError(
                code: ETIMEDOUT,
                operation: "no reply from \(endpoint) within \(timeout) ms (is the daemon running there? if it uses CURVE: is --server-key right, and is this --key on its allow-list for this endpoint?)")
        }
        return try JSONValue.parse(payload)
    }

    package func close() { socket.close() }
}
