import DialogWire
import Primitives

/// Why a protected field cannot be sealed or opened.
public enum FieldProtectionError: Error, Equatable, Sendable {
    /// The value names a key id that is not configured (SPEC: 500 `encryption_key_unavailable`).
    case keyUnavailable(keyId: String)
    /// The value does not authenticate under its key, or is not a well-formed stored value.
    case corrupt
    /// Sealing failed (no randomness, cipher failure).
    case sealFailed(String)
}

/// Field-level encryption of personal data (SPEC "PII encryption at rest"): what the
/// encrypting store needs, kept free of any crypto library. `field` is `slots.<name>`,
/// `channels.<channel>.userId` or `channels.<channel>.sessionId`; the implementation binds
/// it and the conversation id to the ciphertext, so a value cannot be moved elsewhere.
public protocol FieldProtector: Sendable {
    /// Whether slot `name` is encrypted (`ENCRYPTED_SLOTS`).
    func protects(slot name: String) -> Bool
    func seal(_ value: String, conversationId: String, field: String) throws(FieldProtectionError) -> String
    /// Plaintext (values stored before encryption was enabled) is returned as it is.
    func open(_ stored: String, conversationId: String, field: String) throws(FieldProtectionError) -> String
    /// A stable, non-reversible stand-in for `value` where a key needs one (the outbox's
    /// primary key holds this instead of the session id).
    func fingerprint(_ value: String) -> String
    /// Whether a sealed value is under the key that encrypts now (so it may be kept as is).
    func isCurrent(_ sealed: String) -> Bool
}

/// A store whose snapshots hold protected fields sealed: slots that `protects(slot:)` and
/// every channel's `userId` and `sessionId` are sealed on the way in and opened on the way
/// out, so SQLite rows, DynamoDB items (`Snapshot` and `Slots`) never see plaintext, while
/// the pipeline, reads and restores see plaintext.
///
/// Opening: a key id that is not configured makes the read throw `.keyUnavailable`, so
/// every read of that version and every write that would build on it fails (nothing is
/// written); a value that does not authenticate makes the version corrupt.
///
/// Each event reads version n and writes n+1, whose fields are mostly n's unchanged: a
/// bounded cache of (conversation, field, sealed, plain) lets an unchanged value keep its
/// ciphertext (when under the current key) and a sealed value already opened skip
/// decryption. A hit is exact: same conversation, field and stored bytes, first opened
/// (so authenticated) by this process. Plaintext is in memory during processing anyway.
public struct EncryptingStore: SessionStore {
    public let base: any SessionStore
    public let protector: any FieldProtector
    private let cache: SealCache

    public init(_ base: any SessionStore, protector: any FieldProtector, cacheEntries: Int = 50_000) {
        self.base = base
        self.protector = protector
        self.cache = SealCache(maxEntries: cacheEntries)
    }

    private func seal(_ value: String, _ conversationId: String, _ field: String) throws(FieldProtectionError) -> String {
        if let kept = cache.sealed(conversationId, field, plain: value), protector.isCurrent(kept) { return kept }
        let sealed = try protector.seal(value, conversationId: conversationId, field: field)
        cache.remember(conversationId, field, sealed: sealed, plain: value)
        return sealed
    }

    private func open(_ stored: String, _ conversationId: String, _ field: String) throws(FieldProtectionError) -> String {
        if let plain = cache.plain(conversationId, field, sealed: stored) { return plain }
        let plain = try protector.open(stored, conversationId: conversationId, field: field)
        if plain != stored { cache.remember(conversationId, field, sealed: stored, plain: plain) }
        return plain
    }

    /// The snapshot as stored: protected fields sealed.
    public func sealed(_ s: SessionSnapshot) throws(StoreError) -> SessionSnapshot {
        var out = s
        do {
            for (name, value) in s.slots where protector.protects(slot: name) {
                out.slots[name] = try seal(value, s.conversationId, "slots.\(name)")
            }
            for (channel, state) in s.channels {
                var sealedState = state
                if !state.userId.isEmpty {
                    sealedState.userId = try seal(state.userId, s.conversationId, "channels.\(channel).userId")
                }
                if !state.sessionId.isEmpty {
                    sealedState.sessionId = try seal(state.sessionId, s.conversationId, "channels.\(channel).sessionId")
                }
                out.channels[channel] = sealedState
            }
        } catch {
            throw Self.map(error)
        }
        return out
    }

