import DialogWire

/// Why a store operation failed. The pipeline matches on the case.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The conditional write lost: that version of the conversation already exists.
    case versionConflict(conversationId: String, version: Int64)
    /// The store cannot take the request now (busy, locked, I/O, unreachable); retry later.
    case unavailable(String)
    /// A request the store rejects as such (bad table, bad field); retrying will not help.
    case invalidRequest(String)
    /// The version is larger than the store can hold (DynamoDB's 400 KB item limit),
    /// checked before it is sent; `limit` is that limit in bytes.
    case tooLarge(bytes: Int, limit: Int)
    /// The store does not accept our credentials, or none could be had (expired, revoked,
    /// no permission, the credential source unreachable). Not an outage: the operator must
    /// look, though it may clear by itself once credentials are renewed.
    case authFailed(String)
    /// A stored value is encrypted under a key id that is not configured (SPEC: 500
    /// `encryption_key_unavailable`; nothing is written).
    case keyUnavailable(keyId: String)

    public var description: String {
        switch self {
        case .versionConflict(let id, let v): return "version \(v) of conversation \(id) already exists"
        case .unavailable(let why): return "store unavailable: \(why)"
        case .invalidRequest(let why): return "store rejected the request: \(why)"
        case .tooLarge(let bytes, let limit): return "the item would be \(bytes) bytes, over the store's \(limit)"
        case .authFailed(let why): return "store authentication failed: \(why)"
        case .keyUnavailable(let id): return "a stored value is encrypted with key '\(id)', which ENCRYPTION_KEYS does not list"
        }
    }
}

/// One stored version. The snapshot bytes are decoded by the store; a row whose bytes do
/// not decode is reported as `.failure` so the pipeline can log it and carry on (SPEC:
/// "Corrupt stored snapshot"). `updatedAt` and `expiresAt` come from the row's own columns
/// (the item's attributes), so they are known even when the bytes are corrupt.
public struct StoredVersion: Sendable {
    public let conversationId: String
    public let version: Int64
    /// Epoch milliseconds of the write (`UpdatedAt`): with `version`, what a write that
    /// builds on this version requires to still be there (see `WriteBasis`).
    public let updatedAt: Int64
    /// Epoch seconds (`ExpiresAt`).
    public let expiresAt: Int64
    public let snapshot: Result<SessionSnapshot, CorruptSnapshot>
    /// A digest of the stored bytes, where the store can check it on write (see `WriteBasis`).
    public let fingerprint: UInt64?

    public init(
        conversationId: String, version: Int64, updatedAt: Int64, expiresAt: Int64, snapshot: Result<SessionSnapshot, CorruptSnapshot>,
        fingerprint: UInt64? = nil
    ) {
        self.conversationId = conversationId
        self.version = version
        self.updatedAt = updatedAt
        self.expiresAt = expiresAt
        self.snapshot = snapshot
        self.fingerprint = fingerprint
    }

    public init(
        conversationId: String, version: Int64, updatedAt: Int64, expiresAt: Int64, bytes: [UInt8], fingerprint: UInt64? = nil
    ) {
        self.init(
            conversationId: conversationId, version: version, updatedAt: updatedAt, expiresAt: expiresAt,
            snapshot: Result { () throws(WireError) in try SessionSnapshot(serializedBytes: bytes) }.mapError { .wire($0) },
            fingerprint: fingerprint)
    }

    /// The same version with its snapshot replaced (a decrypted view of the stored one).
    public func with(snapshot: Result<SessionSnapshot, CorruptSnapshot>) -> StoredVersion {
        StoredVersion(
            conversationId: conversationId, version: version, updatedAt: updatedAt, expiresAt: expiresAt, snapshot: snapshot,
            fingerprint: fingerprint)
    }

    /// SPEC "Expiry": a version past its `expiresAt` is gone, whether or not the sweeper
    /// or DynamoDB's TTL (which lags by up to days) has removed it yet.
    public func isExpired(nowSeconds: Int64) -> Bool { expiresAt <= nowSeconds }

    /// What a write of the next version must find still stored.
    public var basis: WriteBasis { WriteBasis(version: version, updatedAt: updatedAt, fingerprint: fingerprint) }
}

