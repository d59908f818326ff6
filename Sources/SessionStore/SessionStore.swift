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

    public var description: String {
        switch self {
        case .versionConflict(let id, let v): return "version \(v) of conversation \(id) already exists"
        case .unavailable(let why): return "store unavailable: \(why)"
        case .invalidRequest(let why): return "store rejected the request: \(why)"
        case .tooLarge(let bytes, let limit): return "the item would be \(bytes) bytes, over the store's \(limit)"
        }
    }
}

/// One stored version. The snapshot bytes are decoded by the store; a row whose bytes do
/// not decode is reported as `.failure` so the pipeline can log it and carry on (SPEC:
/// "Corrupt stored snapshot").
public struct StoredVersion: Sendable {
    public let conversationId: String
    public let version: Int64
    public let snapshot: Result<SessionSnapshot, WireError>

    public init(conversationId: String, version: Int64, snapshot: Result<SessionSnapshot, WireError>) {
        self.conversationId = conversationId
        self.version = version
        self.snapshot = snapshot
    }

    public init(conversationId: String, version: Int64, bytes: [UInt8]) {
        self.init(
            conversationId: conversationId, version: version,
            snapshot: Result { () throws(WireError) in try SessionSnapshot(serializedBytes: bytes) })
    }
}

/// Where snapshots live. Every implementation makes `insert` conditional on the version
/// not existing yet, so writers anywhere (threads, processes, replicas) cannot overwrite
/// each other; there is no in-memory version counter.
public protocol SessionStore: Sendable {
    /// The newest version of a conversation, or nil when it has none.
    func latest(_ conversationId: String) throws(StoreError) -> StoredVersion?
    /// Writes `snapshot` as version `snapshot.sessionVersion`; throws `.versionConflict`
    /// if that version exists. Returns only after the write is durable.
    func insert(_ snapshot: SessionSnapshot) throws(StoreError)
    /// One version, or nil.
    func version(_ conversationId: String, _ version: Int64) throws(StoreError) -> StoredVersion?
    /// Versions newest first, at most `limit`, only those below `before` when given.
    func versions(_ conversationId: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion]
    /// Erases every version of a conversation; returns how many were erased.
    func deleteConversation(_ conversationId: String) throws(StoreError) -> Int
    /// Throws when the store cannot answer (for `/ready`).
    func checkReady() throws(StoreError)
    /// Deletes versions whose `expiresAt` (epoch seconds) is at or before `now`; returns the count.
    func sweepExpired(now: Int64) throws(StoreError) -> Int
}
