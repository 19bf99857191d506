import CobaltDaemon
import CobaltTestSupport
import Foundation
import Testing

/// Drives the daemon with pyzmq clients — an independent peer with its own libzmq — so the protocol is proven
/// against more than our own client code. CI installs pyzmq (`.ci/run`).
@Suite(.timeLimit(.minutes(10))) struct InteropTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/interop.py").path

    @Test func pyzmqClientsSpeakTheProtocol() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await withRunningDaemon(testConfiguration(directory: scratch.path)) { daemon in
            let e = daemon.endpoints
            let (status, output) = try await runPython([Self.script, e.ingest, e.alerts, e.replay, e.control])
            #expect(status == 0, "\(output)")
            #expect(output.contains("interop: all checks passed"))
        }
    }
}
