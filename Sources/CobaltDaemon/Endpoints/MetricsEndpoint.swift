import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The HTTP endpoint a Prometheus server scrapes: `GET /metrics` (the text format, as `cobalt metrics` prints it) and
/// `GET /healthz` (200 while the daemon runs). Plain HTTP/1.1, one request per connection, on its own event-loop
/// thread; it carries counts labelled with clinic and rule ids, never patient data (docs/protocol.md).
struct MetricsEndpoint: Service {
    /// Where to listen: `http://HOST:PORT`, parsed from the configuration.
    struct Address: Sendable, Equatable {
        let host: String
        let port: Int

        /// Parses `http://127.0.0.1:5574` or `http://[::1]:5574` (`*` for the port: any free one); nil when the
        /// text is not of that form.
        init?(_ text: String) {
            guard text.hasPrefix("http://") else { return nil }
            var rest = Substring(text.dropFirst("http://".count))
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            let host: Substring
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else { return nil }
                host = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(close, offsetBy: 2)...]
            } else {
                guard let colon = rest.lastIndex(of: ":") else { return nil }
                host = rest[..<colon]
                rest = rest[rest.index(after: colon)...]
            }
            // A numeric address (the listener binds an address, not a name: a name that does not resolve used to
            // pass the checks and fail the start) or `localhost`; a port of digits, or `*`.
            guard host == "localhost" || Self.isNumeric(String(host)), rest == "*" || (!rest.isEmpty && rest.allSatisfy(\.isASCII) && rest.allSatisfy(\.isNumber)),
                let port = rest == "*" ? 0 : Int(rest), rest == "*" || (1...65_535).contains(port)
            else { return nil }
            self.host = String(host)
            self.port = port
        }

        private static func isNumeric(_ host: String) -> Bool {
            var v4 = in_addr(), v6 = in6_addr()
            return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
        }

        /// The host is numeric or `localhost` (``init(_:)``), so the shared rule's `127.` prefix is an address.
        var isLoopback: Bool { DaemonConfiguration.isLoopback(host: host) }
    }

    /// How long a client has to send its request and read the answer before the connection is closed.
    static let exchangeTimeout: Duration = .seconds(5)
    /// Connections served at once; more are closed as soon as they are accepted.
    static let maximumConnections = 16

    private let group: MultiThreadedEventLoopGroup
    private let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let metrics: (@Sendable () -> String)?
    private let logger: Logger
    /// The address bound, as `http://HOST:PORT` (the real port when `*` was asked for).
    let endpoint: String

    /// Binds the address; throws (as a start would for any endpoint) when it cannot.
    static func bind(_ address: Address, metrics: (@Sendable () -> String)?, logger: Logger) async throws -> MetricsEndpoint {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false)
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    }
                }
            let port = server.channel.localAddress?.port ?? address.port
            let host = address.host.contains(":") ? "[\(address.host)]" : address.host
            return MetricsEndpoint(group: group, server: server, metrics: metrics, logger: logger, endpoint: "http://\(host):\(port)")
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(
        group: MultiThreadedEventLoopGroup, server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>,
        metrics: (@Sendable () -> String)?, logger: Logger, endpoint: String
    ) {
        self.group = group
        self.server = server
        self.metrics = metrics
        self.logger = logger
        self.endpoint = endpoint
    }

    func run() async throws {
        // Scrapes are short: on shutdown the listener and any exchange in progress are cancelled, not waited for.
        let active = Admission(limit: Self.maximumConnections)
        let failure: (any Error)? = await cancelWhenGracefulShutdown {
            do {
                try await withThrowingDiscardingTaskGroup { tasks in
                    try await server.executeThenClose { connections in
                        for try await connection in connections {
                            // A bounded number at once: idle connections must not use up the daemon's descriptors
                            // (the rules watcher, the store and the ZeroMQ endpoints need them too).
                            let admitted = active.enter()
                            tasks.addTask {
                                guard admitted else {
                                    try? await connection.channel.close()
                                    return
                                }
                                await exchange(on: connection)
                                active.leave()
                            }
                        }
                    }
                }
                return nil
            } catch is CancellationError {
                return nil
            } catch {
                return error
            }
        }
        try? await server.channel.close()
        try await group.shutdownGracefully()
        // Not a clean stop: the service group stops the daemon with this error (exit 1, so systemd restarts it).
        if let failure {
            logger.error("metrics endpoint failed", metadata: ["error": "\(failure)"])
            throw failure
        }
    }

    /// Reads one request and answers it, within ``exchangeTimeout``; then the connection is closed.
    private func exchange(on connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await withThrowingTaskGroup(of: Void.self) { race in
                race.addTask {
                    try await connection.executeThenClose { inbound, outbound in
                        var head: HTTPRequestHead?
                        for try await part in inbound {
                            switch part {
                            case .head(let request): head = request
                            case .body: break
                            case .end:
                                guard let head else { return }
                                let (status, contentType, body) = answer(head)
                                var headers = HTTPHeaders()
                                headers.add(name: "Content-Type", value: contentType)
                                headers.add(name: "Content-Length", value: "\(body.utf8.count)")
                                headers.add(name: "Connection", value: "close")
                                if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
                                try await outbound.write(.head(HTTPResponseHead(version: head.version, status: status, headers: headers)))
                                if head.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body)))) }
                                try await outbound.write(.end(nil))
                                return
                            }
                        }
                    }
                }
                race.addTask {
                    try await Task.sleep(for: Self.exchangeTimeout)
                    throw CancellationError()
                }
                try await race.next()
                race.cancelAll()
            }
        } catch {
            try? await connection.channel.close()
        }
    }

    /// The answer to a request: status, content type, body.
    func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, String) {
        // The path without its query; an absolute-form target (`GET http://host:port/metrics`, RFC 9112 §3.2.2) too.
        var target = Substring(head.uri)
        if let scheme = target.range(of: "://"), target[..<scheme.lowerBound].allSatisfy(\.isLetter) {
            let rest = target[scheme.upperBound...]
            target = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        let path = String(target.prefix { $0 != "?" })
        let text = "text/plain; charset=utf-8"
        guard path == "/metrics" || path == "/healthz" else {
            return (.notFound, text, "not found: this endpoint serves GET /metrics and GET /healthz\n")
        }
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, text, "method not allowed: use GET or HEAD\n")
        }
        if path == "/healthz" { return (.ok, text, "ok\n") }
        guard let metrics else { return (.serviceUnavailable, text, "no metrics backend is installed\n") }
        return (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics())
    }
}

/// Connections being served, up to a limit.
private final class Admission: Sendable {
    private let count = Mutex(0)
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Whether one more may be served (then counted until ``leave()``).
    func enter() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }
}
