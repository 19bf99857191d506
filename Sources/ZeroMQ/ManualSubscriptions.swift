/// Decides which messages read from an `XPUB_MANUAL` socket may have their subscription applied.
///
/// In manual mode libzmq (4.3) pairs each subscription message it queues with the connection it came from, and
/// `ZMQ_SUBSCRIBE` then applies to the connection of the message read last. Any other message from an XSUB peer
/// is queued without a connection, yet reading it still takes the next queued connection: every subscription read
/// after it, until the queue has been read empty, would be applied to the connection queued after its own —
/// another subscriber's. So after such a message nothing is applied until the socket has no input left; the
/// subscribers whose requests were skipped get nothing and resubscribe (``Subscriber`` does after a silence).
/// Use on the socket's own thread only.
public struct ManualSubscriptions: Sendable {
    public enum Verdict: Equatable, Sendable {
        /// A subscription (or its cancellation) paired with its own connection: approve it, then apply it.
        case subscription(subscribe: Bool, topic: [UInt8])
        /// Not a subscription message: nothing to apply, and the pairing is broken until the queue is empty.
        case notASubscription
        /// A subscription read while the pairing is broken: not applied.
        case skipped(subscribe: Bool, topic: [UInt8])
    }

    private var broken = false

    public init() {}

    /// What to do with `message`, just read from `socket`; call before reading the next message.
    public mutating func check(_ message: Message, on socket: ZMQSocket) -> Verdict {
        defer { if broken, !socket.hasInput { broken = false } }
        guard message.frames.count == 1, let frame = message.frames.first, let kind = frame.first, kind <= 1 else {
            broken = true
            return .notASubscription
        }
        let topic = Array(frame.dropFirst())
        return broken ? .skipped(subscribe: kind == 1, topic: topic) : .subscription(subscribe: kind == 1, topic: topic)
    }
}
