import Foundation
import Logging
import Synchronization
import ZeroMQ

/// Who a key belongs to, and which clinics it may act for (`nil`: every clinic).
struct Principal: Sendable, Equatable {
    var role: Authenticator.Role
    var name: String
    var clinics: Set<String>?

    /// The ZAP User-Id: `role:name`.
    var userID: String { "\(role.rawValue):\(name)" }

    func allows(clinic: String) -> Bool { clinics?.contains(clinic) ?? true }
}

/// CURVE authentication (ZAP) and per-clinic authorisation by authenticated identity.
///
/// One key allow-list per role — ingest senders, alert subscribers, operators — each a file of lines
/// `Z85PUBLICKEY name [clinic,clinic,…|*]`; `#` starts a comment at the start of a line or after whitespace
/// (keys themselves may contain `#`). The ZAP domain of each socket picks the list: `ingest` → senders,
/// `alerts` and `replay` → subscribers, `control` → operators. Lists reload without a restart (SIGHUP and
/// control `reload`); a list that fails to parse is refused and the previous one stays.
final class Authenticator: Sendable {
    enum Role: String, Sendable { case ingest, subscriber, `operator` }

    static let zapEndpoint = "inproc://zeromq.zap.01"

    private let files: [Role: String]
    private let lists: Mutex<[Role: [String: Principal]]>
    private let failures = Mutex(FailureLedger())
    /// `cobalt_auth_failures_total` per endpoint, each shown from the start.
    private let failureCounters = LabelledCounters(
        "cobalt_auth_failures_total", dimensions: ["endpoint"], initial: Authenticator.domains.map { [$0] })
    /// The ZAP domains Cobalt's sockets announce: one per endpoint.
    static let domains = ["ingest", "alerts", "replay", "control"]
    private let logger: Logger
    private let audit: AuditLog

    init(files: [Role: String], logger: Logger, audit: AuditLog) throws {
        self.files = files
        self.logger = logger
        self.audit = audit
        var loaded: [Role: [String: Principal]] = [:]
        for (role, file) in files { loaded[role] = try Self.read(file, role: role) }
        lists = Mutex(loaded)
    }

    /// Re-reads every allow-list; returns the errors of lists that were refused (those keep their old contents).
    @discardableResult
    func reload() -> [String] {
        var errors: [String] = []
        for (role, file) in files {
            do {
                let list = try Self.read(file, role: role)
                lists.withLock { $0[role] = list }
            } catch {
                errors.append("\(error)")
            }
        }
        return errors
    }

