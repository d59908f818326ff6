import Crypto
import SessionStore

/// `ENCRYPTION_KEYS` and `ENCRYPTED_SLOTS` as the encrypting store's `FieldProtector`:
/// AES-256-GCM in the `enc:v1:<keyId>:<base64>` form (the Crypto target's `FieldCipher`).
struct CipherProtector: FieldProtector {
    let cipher: FieldCipher
    let slots: SlotPattern

    init(keys: [KeyRingEntry], slots: SlotPattern) throws(KeyRingError) {
        let ready = keys.compactMap { entry -> (id: String, key: SymmetricKey)? in
            if case .key(let id, let key) = entry { return (id, key) }
            return nil
        }
        cipher = try FieldCipher(keys: ready)
        self.slots = slots
    }

    func protects(slot name: String) -> Bool { slots.matches(name) }

    func isCurrent(_ sealed: String) -> Bool { FieldCipher.keyId(of: sealed) == cipher.encryptingKeyId }

    /// SHA-256, hex. Unkeyed on purpose: it must survive key rotation, and what it stands
    /// for (a Cognigy session id) is a random identifier, not a guessable value.
    func fingerprint(_ value: String) -> String {
        Hex.lower(SHA256.hash(Array(value.utf8)))
    }

    func seal(_ value: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
        do { return try cipher.encrypt(value, conversationId: conversationId, field: field) } catch {
            throw .sealFailed(error.description)
        }
    }

    func open(_ stored: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
        do { return try cipher.decrypt(stored, conversationId: conversationId, field: field) } catch {
            switch error {
            case .keyUnavailable(let id): throw .keyUnavailable(keyId: id)
            case .authenticationFailed, .malformed: throw .corrupt
            }
        }
    }
}
