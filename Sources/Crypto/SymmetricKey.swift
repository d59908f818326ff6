internal import CCrypto

/// A 256-bit key for AES-256-GCM. It cannot be printed, logged or dumped: `description`,
/// `debugDescription` and its mirror all say `SymmetricKey(redacted)` or show nothing, and
/// its bytes live in a buffer of their own that is wiped (`OPENSSL_cleanse`) when the last
/// copy of the key goes away.
public struct SymmetricKey: Sendable, Equatable {
    /// AES-256: 32 bytes.
    public static let byteCount = 32

    let storage: Storage

    /// A key from exactly ``byteCount`` bytes.
    /// - Parameters:
    ///   - bytes: the key material; any other length throws `.invalidKeyLength(count)`.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else { throw .invalidKeyLength(bytes.count) }
        storage = Storage(copying: bytes)
    }

    private init(storage: Storage) { self.storage = storage }

    /// A new key from OpenSSL's CSPRNG (`RAND_bytes`), written straight into the key's own
    /// buffer so no other copy of it exists.
    public static func random() throws(CryptoError) -> SymmetricKey {
        let storage = Storage(count: byteCount)
        guard RAND_bytes(storage.pointer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(byteCount)) == 1 else {
            throw .randomUnavailable
        }
        return SymmetricKey(storage: storage)
    }

    /// The key bytes, for the duration of `body` only (OpenSSL calls inside this module).
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        body(UnsafeRawBufferPointer(storage.pointer))
    }

    /// Constant time (`CRYPTO_memcmp`), so comparing keys leaks nothing through timing.
    public static func == (lhs: SymmetricKey, rhs: SymmetricKey) -> Bool {
        if lhs.storage === rhs.storage { return true }
        return CRYPTO_memcmp(lhs.storage.pointer.baseAddress, rhs.storage.pointer.baseAddress, byteCount) == 0
    }

    /// The key's bytes, immutable after init, in memory no Swift array shares.
    final class Storage: @unchecked Sendable {
        // @unchecked: written only in init (and by RAND_bytes in random() before the key is
        // handed out), read-only afterwards.
        let pointer: UnsafeMutableRawBufferPointer

        init(count: Int) {
            pointer = .allocate(byteCount: count, alignment: 16)
            pointer.initializeMemory(as: UInt8.self, repeating: 0)
        }

        convenience init(copying bytes: [UInt8]) {
            self.init(count: bytes.count)
            pointer.copyBytes(from: bytes)
        }

        deinit {
            OPENSSL_cleanse(pointer.baseAddress, pointer.count)
            pointer.deallocate()
        }
    }
}

extension SymmetricKey: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "SymmetricKey(redacted)" }
    public var debugDescription: String { "SymmetricKey(redacted)" }
    /// No children: `dump(key)` and `Mirror(reflecting: key)` must not reach the bytes.
    public var customMirror: Mirror { Mirror(self, children: [Mirror.Child](), displayStyle: .struct) }
}
