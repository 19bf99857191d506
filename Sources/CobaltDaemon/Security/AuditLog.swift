import CobaltStore
import Foundation
import Metrics
import ServiceLifecycle
import Synchronization

/// The audit trail: who did what, when. Recording never blocks (it is called from the socket thread too); a
/// service writes the entries to the store twice a second, and once more on shutdown. No patient payloads.
final class AuditLog: Sendable {
    private let pending = Mutex<[AuditEntry]>([])

    func record(actor: String, action: String, detail: String) {
        let entry = AuditEntry(time: Date().timeIntervalSince1970, actor: actor, action: action, detail: detail)
        pending.withLock { $0.append(entry) }
    }

    func flush(to store: any CobaltStore) async {
        let entries = pending.withLock { list -> [AuditEntry] in
            defer { list.removeAll() }
            return list
        }
        guard !entries.isEmpty else { return }
        do { try await store.audit(entries) } catch {
            pending.withLock { $0.insert(contentsOf: entries, at: 0) }  // try again next time
        }
    }
}

/// Writes the audit log to the store.
struct AuditService: Service {
    let audit: AuditLog
    let store: any CobaltStore
    /// Sums authentication failures into the trail before each write (with security).
    var authenticator: Authenticator?

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            try? await Task.sleep(for: .milliseconds(500))
            authenticator?.summariseFailures()
            await audit.flush(to: store)
        }
        authenticator?.summariseFailures(now: .now + Authenticator.failureWindow)  // every window ends at the stop
        await audit.flush(to: store)
    }
}
