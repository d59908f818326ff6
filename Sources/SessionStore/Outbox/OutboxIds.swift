/// How every outbox keeps a target's Cognigy ids at rest (SPEC "PII encryption at rest").
/// Without a protector they are stored as they are and the entry is keyed by the session
/// id; with one (ENCRYPTION_KEYS) the user and session ids are sealed, bound to the
/// conversation and their field, and the entry is keyed by the session id's fingerprint,
/// so no user or session id is ever at rest in plaintext, not even in a key.
struct OutboxIds: Sendable {
    let protector: (any FieldProtector)?

    /// The entry's key within its conversation.
    func key(_ target: RestoreTarget) -> String { protector?.fingerprint(target.sessionId) ?? target.sessionId }

    /// The target's ids as stored.
    func seal(_ target: RestoreTarget) throws(StoreError) -> (sessionId: String, userId: String) {
        guard let protector else { return (target.sessionId, target.userId) }
        do {
            return (
                try protector.seal(target.sessionId, conversationId: target.conversationId, field: "outbox.sessionId"),
                try protector.seal(target.userId, conversationId: target.conversationId, field: "outbox.userId")
            )
        } catch {
            throw .unavailable("cannot seal the restore target: \(error)")
        }
    }

    /// The stored ids opened; nil when they cannot be (a key no longer configured, or a
    /// value that does not authenticate): such an entry is undeliverable.
    func open(conversationId: String, sessionId: String, userId: String) -> (sessionId: String, userId: String)? {
        guard let protector else { return (sessionId, userId) }
        do {
            return (
                try protector.open(sessionId, conversationId: conversationId, field: "outbox.sessionId"),
                try protector.open(userId, conversationId: conversationId, field: "outbox.userId")
            )
        } catch {
            return nil
        }
    }
}
