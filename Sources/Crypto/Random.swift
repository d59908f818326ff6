internal import CCrypto

/// `n` bytes from OpenSSL's CSPRNG (`RAND_bytes`, seeded from the OS).
/// - Parameters:
///   - n: how many bytes; 0 gives an empty array.
public func randomBytes(_ n: Int) throws(CryptoError) -> [UInt8] {
    precondition(n >= 0, "randomBytes: negative count")
    guard n > 0 else { return [] }
    guard n <= Int(Int32.max) else { throw .malformed("randomBytes: \(n) bytes is more than one RAND_bytes call gives") }
    var out = [UInt8](repeating: 0, count: n)
    let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(n)) == 1 }
    guard ok else { throw .randomUnavailable }
    return out
}
