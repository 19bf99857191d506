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
        /// The one command-line tool; thin, calls into the libraries.
        .executableTarget(
            name: "cobalt",
            dependencies: [
                "RuleEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "CobaltStoreTests", dependencies: ["CobaltStore"]),
        .testTarget(
            name: "RuleEngineTests",
            dependencies: ["RuleEngine"],
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
