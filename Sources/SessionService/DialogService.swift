#if canImport(Glibc)
import Glibc
#endif
import Backoff
import DialogWire
import Identity
import Primitives
import SessionStore

/// What a user can get wrong, or what the store can refuse, while ingesting an event.
public enum IngestError: Error, Equatable, Sendable {
    /// The event is invalid (→ 400), with a one-sentence reason.
    case invalidEvent(String)
    /// The merged state would exceed `MAX_SNAPSHOT_BYTES` (→ 413).
    case snapshotTooLarge(limit: Int)
    /// The store could not take the write now (→ 503 + Retry-After).
    case storeUnavailable(String)
    /// The store rejected the request as malformed (a deployment problem, not transient → 500).
    case storeRejected(String)
    /// The store refused our credentials, or none could be had (→ 500 `store_auth_failed`,
    /// logged at error; clears once the credentials are renewed).
    case storeAuthFailed(String)
    /// Every conditional-write attempt lost to another writer (→ 503 + Retry-After).
    case tooMuchContention(attempts: Int)
    /// A stored value is encrypted under a key id that is not configured (→ 500
    /// `encryption_key_unavailable`); nothing is written.
    case encryptionKeyUnavailable(keyId: String)
}

public enum IngestStatus: String, Sendable {
    case processed, duplicate
}

public enum RestoreOutcome: String, Sendable {
    case none, sent, queued, skipped
}

public struct IngestResult: Sendable {
    public let status: IngestStatus
    public let snapshot: SessionSnapshot
    public let channelSwitched: Bool
    public let restore: RestoreOutcome
    /// The channel the conversation came from when `channelSwitched`.
    public let restoredFrom: String?
    /// Conditional writes lost before this one won (for logs and tests).
    public let conflicts: Int
    /// How the conversation was found: `conversationId`, `identity:<kind>`, `user` or `new`.
    public var linkedBy = "conversationId"
    /// Links of the event held by another live conversation (SPEC `linkConflicts`).
    public var linkConflicts: [String] = []
}

/// The ingest pipeline: read latest → merge → conditional write → on conflict re-read and
/// retry with jittered backoff. No version is ever kept in memory, so any number of
/// replicas can serve one conversation.
public final class DialogService: Sendable {
    public struct Limits: Sendable {
        /// Longest id-like field, in characters (Unicode scalars, as JSON Schema's `maxLength`
        /// counts); 512 characters are at most 2,048 UTF-8 bytes, DynamoDB's partition-key limit.
        public var maxIdLength = 512
        public var maxSnapshotBytes = 262_144
        public var writeMaxAttempts = 10
        public var sessionTTLSeconds: Int64 = 604_800
        /// Conversations whose latest version this process keeps (`SNAPSHOT_CACHE_ENTRIES`):
        /// an event builds on it without reading the store; the conditional write catches
        /// a stale entry as a version conflict. 0 turns the cache off.
        public var snapshotCacheEntries = 10_000
        /// Largest new version (encoded bytes) the webhook's fast path writes
        /// (`ingestLater`): a larger one is merged, encoded and answered by a worker, so the
        /// idle loop and the commit thread, which serve everyone, never spend long on one.
        public var laterMaxSnapshotBytes = 16_384
        /// Backoff between conflicting attempts.
        public var conflictBackoff = Backoff(baseMs: 2, capMs: 100)
        public init() {}

        /// The 400 message for the first field longer than `maxIdLength` characters; nil when
        /// all fit. The one id-length check, for events, the restore body and the sessions
        /// routes' path.
        public func tooLongId(_ fields: [(name: String, value: String)]) -> String? {
            guard let field = fields.first(where: { $0.value.unicodeScalars.count > maxIdLength }) else { return nil }
            return "Field '\(field.name)' is longer than \(maxIdLength) characters."
        }

        /// The 400 message for the first id holding a control character (U+0000–U+001F,
        /// U+007F), nil when none does. Ids end up in keys, URLs, logs and C strings, where a
        /// NUL truncates and a newline forges lines.
        public static func controlCharacterId(_ fields: [(name: String, value: String)]) -> String? {
            guard let field = fields.first(where: { hasControlCharacter($0.value) }) else { return nil }
            return "Field '\(field.name)' contains a control character."
        }

        public static func hasControlCharacter(_ value: String) -> Bool {
            value.utf8.contains { $0 < 0x20 || $0 == 0x7F }
        }
    }

