/// Where a restore goes: the conversation, the Cognigy session on the new channel, and
/// the channel the user came from (`restoredFrom` in the injected context).
public struct RestoreTarget: Sendable, Equatable {
    public let conversationId: String
    public let sessionId: String
    public let userId: String
    public let restoredFrom: String

    public init(conversationId: String, sessionId: String, userId: String, restoredFrom: String) {
        self.conversationId = conversationId
        self.sessionId = sessionId
        self.userId = userId
        self.restoredFrom = restoredFrom
    }
}

/// A queued restore held under a lease: only the holder sends it until `leaseUntilMs`.
public struct RestoreClaim: Sendable, Equatable {
    public let target: RestoreTarget
    /// The newest `sessionVersion` a restore was queued for (delivery sends the latest
    /// version at delivery time, which is at least this one).
    public let sessionVersion: Int64
    /// Who holds the lease: unique per claim, so two senders never both think they hold it.
    public let owner: String
    /// Bumped by every enqueue: a claim whose revision changed was queued again meanwhile.
    public let revision: Int64
    public let attempts: Int
    public let createdAtMs: Int64
    /// Epoch ms after which it is dropped undelivered (`RESTORE_TTL_SECONDS`).
    public let expiresAtMs: Int64
    /// How the queue keys the entry (the session id, or its fingerprint when encrypted).
    public let sessionKey: String

    public init(
        target: RestoreTarget, sessionVersion: Int64, owner: String, revision: Int64, attempts: Int, createdAtMs: Int64,
        expiresAtMs: Int64, sessionKey: String
    ) {
        self.target = target
        self.sessionVersion = sessionVersion
        self.owner = owner
        self.revision = revision
        self.attempts = attempts
        self.createdAtMs = createdAtMs
        self.expiresAtMs = expiresAtMs
        self.sessionKey = sessionKey
    }
}

/// The durable queue of restores still to deliver, one per (conversation, target session),
/// shared by every process that serves the same conversations. Sends are serialised per
/// entry by leases, and each send reads the conversation's latest version when it starts,
/// so a session never receives an older version after a newer one.
public protocol RestoreQueue: Sendable {
    /// Queues (or re-queues with a newer version) the restore and tries to take its lease
    /// for `leaseMs`: the claim when this caller may send now, nil when another holds it
    /// (that holder, or the next pass, delivers the latest version).
    func enqueue(
        _ target: RestoreTarget, sessionVersion: Int64, nowMs: Int64, ttlMs: Int64, leaseMs: Int64, owner: String
    ) throws(StoreError) -> RestoreClaim?
    /// Leases a due entry whose lease is free (the oldest for SQLite; among the oldest of
    /// each index shard for DynamoDB), or nil. Expired entries are handed out too, so the
    /// caller drops them (and counts them dropped).
    func claimNext(nowMs: Int64, leaseMs: Int64, owner: String) throws(StoreError) -> RestoreClaim?
    /// Delivered or dropped: removes the entry unless it was queued again meanwhile; then
    /// it is released, due at once.
    func complete(_ claim: RestoreClaim, nowMs: Int64) throws(StoreError)
    /// Not delivered yet: releases the lease with the next attempt at `nextAttemptMs`.
    func retry(_ claim: RestoreClaim, nextAttemptMs: Int64) throws(StoreError)
    /// Erases every queued restore of a conversation (DELETE /sessions/{id}).
    @discardableResult
    func removeConversation(_ conversationId: String) throws(StoreError) -> Int
    /// Queue depth and the age of the oldest entry (ms), for operators; expired entries
    /// count as absent (an expired entry re-queued starts afresh, too).
    func stats(nowMs: Int64) throws(StoreError) -> (depth: Int, oldestAgeMs: Int64)
}