    static func read(_ file: String, role: Role) throws -> [String: Principal] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError("\(file): cannot read the \(role.rawValue) key allow-list")
        }
        var list: [String: Principal] = [:]
        var names: Set<String> = []
        for (number, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            // Z85 keys may contain '#': a comment starts a line, or follows whitespace.
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") { continue }
            if let comment = line.range(of: " #") ?? line.range(of: "\t#") { line = String(line[..<comment.lowerBound]) }
            guard !line.isEmpty else { continue }
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= 2, CurveKeyPair.isZ85Key(fields[0]) else {
                throw ConfigurationError("\(file):\(number + 1): expected 'PUBLICKEY name [clinic,…|*]' with a 40-character Z85 key")
            }
            guard names.insert(fields[1]).inserted else { throw ConfigurationError("\(file):\(number + 1): duplicate name '\(fields[1])'") }
            var clinics: Set<String>?
            if fields.count > 2, fields[2] != "*" { clinics = Set(fields[2].split(separator: ",").map(String.init)) }
            list[fields[0]] = Principal(role: role, name: fields[1], clinics: clinics)
        }
        return list
    }

    static func role(forDomain domain: String) -> Role? {
        switch domain {
        case "ingest": return .ingest
        case "alerts", "replay": return .subscriber
        case "control": return .operator
        default: return nil
        }
    }

    /// The principal behind an authenticated connection's User-Id.
    func principal(userID: String?) -> Principal? {
        guard let userID, let colon = userID.firstIndex(of: ":"), let role = Role(rawValue: String(userID[..<colon])) else { return nil }
        let name = String(userID[userID.index(after: colon)...])
        return lists.withLock { $0[role]?.values.first { $0.name == name } }
    }

    /// Answers a ZAP request (RFC 27) on the loop thread: `[routing…, "", "1.0", id, domain, address, identity,
    /// mechanism, key]` → `[routing…, "", "1.0", id, status, text, user id, metadata]`.
    func zap(_ message: Message) -> SocketSpec.Handling {
        let frames = message.frames
        guard let delimiter = frames.firstIndex(of: []), frames.count >= delimiter + 7 else { return .handled }
        let envelope = Array(frames[...delimiter])
        let request = Array(frames[(delimiter + 1)...])
        let version = String(decoding: request[0], as: UTF8.self)
        let requestID = request[1]
        let domain = String(decoding: request[2], as: UTF8.self)
        let address = String(decoding: request[3], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        func answer(_ status: String, _ text: String, user: String = "") -> SocketSpec.Handling {
            .reply(envelope + [Array("1.0".utf8), requestID, Array(status.utf8), Array(text.utf8), Array(user.utf8), []])
        }
        guard version == "1.0" else { return answer("500", "unsupported ZAP version") }
        guard mechanism == "CURVE", request.count >= 7, request[6].count == 32, let role = Self.role(forDomain: domain) else {
            recordFailure(address: address, domain: domain, reason: "mechanism \(mechanism) not allowed")
            return answer("400", "CURVE with a known key is required")
        }
        let key = Self.z85(request[6])
        guard let principal = lists.withLock({ $0[role]?[key] }) else {
            recordFailure(address: address, domain: domain, reason: "unknown key")
            return answer("400", "key not allowed")
        }
        return answer("200", "OK", user: principal.userID)
    }

    /// Authentication failures by endpoint and peer, for the audit trail. A peer's first failure in a window is
    /// audited at once; its later ones in the window are summed into one row when the window ends
    /// (``summariseFailures(now:)``). One rate limit shared by every peer used to decide which single failure in
    /// ten seconds was audited, so a flood from one address hid every other key's refusals (a security sweep: a
    /// subscriber key's 174 refused subscriptions left no row and no log line beside 3,000 unknown-key handshakes).
    struct FailureLedger {
        struct Peer: Hashable {
            var endpoint: String
            var actor: String
        }
        struct Entry {
            var opened: ContinuousClock.Instant
            var unrecorded = 0
            var reason: String
        }
        var entries: [Peer: Entry] = [:]
        var total = 0
        var lastLog = ContinuousClock.now - .seconds(60)
    }

    /// How long a peer's failures are summed before they are audited again.
    static let failureWindow: Duration = .seconds(10)
    /// Peers tracked at once, over all endpoints; beyond, failures are summed under `(other peers)`: many addresses
    /// (all of 127/8, an IPv6 /64) must grow neither the ledger nor the audit trail without bound. At most about
    /// two rows per tracked peer and window: under a flood from many addresses, some 11 rows a second.
    static let trackedPeers = 50

    /// Counts an authentication failure, audits it (per peer, see ``FailureLedger``) and logs it at a bounded rate
    /// (one line a second at most), with the peer address, never a secret. Text a peer chose (a topic) is written
    /// with its control characters escaped and cut short (it could forge log lines).
    func recordFailure(address: String, domain: String, reason: String) {
        failureCounters.increment([domain])
        let reason = Self.printable(reason)
        let now = ContinuousClock.now
        let (actor, row, log, total) = failures.withLock { ledger -> (String, Bool, Bool, Int) in
            ledger.total += 1
            var key = FailureLedger.Peer(endpoint: domain, actor: address)
            if ledger.entries[key] == nil, ledger.entries.count >= Self.trackedPeers { key.actor = "(other peers)" }
            var row = false
            if ledger.entries[key] != nil {
                ledger.entries[key]!.unrecorded += 1
                ledger.entries[key]!.reason = reason
            } else {
                ledger.entries[key] = FailureLedger.Entry(opened: now, reason: reason)
                row = true
            }
            let log = row && now - ledger.lastLog >= .seconds(1)
            if log { ledger.lastLog = now }
            return (key.actor, row, log, ledger.total)
        }
        if row { audit.record(actor: actor, action: "auth.refused", detail: "endpoint=\(domain) reason=\(reason) refused_total=\(total)") }
        if log {
            logger.warning("authentication refused", metadata: [
                "peer": "\(actor)", "endpoint": "\(domain)", "reason": "\(reason)", "refused_total": "\(total)",
            ])
        }
    }

    /// Audits, for each peer whose window has ended, the failures not yet audited (one row: how many, the last
    /// reason), and forgets the peer: its next failure is audited at once again. The audit service calls it
    /// before writing the trail.
    func summariseFailures(now: ContinuousClock.Instant = .now) {
        let rows = failures.withLock { ledger -> [(actor: String, detail: String)] in
            var rows: [(String, String)] = []
            for (peer, entry) in ledger.entries where now - entry.opened >= Self.failureWindow {
                ledger.entries[peer] = nil
                guard entry.unrecorded > 0 else { continue }
                rows.append((
                    peer.actor,
                    "endpoint=\(peer.endpoint) reason=\(entry.reason) refused_again=\(entry.unrecorded) within=\(Int(Self.failureWindow.components.seconds))s"))
            }
            return rows
        }
        for row in rows { audit.record(actor: row.actor, action: "auth.refused", detail: row.detail) }
    }

    /// Text a peer chose, for a log line or an audit row: control and format characters (line ends, escape
    /// sequences, bidirectional overrides) written as `\u{…}`, and at most 120 characters.
    static func printable(_ text: String) -> String {
        var out = ""
        var length = 0  // of `out`, in scalars (counting them again for each scalar added was quadratic)
        for scalar in text.unicodeScalars {
            guard length < 120 else { return out + "…" }
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator:
                let escape = "\\u{\(String(scalar.value, radix: 16))}"
                out += escape
                length += escape.unicodeScalars.count
            default:
                out.unicodeScalars.append(scalar)
                length += 1
            }
        }
        return out
    }

    /// Z85 text of a 32-byte key.
    static func z85(_ key: [UInt8]) -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
        var out: [UInt8] = []
        var index = 0
        while index + 4 <= key.count {
            var value = UInt32(key[index]) << 24 | UInt32(key[index + 1]) << 16 | UInt32(key[index + 2]) << 8 | UInt32(key[index + 3])
            var chunk = [UInt8](repeating: 0, count: 5)
            for position in stride(from: 4, through: 0, by: -1) {
                chunk[position] = alphabet[Int(value % 85)]
                value /= 85
            }
            out += chunk
            index += 4
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Approves an XPUB subscription (`ZMQ_XPUB_MANUAL`, read and paired by ``ManualSubscriptions``) only for
    /// topics of the subscriber's clinics, and `ops/`; applies it and returns whether it did.
    func approveSubscription(subscribe: Bool, topic: [UInt8], userID: String?, on socket: ZMQSocket) -> Bool {
        let text = String(decoding: topic, as: UTF8.self)
        guard let principal = principal(userID: userID), principal.role == .subscriber else { return false }
        var allowed = text.hasPrefix("ops/")
        if let clinic = Publisher.clinic(inSubscription: topic) { allowed = principal.allows(clinic: clinic) }
        if principal.clinics == nil { allowed = true }
        guard allowed else {
            recordFailure(address: principal.userID, domain: "alerts", reason: "subscription to '\(text)' not authorised")
            return false
        }
        try? socket.set(subscribe ? .subscribe : .unsubscribe, topic)
        return true
    }
}
