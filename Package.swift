// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Cobalt",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cobalt", targets: ["cobalt"]),
        .library(name: "RuleEngine", targets: ["RuleEngine"]),
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        /// Pure rule engine: rule files, expression language, units, vocabulary, evaluator, rule tests.
        .target(
            name: "RuleEngine",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        /// libzmq, as a system library (Debian: libzmq3-dev).
        .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        /// A small, safe Swift wrapper: context, thread-confined sockets, typed options, a zmq_poll socket loop.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        /// Persistence: event journal, alert state, per-clinic alert log (SQLite through GRDB).
        .target(name: "CobaltStore", dependencies: [.product(name: "GRDB", package: "GRDB.swift")]),
        /// The daemon: ingest, evaluation pipeline, alert publishing, replay, control, wired as services.
        .target(
            name: "CobaltDaemon",
            dependencies: [
                "RuleEngine", "ZeroMQ", "CobaltStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                // The HTTP endpoint Prometheus scrapes (/metrics, /healthz).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        /// Clients of the daemon's endpoints: pipelined sender, gap-repairing subscriber, request/reply.
        .target(name: "CobaltClient", dependencies: ["ZeroMQ", "RuleEngine"]),
        /// Helpers shared by the tests: a running daemon on ephemeral ports, scratch directories, repository paths.
        .target(
            name: "CobaltTestSupport",
            dependencies: ["CobaltDaemon", .product(name: "Logging", package: "swift-log")]
        ),
        /// The one command-line tool; thin, calls into the libraries.
        .executableTarget(
            name: "cobalt",
            dependencies: [
                "RuleEngine", "CobaltDaemon", "CobaltClient", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "CobaltStoreTests", dependencies: ["CobaltStore", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "CobaltDaemonTests",
            dependencies: [
                "CobaltDaemon", "CobaltClient", "CobaltStore", "CobaltTestSupport", "ZeroMQ", "RuleEngine", "cobalt",
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Interop")]
        ),
        .testTarget(
            name: "RuleEngineTests",
            dependencies: ["RuleEngine", .product(name: "Crypto", package: "swift-crypto")],
            resources: [.copy("Fixtures")]
        ),
    ]
)

// Settings applied to every target, as in swift-log and swift-configuration.
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ])
    target.swiftSettings = settings
}
