/// Why a stored value could not be decrypted.
public enum FieldCipherError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The value names a key id that is not in the ring (SPEC: `500 encryption_key_unavailable`).
    case keyUnavailable(String)
    /// The tag did not verify: altered bytes, a wrong key under a reused id, or a value
    /// moved to another conversation or field (SPEC: a corrupt snapshot).
    case authenticationFailed
    /// Starts with `enc:v1:` but is not `enc:v1:<keyId>:<base64>` of at least nonce and tag,
    /// or its plaintext is not UTF-8.
    case malformed(String)

    public var description: String {
        switch self {
        case .keyUnavailable(let id): "encryption key \(String(reflecting: id)) is not configured"
        case .authenticationFailed: "encrypted value failed authentication"
        case .malformed(let why): "malformed encrypted value: \(why)"
        }
    }
}

/// The stored form of an encrypted field (SPEC "PII encryption at rest"):
/// `enc:v1:<keyId>:<base64(nonce ‖ ciphertext ‖ tag)>`, AES-256-GCM with the UTF-8 bytes of
/// `<conversationId>\n<field>` as additional data, so a value only opens in the place it
/// was written for. The first key of the ring encrypts; every key decrypts.
public struct FieldCipher: Sendable {
    /// What every encrypted value starts with.
    public static let prefix = "enc:v1:"

    private let keys: [(id: String, key: SymmetricKey)]
    private let byId: [String: SymmetricKey]

    /// The id new values are written under.
    public var encryptingKeyId: String { keys[0].id }
    /// Every configured id, encrypting key first.
    public var keyIds: [String] { keys.map(\.id) }

    /// A ring from usable keys (KMS keys already unwrapped), first one encrypting.
    /// - Parameters:
    ///   - keys: at least one; ids valid (``KeyRing/isValidKeyId(_:)``) and distinct.
    public init(keys: [(id: String, key: SymmetricKey)]) throws(KeyRingError) {
        guard !keys.isEmpty else { throw .empty }
        var byId: [String: SymmetricKey] = [:]
        for (id, key) in keys {
            guard KeyRing.isValidKeyId(id) else { throw .invalidKeyId(id) }
            guard byId.updateValue(key, forKey: id) == nil else { throw .duplicateKeyId(id) }
        }
        self.keys = keys
        self.byId = byId
    }

    /// A ring from `ENCRYPTION_KEYS` text holding plain keys only; a `kms:` entry throws
    /// `.kmsKeyNotResolved` (parse with ``KeyRing/parse(_:)``, unwrap, then use `init(keys:)`).
    public init(parsing text: String) throws(KeyRingError) {
        var keys: [(id: String, key: SymmetricKey)] = []
        for entry in try KeyRing.parse(text) {
            switch entry {
            case .key(let id, let key): keys.append((id, key))
            case .kmsKey(let id, _): throw .kmsKeyNotResolved(keyId: id)
            }
        }
        try self.init(keys: keys)
    }

    /// `value` sealed under the encrypting key with a fresh random nonce.
    /// - Parameters:
    ///   - value: the plaintext.
    ///   - conversationId: the conversation the value belongs to.
    ///   - field: where in it: `slots.<name>`, `channels.<channel>.userId` or `channels.<channel>.sessionId`.
    /// - Returns: `enc:v1:<keyId>:<base64>`.
    public func encrypt(_ value: String, conversationId: String, field: String) throws(CryptoError) -> String {
        let (id, key) = keys[0]
        let sealed = try AESGCM.seal(Array(value.utf8), key: key, aad: Self.aad(conversationId: conversationId, field: field))
        return Self.prefix + id + ":" + Base64.encode(sealed)
    }

    /// The plaintext of a stored value.
    /// - Parameters:
    ///   - stored: what the store holds. A value that does not start with `enc:v1:` was
    ///     written before encryption was enabled and is returned unchanged.
    ///   - conversationId: the conversation it was read from.
    ///   - field: the field it was read from (see `encrypt`).
    public func decrypt(_ stored: String, conversationId: String, field: String) throws(FieldCipherError) -> String {
        guard let (id, payload) = try Self.split(stored) else { return stored }
        guard let sealed = Base64.decode(payload) else { throw .malformed("payload is not standard base64 with padding") }
        guard let key = byId[id] else { throw .keyUnavailable(id) }
        let plaintext: [UInt8]
        do {
            plaintext = try AESGCM.open(sealed, key: key, aad: Self.aad(conversationId: conversationId, field: field))
        } catch .authenticationFailed {
            throw .authenticationFailed
        } catch .malformed(let why) {
            throw .malformed(why)
        } catch {
            throw .malformed(error.description)
        }
        guard let text = String(validating: plaintext, as: UTF8.self) else { throw .malformed("plaintext is not UTF-8") }
        return text
    }

    /// Whether `stored` is in the encrypted form (starts with `enc:v1:`), valid or not.
    public static func isEncrypted(_ stored: String) -> Bool { stored.utf8.starts(with: prefix.utf8) }

    /// The key id an encrypted value names, `nil` for plaintext or a value without one:
    /// for a log line that names the missing key.
    public static func keyId(of stored: String) -> String? {
        guard let (id, _) = try? split(stored) else { return nil }
        return id
    }

    /// `nil` for plaintext; the key id and base64 payload of an `enc:v1:` value.
    private static func split(_ stored: String) throws(FieldCipherError) -> (id: String, payload: Substring)? {
        // Compare bytes, not Characters: a combining mark after the prefix must not make
        // an `enc:v1:` value pass for plaintext.
        guard stored.utf8.starts(with: prefix.utf8) else { return nil }
        let rest = stored.utf8.dropFirst(prefix.utf8.count)
        guard let colon = rest.firstIndex(of: UInt8(ascii: ":")) else { throw .malformed("no ':' after the key id") }
        let id = String(Substring(rest[..<colon]))
        guard !id.isEmpty else { throw .malformed("empty key id") }
        return (id, Substring(rest[rest.index(after: colon)...]))
    }

    /// SPEC: additional data is the UTF-8 of `<conversationId>\n<field>`.
    static func aad(conversationId: String, field: String) -> [UInt8] {
        Array(conversationId.utf8) + [UInt8(ascii: "\n")] + Array(field.utf8)
    }
}