    public let store: any SessionStore
    public let limits: Limits
    /// Restores into Cognigy on channel switches; nil when Cognigy is not configured.
    public let restorer: Restorer?
    /// Finds the conversation of an event without `conversationId` and writes its links.
    public let linker: LinkResolver
    let logger: Logger
    let clockMs: @Sendable () -> Int64
    /// The latest version of each recently served conversation, as this process wrote or
    /// read it. Never trusted for anything a write does not re-check: the write of n+1 is
    /// conditional on n, so a stale entry costs one conflict and one re-read.
    let latestCache: LRUCache<String, StoredVersion>

    public init(
        store: any SessionStore, linker: LinkResolver, limits: Limits, logger: Logger, restorer: Restorer? = nil,
        clockMs: @escaping @Sendable () -> Int64 = DialogService.wallClockMs
    ) {
        self.store = store
        self.linker = linker
        self.latestCache = linker.latestCache ?? LRUCache(capacity: limits.snapshotCacheEntries)
        self.restorer = restorer
        self.limits = limits
        self.logger = logger
        self.clockMs = clockMs
    }

    public static let wallClockMs: @Sendable () -> Int64 = {
        var tv = timeval()
        gettimeofday(&tv, nil)
        return Int64(tv.tv_sec) * 1000 + Int64(tv.tv_usec) / 1000
    }

    /// Checks what SPEC requires of an event and the configured limits; returns the
    /// event's links in resolution order.
    @discardableResult
    public func validate(_ event: DialogEvent) throws(IngestError) -> [LinkSubject] {
        guard !event.channel.isEmpty else { throw .invalidEvent("Field 'channel' is required.") }
        let ids: [(name: String, value: String)] = [
            ("conversationId", event.conversationId), ("channel", event.channel), ("intent", event.intent),
            ("userId", event.userId), ("sessionId", event.sessionId), ("eventId", event.eventId),
        ]
        if let long = limits.tooLongId(ids) { throw .invalidEvent(long) }
        if let bad = Limits.controlCharacterId(ids) { throw .invalidEvent(bad) }
        let subjects: [LinkSubject]
        do {
            subjects = try IdentityRules.subjects(
                identities: event.identities, channel: event.channel, userId: event.userId, maxLength: limits.maxIdLength)
        } catch { throw .invalidEvent(error.description) }
        guard !event.conversationId.isEmpty || !subjects.isEmpty else {
            throw .invalidEvent("One of 'conversationId', a non-empty 'identities' entry or 'userId' is required.")
        }
        return subjects
    }

    /// Applies one event and stores it as the next version. Returns only after the write is
    /// durable (or the event was found to be a duplicate).
    public func ingest(_ received: DialogEvent) throws(IngestError) -> IngestResult {
        let subjects = try validate(received)
        // The id is taken from the event as received, before defaults are filled in, so a
        // re-delivery of the same bytes hashes the same.
        let eventId = SessionMerge.eventId(for: received)
        let resolution: LinkResolver.Resolution
        do { resolution = try linker.resolve(conversationId: received.conversationId, subjects: subjects) } catch {
            throw Self.map(error)
        }
        var result = try apply(received, to: resolution.conversationId, eventId: eventId)
        result.linkedBy = resolution.linkedBy
        result.linkConflicts = resolution.conflicts
        return result
    }

    /// The write loop: the event applied to the latest version of its conversation.
    private func apply(_ received: DialogEvent, to conversationId: String, eventId: String) throws(IngestError) -> IngestResult {
        var event = received
        event.conversationId = conversationId
        // SPEC: snapshots keep no identity values (they only ever reach the link hashes).
        event.identities = [:]
        let now = clockMs()
        if event.timestamp == 0 { event.timestamp = now / 1000 }

        let digest = SessionMerge.eventDigest(eventId)
        var conflicts = 0
        var useCache = true
        for attempt in 0..<limits.writeMaxAttempts {
            let cached = useCache ? latestCache.get(conversationId) : nil
            let latest: StoredVersion?
            if let cached {
                latest = cached
            } else {
                latest = try readLatest(conversationId)
            }
            let previous = try live(latest, nowMs: clockMs())

            if let previous, SessionMerge.remembers(previous, eventId: eventId, digest: digest) {
                // A duplicate is answered from the store, never from memory alone: the
                // conversation may have been erased by another replica since.
                if cached != nil {
                    useCache = false
                    continue
                }
                return duplicate(of: event, eventId: eventId, digest: digest, previous: previous, conflicts: conflicts)
            }

            // An expired latest is no state at all, but numbering continues after it, and the
            // write still requires it to be there (so a sweep in between is a conflict).
            let next = SessionMerge.apply(
                event, to: previous, version: (latest?.version ?? 0) + 1, eventDigest: digest, nowMs: clockMs(),
                ttlSeconds: limits.sessionTTLSeconds)
            guard next.serializedSize() <= limits.maxSnapshotBytes else {
                throw .snapshotTooLarge(limit: limits.maxSnapshotBytes)
            }
            do {
                remember(next, basis: try store.insert(next, after: latest?.basis))
                let switched = SessionMerge.isChannelSwitch(previous: previous, event: event)
                let restoredFrom = switched ? previous?.channel : nil
                var restore = RestoreOutcome.none
                if switched {
                    restore = restoreAfterSwitch(next, restoredFrom: restoredFrom, event: event)
                }
                return IngestResult(
                    status: .processed, snapshot: next, channelSwitched: switched, restore: restore,
                    restoredFrom: restoredFrom, conflicts: conflicts)
            } catch .versionConflict {
                latestCache.remove(conversationId)
                useCache = false
                conflicts += 1
                logger.debug(
                    "version conflict, re-reading",
                    [("conversation_id", .string(event.conversationId)), ("version", .int(next.sessionVersion)),
                     ("cached", .bool(cached != nil))])
                // A stale cache entry is no contention: re-read at once.
                if cached == nil {
                    sleepMs(limits.conflictBackoff.delayMs(attempt: attempt, unit: Double.random(in: 0..<1)))
                }
            } catch {
                throw Self.map(error)
            }
        }
        logger.warn(
            "write contention: retry budget used up",
            [("conversation_id", .string(event.conversationId)), ("attempts", .int(Int64(limits.writeMaxAttempts)))])
        throw .tooMuchContention(attempts: limits.writeMaxAttempts)
    }

