/// What the primitives of this module can fail with. No case ever carries key material or
/// plaintext, so an error can be logged as is.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A key that is not exactly ``SymmetricKey/byteCount`` bytes; the associated value is
    /// the length that was given.
    case invalidKeyLength(Int)
    /// A nonce that is not exactly ``AESGCM/nonceByteCount`` bytes.
    case invalidNonceLength(Int)
    /// The tag did not verify: wrong key, wrong additional data, or altered bytes.
    case authenticationFailed
    /// Input whose shape is wrong before any cryptography runs (too short, too long).
    case malformed(String)
    /// The OpenSSL random generator could not produce bytes (RAND_bytes failed).
    case randomUnavailable
    /// A key id that cannot appear in `ENCRYPTION_KEYS` (empty, ':', ',', whitespace).
    case invalidKeyId(String)
    /// An OpenSSL call that should not fail did (allocation): names the call.
    case internalFailure(String)

    public var description: String {
        switch self {
        case .invalidKeyLength(let n): "key must be \(SymmetricKey.byteCount) bytes, got \(n)"
        case .invalidNonceLength(let n): "nonce must be \(AESGCM.nonceByteCount) bytes, got \(n)"
        case .authenticationFailed: "authentication failed"
        case .malformed(let why): "malformed input: \(why)"
        case .randomUnavailable: "random bytes unavailable"
        case .invalidKeyId(let id): "invalid key id \(String(reflecting: id)): must be non-empty, without ':', ',' or whitespace"
        case .internalFailure(let call): "libcrypto call failed: \(call)"
        }
    }
}
