internal import CCrypto

/// HMAC-SHA256 (RFC 2104, FIPS 198-1): the keyed hash of identity links (`IDENTITY_HASH_KEY`).
public enum HMACSHA256 {
    /// 32 bytes.
    public static let byteCount = 32

    /// The 32-byte MAC of `message` under `key`.
    /// - Parameters:
    ///   - key: any length; keys longer than SHA-256's 64-byte block are hashed first (RFC 2104 §2).
    ///   - message: any bytes, empty included.
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    ccrypto_hmac_sha256(k.baseAddress, k.count, m.baseAddress, m.count, o.baseAddress) == 1
                }
            }
        }
        // The one-shot HMAC only fails when libcrypto cannot allocate its context.
        guard ok else { fatalError("HMAC-SHA256: libcrypto failed (out of memory)") }
        return out
    }
}

/// SHA-256 (FIPS 180-4): the unkeyed link hash when no `IDENTITY_HASH_KEY` is set.
public enum SHA256 {
    /// 32 bytes.
    public static let byteCount = 32

    /// The 32-byte digest of `data`.
    public static func hash(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        let ok = data.withUnsafeBufferPointer { d in
            out.withUnsafeMutableBufferPointer { o in ccrypto_sha256(d.baseAddress, d.count, o.baseAddress) == 1 }
        }
        guard ok else { fatalError("SHA-256: libcrypto failed (out of memory)") }
        return out
    }
}

/// Lowercase hexadecimal, the one encoding of digests used as keys and fingerprints.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func lower(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