    /// The latest version from the store, remembered for the next event. A history that
    /// went backwards (erased or expired elsewhere) also forgets the links known to exist.
    private func readLatest(_ conversationId: String) throws(IngestError) -> StoredVersion? {
        let latest: StoredVersion?
        do { latest = try store.latest(conversationId) } catch { throw Self.map(error) }
        let known = latestCache.get(conversationId)
        if let known, (latest?.version ?? 0) < known.version { linker.forgetKnownLinks() }
        if let latest, case .success = latest.snapshot {
            latestCache.set(conversationId, latest, if: { ($0?.version ?? 0) <= latest.version })
        } else {
            latestCache.remove(conversationId)
        }
        return latest
    }

    /// Keeps a version this process wrote as the conversation's latest (unless a newer one
    /// is already known).
    func remember(_ snapshot: SessionSnapshot, basis: WriteBasis) {
        let stored = StoredVersion(
            conversationId: snapshot.conversationId, version: snapshot.sessionVersion, updatedAt: snapshot.updatedAt,
            expiresAt: snapshot.expiresAt, snapshot: .success(snapshot), fingerprint: basis.fingerprint)
        latestCache.set(snapshot.conversationId, stored, if: { ($0?.version ?? 0) < snapshot.sessionVersion })
    }

    /// The state an event builds on: nil when nothing is stored, when the latest version
    /// has expired (SPEC "Expiry"), or when it is corrupt (logged, then treated as empty).
    private func live(_ latest: StoredVersion?, nowMs: Int64) throws(IngestError) -> SessionSnapshot? {
        guard let latest, !latest.isExpired(nowSeconds: nowMs / 1000) else { return nil }
        switch latest.snapshot {
        case .success(let snapshot):
            return snapshot
        case .failure(let wireError):
            // SPEC: logged with its key, left untouched, the event applied to an empty state.
            logger.error(
                "corrupt stored snapshot; applying the event to an empty state",
                [("conversation_id", .string(latest.conversationId)), ("version", .int(latest.version)),
                 ("error", .string("\(wireError)"))])
            return nil
        }
    }

    /// A re-delivered event changes nothing. If it is the channel switch that made the
    /// latest version, its restore is queued again: the first delivery may have been
    /// acknowledged by the store and then lost with the process before its restore was
    /// queued (the outbox keeps one restore per session, so this cannot pile up).
    private func duplicate(
        of event: DialogEvent, eventId: String, digest: UInt64, previous: SessionSnapshot, conflicts: Int
    ) -> IngestResult {
        let wasSwitch =
            SessionMerge.isLastEvent(of: previous, eventId: eventId, digest: digest)
            && previous.channel == event.channel
            && !previous.previousChannel.isEmpty && previous.previousChannel != event.channel
        var restore = RestoreOutcome.none
        if wasSwitch, restorer != nil {
            restore = restoreAfterSwitch(previous, restoredFrom: previous.previousChannel, event: event)
        }
        return IngestResult(
            status: .duplicate, snapshot: previous, channelSwitched: wasSwitch, restore: restore,
            restoredFrom: wasSwitch ? previous.previousChannel : nil, conflicts: conflicts)
    }

