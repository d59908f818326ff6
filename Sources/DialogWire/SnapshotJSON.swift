/// The JSON view of a stored snapshot, as the sessions API returns it (SPEC "Snapshot JSON").

extension SessionSnapshot {
    /// Writes the snapshot as one JSON object.
    public func writeJSON(to w: inout JSONWriter) {
        w.beginObject()
        w.key("conversationId"); w.value(conversationId)
        w.key("sessionVersion"); w.value(sessionVersion)
        w.key("channel"); w.value(channel)
        w.key("previousChannel"); previousChannel.isEmpty ? w.null() : w.value(previousChannel)
        w.key("intent"); intent.isEmpty ? w.null() : w.value(intent)
        w.key("slots"); Self.writeStringMap(slots, to: &w)
        w.key("channels")
        w.beginObject()
        for name in sortedMapKeys(channels) {
            let state = channels[name]!
            w.key(name)
            w.beginObject()
            w.key("userId"); state.userId.isEmpty ? w.null() : w.value(state.userId)
            w.key("sessionId"); state.sessionId.isEmpty ? w.null() : w.value(state.sessionId)
            w.key("lastSeen"); w.value(state.lastSeen)
            w.endObject()
        }
        w.endObject()
        w.key("eventTimestamp"); w.value(eventTimestamp)
        w.key("updatedAt"); w.value(updatedAt)
        w.key("expiresAt"); w.value(expiresAt)
        w.endObject()
    }

    /// A string map as a JSON object with keys in byte order (stable output).
    public static func writeStringMap(_ map: [String: String], to w: inout JSONWriter) {
        w.beginObject()
        for key in sortedMapKeys(map) {
            w.key(key)
            w.value(map[key]!)
        }
        w.endObject()
    }
}