/// Why a stored version cannot be read (SPEC "Corrupt stored snapshot": logged with its key,
/// left untouched, the next event applied to an empty state).
public enum CorruptSnapshot: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes are not a valid `SessionSnapshot`.
    case wire(WireError)
    /// An encrypted field failed authentication or is malformed (`field` as in the AAD).
    case undecryptable(field: String)

    public var description: String {
        switch self {
        case .wire(let e): return "\(e)"
        case .undecryptable(let field): return "encrypted field \(field) does not authenticate"
        }
    }
}

/// The version a new one was built from. The write of n+1 succeeds only if n+1 does not
/// exist *and* this very version n still does, with the same `updatedAt`: so a write read
/// before a DELETE (or before expiry removed the history) cannot resurrect what was
/// erased, not even after a new history has reached version n again.
public struct WriteBasis: Sendable, Equatable {
    public let version: Int64
    public let updatedAt: Int64
    /// Where the store keeps one (SQLite): a digest of version n's stored bytes, which the
    /// write also requires unchanged. So a version kept in memory (the snapshot cache) can
    /// only be built on while the stored row is still exactly it, even if something outside
    /// the service rewrote the row (a corrupted row is then re-read, logged, and treated as
    /// SPEC says).
    public let fingerprint: UInt64?

    public init(version: Int64, updatedAt: Int64, fingerprint: UInt64? = nil) {
        self.version = version
        self.updatedAt = updatedAt
        self.fingerprint = fingerprint
    }
}

/// FNV-1a, 64 bits: the stored-bytes digest of `WriteBasis.fingerprint`. Not a defence
/// against an adversary (who could write the file anyway), a check that the row is unchanged.
public enum BytesFingerprint {
    public static func of(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBufferPointer { buffer in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in buffer {
                hash = (hash ^ UInt64(b)) &* 0x0000_0100_0000_01B3
            }
            return hash
        }
    }
}

/// Where snapshots live. Every implementation makes `insert` conditional on the version
/// not existing yet, so writers anywhere (threads, processes, replicas) cannot overwrite
/// each other; there is no in-memory version counter.
public protocol SessionStore: Sendable {
    /// The newest version of a conversation, or nil when it has none.
    func latest(_ conversationId: String) throws(StoreError) -> StoredVersion?
    /// Writes `snapshot` as version `snapshot.sessionVersion`; throws `.versionConflict`
    /// if that version exists, or if `basis` (the version it was built from; nil for a
    /// first version) is no longer stored as it was read. Returns only after the write is
    /// durable, with the basis a write of the following version needs.
    @discardableResult
    func insert(_ snapshot: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) -> WriteBasis
    /// One version, or nil.
    func version(_ conversationId: String, _ version: Int64) throws(StoreError) -> StoredVersion?
    /// Versions newest first, at most `limit`, only those below `before` when given.
    func versions(_ conversationId: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion]
    /// Erases every version of a conversation, oldest first, so an erasure cut short never
    /// leaves an older version as the latest; returns how many were erased.
    func deleteConversation(_ conversationId: String) throws(StoreError) -> Int
    /// Throws when the store cannot answer (for `/ready`).
    func checkReady() throws(StoreError)
    /// Deletes versions whose `expiresAt` (epoch seconds) is at or before `now`; returns the count.
    func sweepExpired(now: Int64) throws(StoreError) -> Int
    /// `insert` without waiting: starts the write and returns true, then calls `done` once
    /// with what `insert` would have returned or thrown, on the thread that committed it
    /// (`done` must not block: other writes wait behind it). False, with nothing started and
    /// `done` never called, when this store cannot (the default: a store whose writes are
    /// network calls); the caller then uses `insert`.
    func insertLater(
        _ snapshot: SessionSnapshot, after basis: WriteBasis?, done: @escaping @Sendable (Result<WriteBasis, StoreError>) -> Void
    ) -> Bool
    /// Whether `insertLater` can take writes at all (so callers need not prepare one in vain).
    var writesLater: Bool { get }
}

extension SessionStore {
    public var writesLater: Bool { false }
    public func insertLater(
        _ snapshot: SessionSnapshot, after basis: WriteBasis?, done: @escaping @Sendable (Result<WriteBasis, StoreError>) -> Void
    ) -> Bool { false }
}
