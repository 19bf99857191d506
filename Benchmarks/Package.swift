// swift-tools-version:6.1
// Benchmarks for the Cobalt rule engine. A separate package so that the benchmark executable and its build
// products never touch the main package's build. Run from this directory:
//
//     swift run -c release RuleEngineBenchmark
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
        .executableTarget(
            name: "RuleEngineBenchmark",
            dependencies: [
                .product(name: "RuleEngine", package: "main"),
            ]
        ),
    ]
)
