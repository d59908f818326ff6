import Crypto
import DialogWire

/// The merge rules of SPEC "Semantics", pure: version n+1 = version n with the event applied.
public enum SessionMerge {
    /// How many event ids a snapshot remembers for de-duplication.
    public static let maxRecentEventIds = 64

    /// The event's delivery id, or when it has none a hash of its canonical protobuf bytes
    /// (deterministic encoding, so the same event always hashes the same). FNV-1a 64 is
    /// not cryptographic; it only has to tell apart the last 64 events of one conversation.
    public static func eventId(for event: DialogEvent) -> String {
        if !event.eventId.isEmpty { return event.eventId }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in event.serializedBytes() {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return "h:" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The 64-bit digest a snapshot remembers an event id by: the first 8 bytes of the
    /// SHA-256 of its UTF-8 bytes, big-endian. 8 bytes instead of 36 for a UUID keeps a
    /// snapshot with 64 remembered ids at about 0.6 KB instead of 2.5 KB (each version is
    /// a row or item of its own). Two different ids share a digest with probability 2⁻⁶⁴,
    /// so a new event is mistaken for one of the last 64 with probability below 4·10⁻¹⁸,
    /// and an id made to match a known one costs a 2⁶⁴ second-preimage search.
    public static func eventDigest(_ eventId: String) -> UInt64 {
        let hash = SHA256.hash(Array(eventId.utf8))
        var digest: UInt64 = 0
        for byte in hash.prefix(8) { digest = digest << 8 | UInt64(byte) }
        return digest
    }

    /// Whether `snapshot` remembers the event (`digest` is `eventDigest(eventId)`): by its
    /// digest, or by the plain id a snapshot written before digests holds.
    public static func remembers(_ snapshot: SessionSnapshot, eventId: String, digest: UInt64) -> Bool {
        snapshot.recentEventDigests.contains(digest) || snapshot.recentEventIds.contains(eventId)
    }

    /// Whether the event is the last one applied to `snapshot`.
    public static func isLastEvent(of snapshot: SessionSnapshot, eventId: String, digest: UInt64) -> Bool {
        if let last = snapshot.recentEventDigests.last { return last == digest }
        return snapshot.recentEventIds.last == eventId
    }

    /// Applies `event` to `previous` (nil: start from empty) as version `version`.
    /// - Parameters:
    ///   - eventDigest: `eventDigest(eventId(for:))`, remembered for de-duplication.
    ///   - nowMs: write time, epoch milliseconds (`updatedAt`).
    ///   - ttlSeconds: `expiresAt` = now + ttl.
    public static func apply(
        _ event: DialogEvent, to previous: SessionSnapshot?, version: Int64, eventDigest: UInt64, nowMs: Int64,
        ttlSeconds: Int64
    ) -> SessionSnapshot {
        var next = previous ?? SessionSnapshot()
        next.conversationId = event.conversationId
        next.sessionVersion = version
        // previousChannel is the channel the user came from: it changes only on a switch,
        // so it survives further events on the new channel.
        if let previous, !previous.channel.isEmpty, previous.channel != event.channel {
            next.previousChannel = previous.channel
        }
        next.channel = event.channel
        if !event.intent.isEmpty { next.intent = event.intent }
        for (key, value) in event.slots { next.slots[key] = value }
        var state = next.channels[event.channel] ?? ChannelState()
        if !event.userId.isEmpty { state.userId = event.userId }
        if !event.sessionId.isEmpty { state.sessionId = event.sessionId }
        state.lastSeen = event.timestamp
        next.channels[event.channel] = state
        next.eventTimestamp = event.timestamp
        next.updatedAt = nowMs
        next.expiresAt = nowMs / 1000 + ttlSeconds
        // Ids an older snapshot holds in plain text become digests, once.
        if !next.recentEventIds.isEmpty {
            next.recentEventDigests = next.recentEventIds.map(Self.eventDigest) + next.recentEventDigests
            next.recentEventIds = []
        }
        next.recentEventDigests.append(eventDigest)
        if next.recentEventDigests.count > maxRecentEventIds {
            next.recentEventDigests.removeFirst(next.recentEventDigests.count - maxRecentEventIds)
        }
        return next
    }

    /// A channel switch: a previous snapshot exists and its channel differs from the event's.
    public static func isChannelSwitch(previous: SessionSnapshot?, event: DialogEvent) -> Bool {
        guard let previous, !previous.channel.isEmpty else { return false }
        return previous.channel != event.channel
    }

    /// The context pushed to Cognigy and returned by the webhook: the merged slots plus
    /// `intent` and `sessionVersion` (these two win over slots of the same name).
    public static func writeContext(
        _ snapshot: SessionSnapshot, restoredFrom: String? = nil, to w: inout JSONWriter
    ) {
        w.beginObject()
        for key in snapshot.slots.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        where key != "intent" && key != "sessionVersion" && !(restoredFrom != nil && key == "restoredFrom") {
            w.key(key)
            w.value(snapshot.slots[key]!)
        }
        w.key("intent")
        snapshot.intent.isEmpty ? w.null() : w.value(snapshot.intent)
        w.key("sessionVersion")
        w.value(snapshot.sessionVersion)
        if let restoredFrom {
            w.key("restoredFrom")
            w.value(restoredFrom)
        }
        w.endObject()
    }
}
