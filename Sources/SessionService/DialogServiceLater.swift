import DialogWire
import SessionStore

/// The webhook's common case with no thread waiting for the commit: an event for a
/// conversation named by its id, with no identities or `userId` to link, whose latest
/// version this process has cached, that is not a duplicate and not a channel switch with
/// a restore to send. Everything else goes the blocking way (`ingest`) from the start, and
/// so does an event whose write lost to another writer: nothing of it was written, so
/// `ingest` applies it afresh exactly as a retry would.
///
/// Nothing on this path logs or blocks: the loop that calls `ingestLater` serves every
/// parked connection, and the store thread that finishes it commits everyone's writes.
extension DialogService {
    public enum LaterOutcome: Sendable {
        /// The event is stored: what `ingest` would have returned.
        case stored(IngestResult)
        /// Nothing was written (a lost write, a store error): `ingest` must handle the event,
        /// and answer or report it as it would have.
        case ingestInstead
    }

    /// Starts the common case of `ingest` and returns true; `done` is then called once, on
    /// the store's commit thread, and must not block. False, with nothing started and `done`
    /// never called, for any event that needs `ingest`.
    public func ingestLater(_ event: DialogEvent, done: @escaping @Sendable (LaterOutcome) -> Void) -> Bool {
        guard !event.conversationId.isEmpty, event.identities.isEmpty, event.userId.isEmpty,
            let subjects = try? validate(event), subjects.isEmpty,
            let cached = latestCache.get(event.conversationId)
        else { return false }
        let now = clockMs()
        // An expired or corrupt latest (which `ingest` logs) goes the blocking way.
        guard !cached.isExpired(nowSeconds: now / 1000), case .success(let previous) = cached.snapshot else { return false }
        // The id is taken from the event as received, as `ingest` does.
        let eventId = SessionMerge.eventId(for: event)
        let digest = SessionMerge.eventDigest(eventId)
        // A duplicate is answered from the store, never from memory alone (see `ingest`).
        if SessionMerge.remembers(previous, eventId: eventId, digest: digest) { return false }
        var stamped = event
        if stamped.timestamp == 0 { stamped.timestamp = now / 1000 }
        let switched = SessionMerge.isChannelSwitch(previous: previous, event: stamped)
        // A switch with Cognigy configured sends or queues a restore: `ingest`'s work.
        if switched, restorer != nil { return false }
        let next = SessionMerge.apply(
            stamped, to: previous, version: cached.version + 1, eventDigest: digest, nowMs: now,
            ttlSeconds: limits.sessionTTLSeconds)
        guard next.serializedSize() <= limits.maxSnapshotBytes else { return false }
        let conversationId = event.conversationId
        return store.insertLater(next, after: cached.basis) { [self] result in
            switch result {
            case .success(let basis):
                remember(next, basis: basis)
                done(
                    .stored(
                        IngestResult(
                            status: .processed, snapshot: next, channelSwitched: switched, restore: switched ? .skipped : .none,
                            restoredFrom: switched ? previous.channel : nil, conflicts: 0)))
            case .failure(let error):
                // A lost write means the cached version is no longer the latest.
                if case .versionConflict = error { latestCache.remove(conversationId) }
                done(.ingestInstead)
            }
        }
    }
}
