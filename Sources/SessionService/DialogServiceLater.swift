import DialogWire
import SessionStore

/// The webhook's common case with no thread waiting for the commit: an event for a
/// conversation named by its id, whose links (`identities`, `userId`), if any, are known to
/// point at it already (nothing to read or write), whose latest version this process has
/// cached, that is not a duplicate and not a channel switch with a restore to send, and
/// whose new version is small (`Limits.laterMaxSnapshotBytes`). Everything else goes the
/// blocking way (`ingest`) from the start, and so does an event whose write lost to
/// another writer: nothing of it was written, so `ingest` applies it afresh exactly as a
/// retry would.
///
/// Nothing on this path logs or blocks: the loop that calls `ingestLater` serves every
/// parked connection, and the store thread that finishes it commits everyone's writes.
extension DialogService {
    public enum LaterOutcome<Answer: Sendable>: Sendable {
        /// The event is stored: the answer built for it.
        case stored(Answer)
        /// Nothing was written, and retrying would not help now: what `ingest` would have
        /// thrown (the store's error).
        case failed(IngestError)
        /// Nothing was written (another writer was first, or the conversation is too large
        /// for this path): `ingest` must apply the event, and likely the next ones too.
        case ingestInstead
    }

    /// Whether `ingestLater` can take events at all: the store writes without a waiting
    /// thread (SQLite, not DynamoDB) and the snapshot cache is on.
    public var ingestsLater: Bool { store.writesLater && limits.snapshotCacheEntries > 0 }

    /// Starts the common case of `ingest` and returns true: `answer` is called at once, on
    /// this thread, with the result the event will have once stored, and `done` once, on the
    /// store's commit thread (where it must not block), or at once with `.ingestInstead` for
    /// a conversation this path does not take. False, with nothing started and neither
    /// called, for an event that needs `ingest` now (its next may not).
    public func ingestLater<Answer: Sendable>(
        _ event: DialogEvent, answer: (IngestResult) -> Answer, done: @escaping @Sendable (LaterOutcome<Answer>) -> Void
    ) -> Bool {
        guard !event.conversationId.isEmpty, let subjects = try? validate(event),
            let cached = latestCache.get(event.conversationId),
            subjects.isEmpty || linker.knowsAll(subjects, pointAt: event.conversationId)
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
        // SPEC: snapshots keep no identity values (they only ever reach the link hashes).
        stamped.identities = [:]
        let switched = SessionMerge.isChannelSwitch(previous: previous, event: stamped)
        // A switch with Cognigy configured sends or queues a restore: `ingest`'s work.
        if switched, restorer != nil { return false }
        let next = SessionMerge.apply(
            stamped, to: previous, version: cached.version + 1, eventDigest: digest, nowMs: now,
            ttlSeconds: limits.sessionTTLSeconds)
        // Over `maxSnapshotBytes`, `ingest` answers 413; over the fast path's own bound, it
        // keeps the encoding of a large conversation off the loop and the commit thread (and
        // this conversation's next events, as large, with it).
        let size = next.serializedSize()
        if size > limits.maxSnapshotBytes { return false }
        if size > limits.laterMaxSnapshotBytes {
            done(.ingestInstead)
            return true
        }
        let answered = answer(
            IngestResult(
                status: .processed, snapshot: next, channelSwitched: switched, restore: switched ? .skipped : .none,
                restoredFrom: switched ? previous.channel : nil, conflicts: 0))
        let conversationId = event.conversationId
        return store.insertLater(next, after: cached.basis) { [self] result in
            switch result {
            case .success(let basis):
                remember(next, basis: basis)
                done(.stored(answered))
            case .failure(.versionConflict):
                // The cached version is no longer the latest.
                latestCache.remove(conversationId)
                done(.ingestInstead)
            case .failure(let error):
                done(.failed(Self.map(error)))
            }
        }
    }
}