    /// SPEC: restore only when Cognigy is configured and the event names the target session.
    private func restoreAfterSwitch(_ snapshot: SessionSnapshot, restoredFrom: String?, event: DialogEvent) -> RestoreOutcome {
        guard let restorer else { return .skipped }
        guard !event.userId.isEmpty, !event.sessionId.isEmpty else {
            logger.info(
                "restore skipped: the event has no userId or sessionId",
                [("conversation_id", .string(event.conversationId)), ("channel", .string(event.channel))])
            return .skipped
        }
        return restorer.restore(
            RestoreTarget(
                conversationId: snapshot.conversationId, sessionId: event.sessionId, userId: event.userId,
                restoredFrom: restoredFrom ?? ""),
            version: snapshot.sessionVersion)
    }

    // MARK: erasure and links

    /// SPEC: erases every link, version and queued restore of a conversation; returns how
    /// many versions were erased. Links go first, so nothing finds the conversation while
    /// its versions are being deleted.
    public func erase(_ conversationId: String) throws(StoreError) -> Int {
        latestCache.remove(conversationId)
        linker.forgetKnownLinks()
        let unlinked = try linker.links.deleteLinks(conversationId: conversationId)
        let count = try store.deleteConversation(conversationId)
        logger.debug("erased", [("conversation_id", .string(conversationId)), ("links", .int(Int64(unlinked)))])
        // Queued restores of an erased conversation must never be delivered.
        try restorer?.queue.removeConversation(conversationId)
        return count
    }

    /// The conversation a live link of `subject` points at (SPEC `GET /links`): the link
    /// must not be expired and its conversation must have a live version.
    public func linkedConversation(_ subject: LinkSubject) throws(StoreError) -> String? {
        guard let link = try linker.links.link(linker.hasher.linkKey(subject)) else { return nil }
        let now = clockMs() / 1000
        guard !link.isExpired(nowSeconds: now), let latest = try latest(link.conversationId) else { return nil }
        return latest.conversationId
    }

    // MARK: reads (SPEC "Expiry": an expired version reads as absent)

    /// The latest version, nil when none is stored or it has expired.
    public func latest(_ conversationId: String) throws(StoreError) -> StoredVersion? {
        guard let latest = try store.latest(conversationId), !latest.isExpired(nowSeconds: clockMs() / 1000) else { return nil }
        return latest
    }

    /// One version, nil when not stored or expired.
    public func version(_ conversationId: String, _ version: Int64) throws(StoreError) -> StoredVersion? {
        guard let found = try store.version(conversationId, version), !found.isExpired(nowSeconds: clockMs() / 1000) else {
            return nil
        }
        return found
    }

    /// Live versions newest first (expiry removes them from the oldest end).
    public func versions(_ conversationId: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        let now = clockMs() / 1000
        return try store.versions(conversationId, limit: limit, before: before).filter { !$0.isExpired(nowSeconds: now) }
    }

    /// Writes a new version whose content is version `target` (history is never rewritten).
    /// The remembered event ids stay those of the latest version, so events applied after
    /// `target` are still recognised as duplicates if re-delivered.
    public func rollback(_ conversationId: String, to target: Int64) throws(IngestError) -> SessionSnapshot? {
        for attempt in 0..<limits.writeMaxAttempts {
            let source: StoredVersion?
            let latest: StoredVersion?
            do {
                source = try version(conversationId, target)
                latest = try self.latest(conversationId)
            } catch { throw Self.map(error) }
            guard let source, let latest else { return nil }
            guard case .success(var next) = source.snapshot else {
                throw .invalidEvent("Version \(target) is corrupt and cannot be restored.")
            }
            if case .success(let current) = latest.snapshot {
                next.recentEventIds = current.recentEventIds
                next.recentEventDigests = current.recentEventDigests
            }
            let now = clockMs()
            next.sessionVersion = latest.version + 1
            next.updatedAt = now
            next.expiresAt = now / 1000 + limits.sessionTTLSeconds
            latestCache.remove(conversationId)
            do {
                try store.insert(next, after: latest.basis)
                return next
            } catch .versionConflict {
                sleepMs(limits.conflictBackoff.delayMs(attempt: attempt, unit: Double.random(in: 0..<1)))
            } catch {
                throw Self.map(error)
            }
        }
        throw .tooMuchContention(attempts: limits.writeMaxAttempts)
    }

    static func map(_ error: StoreError) -> IngestError {
        switch error {
        case .versionConflict: return .tooMuchContention(attempts: 1)
        case .unavailable(let why): return .storeUnavailable(why)
        case .invalidRequest(let why): return .storeRejected(why)
        case .tooLarge(_, let limit): return .snapshotTooLarge(limit: limit)
        case .authFailed(let why): return .storeAuthFailed(why)
        case .keyUnavailable(let id): return .encryptionKeyUnavailable(keyId: id)
        }
    }

}
