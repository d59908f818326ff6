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
    /// A stored value is encrypted under a key id that is not configured (SPEC: 500
    /// `encryption_key_unavailable`; nothing is written).
    case keyUnavailable(keyId: String)

    public var description: String {
        switch self {
        case .versionConflict(let id, let v): return "version \(v) of conversation \(id) already exists"
        case .unavailable(let why): return "store unavailable: \(why)"
        case .invalidRequest(let why): return "store rejected the request: \(why)"
        case .tooLarge(let bytes, let limit): return "the item would be \(bytes) bytes, over the store's \(limit)"
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

    public init(
        conversationId: String, version: Int64, updatedAt: Int64, expiresAt: Int64, snapshot: Result<SessionSnapshot, CorruptSnapshot>
    ) {
        self.conversationId = conversationId
        self.version = version
        self.updatedAt = updatedAt
        self.expiresAt = expiresAt
        self.snapshot = snapshot
    }

    public init(conversationId: String, version: Int64, updatedAt: Int64, expiresAt: Int64, bytes: [UInt8]) {
        self.init(
            conversationId: conversationId, version: version, updatedAt: updatedAt, expiresAt: expiresAt,
            snapshot: Result { () throws(WireError) in try SessionSnapshot(serializedBytes: bytes) }.mapError { .wire($0) })
    }

    /// SPEC "Expiry": a version past its `expiresAt` is gone, whether or not the sweeper
    /// or DynamoDB's TTL (which lags by up to days) has removed it yet.
    public func isExpired(nowSeconds: Int64) -> Bool { expiresAt <= nowSeconds }

    /// What a write of the next version must find still stored.
    public var basis: WriteBasis { WriteBasis(version: version, updatedAt: updatedAt) }
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

    public init(version: Int64, updatedAt: Int64) {
        self.version = version
        self.updatedAt = updatedAt
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
    /// durable.
    func insert(_ snapshot: SessionSnapshot, after basis: WriteBasis?) throws(StoreError)
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
}
