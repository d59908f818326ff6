/// Identity links (SPEC "Identity links"): a keyed hash of an identity or channel user →
/// the conversation it belongs to. The store never sees the identity itself.
public struct StoredLink: Sendable, Equatable {
    /// The link's key: the hash of its kind and value (64 hex digits).
    public let key: String
    public let conversationId: String
    /// Epoch milliseconds of the write that created (or last re-pointed) the link; with
    /// `conversationId`, what a conditional replace or delete requires to still be there.
    public let createdAt: Int64
    /// Epoch seconds; the link is gone after this (DynamoDB TTL, the SQLite sweep).
    public let expiresAt: Int64

    public init(key: String, conversationId: String, createdAt: Int64, expiresAt: Int64) {
        self.key = key
        self.conversationId = conversationId
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    public func isExpired(nowSeconds: Int64) -> Bool { expiresAt <= nowSeconds }
}

/// Where links live. Every write is conditional, so replicas racing to link the same
/// identity agree on one winner.
public protocol LinkStore: Sendable {
    /// The link stored under `key`, or nil (an expired one is returned as stored; the
    /// caller decides).
    func link(_ key: String) throws(StoreError) -> StoredLink?
    /// Writes `link` if no link has its key (`replacing` nil), or if `replacing` is still
    /// stored exactly as read (same conversation and `createdAt`). False when another
    /// writer got there first: nothing was written.
    func putLink(_ link: StoredLink, replacing: StoredLink?) throws(StoreError) -> Bool
    /// Moves the expiry of the link under `key` to `expiresAt` if it still points at
    /// `conversationId` (links live as long as their conversation).
    func touchLink(_ key: String, conversationId: String, expiresAt: Int64) throws(StoreError)
    /// Deletes `link` if it is still stored exactly as given; false otherwise.
    func deleteLink(_ link: StoredLink) throws(StoreError) -> Bool
    /// Deletes every link pointing at the conversation; returns how many.
    func deleteLinks(conversationId: String) throws(StoreError) -> Int
    /// Deletes links expired at `now` (epoch seconds); returns the count.
    func sweepExpiredLinks(now: Int64) throws(StoreError) -> Int
}
