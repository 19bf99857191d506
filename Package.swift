// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Cobalt",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cobalt", targets: ["cobalt"]),
        .library(name: "RuleEngine", targets: ["RuleEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
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
        /// The one command-line tool; thin, calls into the libraries.
        .executableTarget(
            name: "cobalt",
            dependencies: [
                "RuleEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "RuleEngineTests",
            dependencies: ["RuleEngine"],
            resources: [.copy("Fixtures")]
        ),
    ]
)

// Settings applied to every target, as in swift-log and swift-configuration.
for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ])
    target.swiftSettings = settings
}
