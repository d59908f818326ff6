import DialogWire

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
}

/// A store whose snapshots hold protected fields sealed: slots that `protects(slot:)` and
/// every channel's `userId` and `sessionId` are sealed on the way in and opened on the way
/// out, so SQLite rows, DynamoDB items (`Snapshot` and `Slots`) never see plaintext, while
/// the pipeline, reads and restores see plaintext.
///
/// Opening: a key id that is not configured makes the read throw `.keyUnavailable`, so
/// every read of that version and every write that would build on it fails (nothing is
/// written); a value that does not authenticate makes the version corrupt.
public struct EncryptingStore: SessionStore {
    public let base: any SessionStore
    public let protector: any FieldProtector

    public init(_ base: any SessionStore, protector: any FieldProtector) {
        self.base = base
        self.protector = protector
    }

    /// The snapshot as stored: protected fields sealed.
    public func sealed(_ s: SessionSnapshot) throws(StoreError) -> SessionSnapshot {
        var out = s
        do {
            for (name, value) in s.slots where protector.protects(slot: name) {
                out.slots[name] = try protector.seal(value, conversationId: s.conversationId, field: "slots.\(name)")
            }
            for (channel, state) in s.channels {
                var sealedState = state
                if !state.userId.isEmpty {
                    sealedState.userId = try protector.seal(
                        state.userId, conversationId: s.conversationId, field: "channels.\(channel).userId")
                }
                if !state.sessionId.isEmpty {
                    sealedState.sessionId = try protector.seal(
                        state.sessionId, conversationId: s.conversationId, field: "channels.\(channel).sessionId")
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
                out.slots[name] = try protector.open(value, conversationId: s.conversationId, field: field)
            }
            for (channel, state) in s.channels {
                var plain = state
                field = "channels.\(channel).userId"
                plain.userId = try protector.open(state.userId, conversationId: s.conversationId, field: field)
                field = "channels.\(channel).sessionId"
                plain.sessionId = try protector.open(state.sessionId, conversationId: s.conversationId, field: field)
                out.channels[channel] = plain
            }
        } catch .corrupt {
            return StoredVersion(
                conversationId: v.conversationId, version: v.version, updatedAt: v.updatedAt, expiresAt: v.expiresAt,
                snapshot: .failure(.undecryptable(field: field)))
        } catch {
            throw Self.map(error)
        }
        return StoredVersion(
            conversationId: v.conversationId, version: v.version, updatedAt: v.updatedAt, expiresAt: v.expiresAt,
            snapshot: .success(out))
    }

    private static func map(_ error: FieldProtectionError) -> StoreError {
        switch error {
        case .keyUnavailable(let id): return .keyUnavailable(keyId: id)
        case .corrupt: return .invalidRequest("a protected field could not be sealed")
        case .sealFailed(let why): return .unavailable("encryption failed: \(why)")
        }
    }

    public func latest(_ id: String) throws(StoreError) -> StoredVersion? { try base.latest(id).map { v throws(StoreError) in try opened(v) } }
    public func insert(_ s: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) { try base.insert(sealed(s), after: basis) }
    public func version(_ id: String, _ v: Int64) throws(StoreError) -> StoredVersion? {
        try base.version(id, v).map { v throws(StoreError) in try opened(v) }
    }
    public func versions(_ id: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        var out: [StoredVersion] = []
        for v in try base.versions(id, limit: limit, before: before) { out.append(try opened(v)) }
        return out
    }
    public func deleteConversation(_ id: String) throws(StoreError) -> Int { try base.deleteConversation(id) }
    public func checkReady() throws(StoreError) { try base.checkReady() }
    public func sweepExpired(now: Int64) throws(StoreError) -> Int { try base.sweepExpired(now: now) }
}
