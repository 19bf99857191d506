import Foundation
public import Logging
import RuleEngine
import Synchronization

/// How `cobalt serve` writes its log to stderr: swift-log's `StreamLogHandler` lines (`text`, for people), or one
/// JSON object per line (`json`, for log shippers: Loki, Elasticsearch, journald's `MESSAGE` parsed downstream).
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json

    /// The handler factory for `LoggingSystem.bootstrap`.
    public func handlerFactory(level: Logger.Level) -> @Sendable (String) -> any LogHandler {
        switch self {
        case .text:
            return { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            return { label in JSONLogHandler(label: label, level: level) }
        }
    }
}

/// Writes each record as one JSON object on one line of stderr:
/// `{"time":"2026-11-23T07:30:00.123Z","level":"info","logger":"cobalt","message":"cobalt started","ingest":"tcp://…"}`.
///
/// The metadata's keys sit beside the record's own (`time`, `level`, `logger`, `message`, `source`); a metadata key
/// spelt like one of those is written with a `metadata.` prefix rather than replacing it. Values are JSON strings,
/// or arrays and objects for swift-log's list and dictionary values. A line is written with one `write` under a
/// process-wide lock, so records from different threads never interleave. What is logged is the caller's concern
/// as in text form: no patient data at info level (docs/security.md).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let write: @Sendable ([UInt8]) -> Void

    /// Record members written by the handler itself; metadata may not take these names.
    static let ownKeys: Set<String> = ["time", "level", "logger", "message", "source"]

    public init(label: String, level: Logger.Level = .info) {
        self.init(label: label, level: level, write: Self.writeToStandardError)
    }

    /// A handler writing its lines to `write` (tests collect them).
    init(label: String, level: Logger.Level, write: @escaping @Sendable ([UInt8]) -> Void) {
        self.label = label
        self.logLevel = level
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        write(Self.line(
            time: Date(), level: event.level, logger: label, message: event.message.description, source: event.source, metadata: merged))
    }

    /// The record as a line of JSON, ending in a newline. Keys after the record's own are sorted (stable output).
    static func line(
        time: Date, level: Logger.Level, logger: String, message: String, source: String, metadata: Logger.Metadata
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out += "{\"time\":\"\(timestamp(time))\",\"level\":\"\(level.rawValue)\",\"logger\":".utf8
        out += logger.jsonQuoted.utf8
        out += ",\"message\":".utf8
        out += message.jsonQuoted.utf8
        out += ",\"source\":".utf8
        out += source.jsonQuoted.utf8
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            out.append(UInt8(ascii: ","))
            out += (ownKeys.contains(key) ? "metadata.\(key)" : key).jsonQuoted.utf8
            out.append(UInt8(ascii: ":"))
            append(value, to: &out)
        }
        out += "}\n".utf8
        return out
    }

    private static func append(_ value: Logger.Metadata.Value, to out: inout [UInt8]) {
        switch value {
        case .string(let text):
            out += text.jsonQuoted.utf8
        case .stringConvertible(let convertible):
            out += convertible.description.jsonQuoted.utf8
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                append(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let members):
            out.append(UInt8(ascii: "{"))
            for (index, (key, element)) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out += key.jsonQuoted.utf8
                out.append(UInt8(ascii: ":"))
                append(element, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// RFC 3339 in UTC with milliseconds (`2026-11-23T07:30:00.123Z`), truncated: the alerts' time stamps.
    static func timestamp(_ date: Date) -> String { Timestamp.formatMilliseconds(date.timeIntervalSince1970) }

    private static let standardErrorLock = Mutex(())

    /// One line, whole: retried after a partial write or EINTR, and after EAGAIN once stderr can take more (a
    /// non-blocking pipe); on any other error the rest is dropped and a line end tried, so that the next record
    /// starts a line of its own rather than being glued to a broken one.
    @Sendable private static func writeToStandardError(_ line: [UInt8]) {
        standardErrorLock.withLock { _ in
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Foundation.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0, errno == EINTR {
                        continue
                    } else if written < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                        var descriptor = pollfd(fd: STDERR_FILENO, events: Int16(POLLOUT), revents: 0)
                        if poll(&descriptor, 1, 1_000) <= 0 { break }
                    } else {
                        break
                    }
                }
                if offset > 0, offset < bytes.count { _ = Foundation.write(STDERR_FILENO, "\n", 1) }
            }
        }
    }
}
