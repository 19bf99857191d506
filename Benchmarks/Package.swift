// swift-tools-version:6.1
// Benchmarks for the Cobalt rule engine. A separate package so that the benchmark executable and its build
// products never touch the main package's build. Run from this directory:
//
//     swift run -c release RuleEngineBenchmark
//
// and, for the daemon under load (needs the release daemon: from the repository root,
// `swift build -c release --product cobalt --scratch-path .build-release`):
//
//     swift run -c release DaemonLoad
//
// The main package is referenced by path; a path dependency's identity is its directory name (`main`).
import PackageDescription

let package = Package(
    name: "CobaltBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "main", path: ".."),
    ],
    targets: [
        /// What both benchmarks share: the synthetic rule generator.
        .target(name: "BenchmarkSupport"),
        .executableTarget(
            name: "RuleEngineBenchmark",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "RuleEngine", package: "main"),
            ]
        ),
        /// Load generator for the real `cobalt serve` process: acknowledged and evaluated events/s, ACK latency
        /// at a fixed offered rate, event-to-alert latency, rule-set reloads under load (reload time, evaluation pause,
        /// no event lost), beside a bare ROUTER/DEALER echo baseline.
        .executableTarget(
            name: "DaemonLoad",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "ZeroMQ", package: "main"),
            ]
        ),
    ]
)
