/// One entry of `ENCRYPTION_KEYS`.
public enum KeyRingEntry: Sendable, Equatable {
    /// `keyId:base64(32 bytes)`: a key ready to use.
    case key(id: String, key: SymmetricKey)
    /// `keyId:kms:base64(CiphertextBlob)`: a data key wrapped by AWS KMS. The caller
    /// unwraps it (KMS `Decrypt`) into 32 bytes and builds a ``SymmetricKey`` from them;
    /// this module does not talk to KMS.
    case kmsKey(id: String, ciphertextBlob: [UInt8])

    public var id: String {
        switch self {
        case .key(let id, _), .kmsKey(let id, _): id
        }
    }
}

/// Why an `ENCRYPTION_KEYS` value was rejected. Positions are 1-based entry numbers; no
/// case carries key material, so the description can go straight into the start-up error.
public enum KeyRingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No entries at all.
    case empty
    /// Nothing between two commas (or before the first / after the last).
    case emptyEntry(position: Int)
    /// An entry without the ':' between id and key. The entry itself is not echoed: it may
    /// be a bare key.
    case missingSeparator(position: Int)
    /// Nothing before the ':'.
    case emptyKeyId(position: Int)
    /// An id with ':', ',' or whitespace (ids end up inside `enc:v1:<keyId>:…`).
    case invalidKeyId(String)
    case duplicateKeyId(String)
    /// The key (or KMS blob) of this id is not canonical padded base64.
    case invalidBase64(keyId: String)
    /// The key of this id decodes to the wrong number of bytes.
    case invalidKeyLength(keyId: String, byteCount: Int)
    /// `id:kms:` with nothing after it.
    case emptyKMSBlob(keyId: String)
    /// A `kms:` entry reached a constructor that only takes usable keys: decrypt it first.
    case kmsKeyNotResolved(keyId: String)

    public var description: String {
        switch self {
        case .empty: "ENCRYPTION_KEYS: no keys"
        case .emptyEntry(let p): "ENCRYPTION_KEYS: entry \(p) is empty"
        case .missingSeparator(let p): "ENCRYPTION_KEYS: entry \(p) is not keyId:base64"
        case .emptyKeyId(let p): "ENCRYPTION_KEYS: entry \(p) has an empty key id"
        case .invalidKeyId(let id): "ENCRYPTION_KEYS: key id \(String(reflecting: id)) may not contain ':', ',' or whitespace"
        case .duplicateKeyId(let id): "ENCRYPTION_KEYS: key id \(String(reflecting: id)) appears more than once"
        case .invalidBase64(let id): "ENCRYPTION_KEYS: key \(String(reflecting: id)) is not standard base64 with padding"
        case .invalidKeyLength(let id, let n): "ENCRYPTION_KEYS: key \(String(reflecting: id)) is \(n) bytes, must be \(SymmetricKey.byteCount)"
        case .emptyKMSBlob(let id): "ENCRYPTION_KEYS: key \(String(reflecting: id)) has an empty kms: blob"
        case .kmsKeyNotResolved(let id): "ENCRYPTION_KEYS: key \(String(reflecting: id)) is a kms: key that was not decrypted"
        }
    }
}

/// The `ENCRYPTION_KEYS` syntax: `keyId:base64(32 bytes)` or `keyId:kms:base64(blob)`,
/// comma-separated, first key encrypts.
public enum KeyRing {
    /// Parses `ENCRYPTION_KEYS`, keeping the order (the first entry is the encrypting key).
    /// Whitespace around entries is ignored; inside an entry it is an error.
    /// - Parameters:
    ///   - text: the variable's value.
    public static func parse(_ text: String) throws(KeyRingError) -> [KeyRingEntry] {
        guard !text.allSatisfy(\.isWhitespace) else { throw .empty }
        var entries: [KeyRingEntry] = []
        var seen: Set<String> = []
        for (index, raw) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let position = index + 1
            let entry = raw.trimmingWhitespace()
            guard !entry.isEmpty else { throw .emptyEntry(position: position) }
            guard let colon = entry.firstIndex(of: ":") else { throw .missingSeparator(position: position) }
            let id = String(entry[..<colon])
            var rest = entry[entry.index(after: colon)...]
            guard !id.isEmpty else { throw .emptyKeyId(position: position) }
            let isKMS = rest.hasPrefix("kms:")
            if isKMS {
                rest = rest.dropFirst(4)
            } else if let lastColon = rest.lastIndex(of: ":") {
                // Base64 has no ':', so the id itself had one ("a:b:<key>").
                throw .invalidKeyId(id + ":" + rest[..<lastColon])
            }
            guard isValidKeyId(id) else { throw .invalidKeyId(id) }
            guard seen.insert(id).inserted else { throw .duplicateKeyId(id) }
            if isKMS {
                guard !rest.isEmpty else { throw .emptyKMSBlob(keyId: id) }
                guard let blob = Base64.decode(rest) else { throw .invalidBase64(keyId: id) }
                entries.append(.kmsKey(id: id, ciphertextBlob: blob))
            } else {
                guard let bytes = Base64.decode(rest) else { throw .invalidBase64(keyId: id) }
                guard let key = try? SymmetricKey(bytes: bytes) else { throw .invalidKeyLength(keyId: id, byteCount: bytes.count) }
                entries.append(.key(id: id, key: key))
            }
        }
        return entries
    }

    /// Non-empty; no ':' or ',' (the separators of `ENCRYPTION_KEYS` and of `enc:v1:<keyId>:`),
    /// no whitespace or control characters (they would not survive trimming or a log line).
    public static func isValidKeyId(_ id: String) -> Bool {
        !id.isEmpty && !id.unicodeScalars.contains { s in
            s == ":" || s == "," || s.properties.isWhitespace || s.properties.generalCategory == .control
        }
    }
}

/// A new `ENCRYPTION_KEYS` entry, `ID:base64(32 random bytes)`: what
/// `cognigy-session --generate-key ID` prints.
/// - Parameters:
///   - id: the key id; one that ``KeyRing/parse(_:)`` would reject throws `.invalidKeyId`.
public func generateKeyLine(id: String) throws(CryptoError) -> String {
    guard KeyRing.isValidKeyId(id) else { throw .invalidKeyId(id) }
    return id + ":" + Base64.encode(try randomBytes(SymmetricKey.byteCount))
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else {
            return self[endIndex...]
        }
        return self[first...last]
    }
}
