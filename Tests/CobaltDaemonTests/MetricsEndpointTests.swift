import CobaltDaemon
import CobaltTestSupport
import Foundation
import RuleEngine
import Testing

/// The HTTP endpoint a Prometheus server scrapes, driven by Python's urllib (an independent HTTP client).
@Suite(.timeLimit(.minutes(2))) struct MetricsEndpointTests {
    /// A request to the endpoint: the status, the `Content-Type` and `Allow` headers, the body.
    private func fetch(_ url: String, method: String = "GET") async throws -> (status: Int, contentType: String, allow: String, body: String) {
        let (status, output) = try await runPython(["-c", """
            import sys, urllib.request, urllib.error
            request = urllib.request.Request(sys.argv[1], method=sys.argv[2], data=b"x" if sys.argv[2] == "POST" else None)
            try:
                response = urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as error:
                response = error
            body = response.read().decode()
            print(response.status, response.headers.get("Content-Type"), response.headers.get("Allow"), sep="|")
            sys.stdout.write(body)
            """, url, method])
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        let fields = lines.first.map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) } ?? []
        return (Int(fields.first ?? "") ?? -1, fields.count > 1 ? fields[1] : "", fields.count > 2 ? fields[2] : "",
                lines.count > 1 ? String(lines[1]) : "")
    }

    /// `/metrics` serves what `cobalt metrics` prints, in Prometheus' text format, counts as they are now;
    /// `/healthz` says ok; anything else is a 404, and a method other than GET or HEAD a 405.
    @Test func prometheusScrapesTheMetricsOverHTTP() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/metrics.db")
        defer { _ = daemon.terminate() }
        let base = try #require(daemon.metrics)
        let stream = crashStream()
        _ = try await send(stream.map(\.json) + ["{not json"], to: daemon.ingest)
        try await waitForEvaluated(stream.count, control: daemon.control)

        let scrape = try await fetch(base + "/metrics")
        #expect(scrape.status == 200 && scrape.contentType == "text/plain; version=0.0.4; charset=utf-8", "\(scrape)")
        func value(_ series: String, in text: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect(value("cobalt_events_accepted_total", in: scrape.body) == Double(stream.count), "\(scrape.body.prefix(2_000))")
        #expect(value("cobalt_events_rejected_total", in: scrape.body) == 1)
        #expect(scrape.body.contains("# TYPE cobalt_events_received_total counter"))
        // The same series as the control socket's `metrics` command.
        let control = try await request(#"{"command": "metrics"}"#, to: daemon.control)["text"]?.stringValue ?? ""
        let names = { (text: String) in Set(text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }) }
        #expect(!names(control).isEmpty && names(scrape.body) == names(control))

        let health = try await fetch(base + "/healthz")
        #expect(health.status == 200 && health.body == "ok\n", "\(health)")
        let head = try await fetch(base + "/metrics", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty, "\(head)")
        let missing = try await fetch(base + "/status")
        #expect(missing.status == 404 && missing.body.contains("GET /metrics"), "\(missing)")
        let post = try await fetch(base + "/metrics", method: "POST")
        #expect(post.status == 405 && post.allow == "GET, HEAD", "\(post)")
        #expect(await daemon.stop() == 0)
    }

    /// Idle connections cannot use up the daemon's descriptors: beyond 16 at once, a connection is closed as soon as
    /// it is accepted; those that send nothing are closed after 5 s; once they are gone, scrapes are answered again.
    /// An absolute-form request target (RFC 9112) names the same path.
    @Test func idleConnectionsAreBoundedAndTimedOut() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let daemon = try await DaemonProcess.start(database: scratch.path + "/idle.db")
        defer { _ = daemon.terminate() }
        let base = try #require(daemon.metrics)
        let (status, output) = try await runPython(["-c", """
            import socket, sys, time
            host, port = sys.argv[1][len("http://"):].rsplit(":", 1)
            def closed(s):
                try:
                    return s.recv(1) == b""
                except BlockingIOError:
                    return False
            def experiment():
                # When each of 24 idle connections is closed by the server, seen by polling every 20 ms.
                idle = [socket.create_connection((host, int(port))) for _ in range(24)]
                started, seen = time.time(), {}
                for s in idle:
                    s.setblocking(False)
                while len(seen) < len(idle) and time.time() < started + 60:
                    for i, s in enumerate(idle):
                        if i not in seen and closed(s):
                            seen[i] = time.time() - started
                    time.sleep(0.02)
                return sorted(seen.values()), len(idle)
            # The excess are closed at once, the admitted ones after the exchange timeout: a gap between the two
            # groups (unless this process stalled for the whole timeout and saw them all at once: then once more).
            for attempt in range(3):
                times, count = experiment()
                gaps = [b - a for a, b in zip(times, times[1:])]
                if len(times) == count and max(gaps) >= 1.0:
                    break
            print("closed at once:", 1 + gaps.index(max(gaps)), "then after", round(max(gaps), 1), "s")
            print("all closed by the server:", len(times) == count)
            s = socket.create_connection((host, int(port)))
            s.sendall(("GET " + sys.argv[1] + "/healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n").encode())
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            print("absolute form:", answer.split(b"\\r\\n")[0].decode(), answer.endswith(b"ok\\n"))
            """, base])
        #expect(status == 0, "\(output)")
        #expect(output.contains("closed at once: 8 then after"), "\(output)")
        #expect(output.contains("all closed by the server: True\n"), "\(output)")
        #expect(output.contains("absolute form: HTTP/1.1 200 OK True"), "\(output)")
        #expect(await daemon.stop() == 0)
    }

    /// A second daemon told to listen where the first does cannot start, and says why; being in use is not a
    /// configuration error (exit 1: a service manager may try again).
    @Test func aMetricsAddressInUseStopsTheStart() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let first = try await DaemonProcess.start(database: scratch.path + "/first.db")
        defer { _ = first.terminate() }
        let taken = try #require(first.metrics)
        let run = try await runProgram(
            Repository.cobaltBinary, serveOnLoopback(database: scratch.path + "/second.db") + ["--metrics", taken], timeout: 30)
        #expect(run.status == 1 && run.output.contains("cannot start") && run.output.contains("metrics endpoint \(taken)"), "\(run.output)")
    }
}