    /// The version as the pipeline reads it: protected fields opened.
    public func opened(_ v: StoredVersion) throws(StoreError) -> StoredVersion {
        guard case .success(let s) = v.snapshot else { return v }
        var out = s
        var field = ""
        do {
            for (name, value) in s.slots {
                field = "slots.\(name)"
                out.slots[name] = try open(value, s.conversationId, field)
            }
            for (channel, state) in s.channels {
                var plain = state
                field = "channels.\(channel).userId"
                plain.userId = try open(state.userId, s.conversationId, field)
                field = "channels.\(channel).sessionId"
                plain.sessionId = try open(state.sessionId, s.conversationId, field)
                out.channels[channel] = plain
            }
        } catch .corrupt {
            return v.with(snapshot: .failure(.undecryptable(field: field)))
        } catch {
            throw Self.map(error)
        }
        return v.with(snapshot: .success(out))
    }

    private static func map(_ error: FieldProtectionError) -> StoreError {
        switch error {
        case .keyUnavailable(let id): return .keyUnavailable(keyId: id)
        case .corrupt: return .invalidRequest("a protected field could not be sealed")
        case .sealFailed(let why): return .unavailable("encryption failed: \(why)")
        }
    }

    public func latest(_ id: String) throws(StoreError) -> StoredVersion? { try base.latest(id).map { v throws(StoreError) in try opened(v) } }
    public func insert(_ s: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) -> WriteBasis {
        try base.insert(sealed(s), after: basis)
    }
    /// Sealed here, on the caller's thread; a snapshot that cannot be sealed is left to
    /// `insert`, which reports why.
    public func insertLater(
        _ s: SessionSnapshot, after basis: WriteBasis?, done: @escaping @Sendable (Result<WriteBasis, StoreError>) -> Void
    ) -> Bool {
        guard let sealedSnapshot = try? sealed(s) else { return false }
        return base.insertLater(sealedSnapshot, after: basis, done: done)
    }
    public var writesLater: Bool { base.writesLater }
    public func version(_ id: String, _ v: Int64) throws(StoreError) -> StoredVersion? {
        try base.version(id, v).map { v throws(StoreError) in try opened(v) }
    }
    public func versions(_ id: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        var out: [StoredVersion] = []
        for v in try base.versions(id, limit: limit, before: before) { out.append(try opened(v)) }
        return out
    }
    public func deleteConversation(_ id: String) throws(StoreError) -> Int {
        defer { cache.forget(id) }  // erased data does not linger in memory either
        return try base.deleteConversation(id)
    }
    public func checkReady() throws(StoreError) { try base.checkReady() }
    public func sweepExpired(now: Int64) throws(StoreError) -> Int { try base.sweepExpired(now: now) }
}

/// Sealed ⇄ plain pairs per (conversation, field), bounded: past `maxEntries` it starts
/// over (a cold cache only costs the crypto it saves).
final class SealCache: Sendable {
    private struct Entries {
        var byPlain: [String: String] = [:]
        var bySealed: [String: String] = [:]
    }
    private let maxEntries: Int
    private let entries = Locked(Entries())

    init(maxEntries: Int) { self.maxEntries = maxEntries }

    private static func key(_ conversationId: String, _ field: String, _ value: String) -> String {
        conversationId + "\u{0}" + field + "\u{0}" + value
    }

    func sealed(_ conversationId: String, _ field: String, plain: String) -> String? {
        guard maxEntries > 0 else { return nil }
        return entries.withLock { $0.byPlain[Self.key(conversationId, field, plain)] }
    }

    func plain(_ conversationId: String, _ field: String, sealed: String) -> String? {
        guard maxEntries > 0 else { return nil }
        return entries.withLock { $0.bySealed[Self.key(conversationId, field, sealed)] }
    }

    func forget(_ conversationId: String) {
        let prefix = conversationId + "\u{0}"
        entries.withLock { e in
            e.byPlain = e.byPlain.filter { !$0.key.hasPrefix(prefix) }
            e.bySealed = e.bySealed.filter { !$0.key.hasPrefix(prefix) }
        }
    }

    func remember(_ conversationId: String, _ field: String, sealed: String, plain: String) {
        guard maxEntries > 0 else { return }
        entries.withLock { e in
            if e.bySealed.count >= maxEntries {
                e.byPlain.removeAll(keepingCapacity: true)
                e.bySealed.removeAll(keepingCapacity: true)
            }
            e.byPlain[Self.key(conversationId, field, plain)] = sealed
            e.bySealed[Self.key(conversationId, field, sealed)] = plain
        }
    }
}
