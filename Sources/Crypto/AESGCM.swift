internal import CCrypto

/// AES-256-GCM (NIST SP 800-38D) over OpenSSL's EVP interface, in the combined form
/// swift-crypto calls a sealed box: nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes).
public enum AESGCM {
    /// 96 bits: the IV length GCM is defined for without GHASH-ing the IV (SP 800-38D §8.2.1).
    public static let nonceByteCount = 12
    /// 128 bits, the full tag; shorter tags are never produced nor accepted.
    public static let tagByteCount = 16
    /// The bytes sealing adds to a plaintext.
    public static let overhead = nonceByteCount + tagByteCount

    /// Encrypts and authenticates `plaintext`, and authenticates `aad`.
    /// - Parameters:
    ///   - plaintext: any bytes, empty included.
    ///   - key: the AES-256 key.
    ///   - aad: additional data bound to the result but not stored in it; `open` needs the same bytes.
    ///   - nonce: 12 bytes for known-answer tests only; `nil` (the default) draws a random
    ///     one, which is what every caller outside tests must do: a nonce reused under one
    ///     key gives away the XOR of the plaintexts and the GHASH key.
    /// - Returns: nonce ‖ ciphertext ‖ tag, `plaintext.count + 28` bytes.
    public static func seal(_ plaintext: [UInt8], key: SymmetricKey, aad: [UInt8] = [], nonce: [UInt8]? = nil) throws(CryptoError) -> [UInt8] {
        // `??` autoclosures rethrow as `any Error`; spelled out to keep the typed throw.
        let nonce: [UInt8] = if let nonce { nonce } else { try randomBytes(nonceByteCount) }
        guard nonce.count == nonceByteCount else { throw .invalidNonceLength(nonce.count) }
        // EVP lengths are C ints.
        guard plaintext.count <= Int(Int32.max) - overhead, aad.count <= Int(Int32.max) else {
            throw .malformed("input longer than libcrypto's int lengths")
        }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw .internalFailure("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }

        var out = [UInt8](repeating: 0, count: plaintext.count + overhead)
        let failed: String? = key.withUnsafeBytes { k in
            nonce.withUnsafeBufferPointer { n in
                aad.withUnsafeBufferPointer { a in
                    plaintext.withUnsafeBufferPointer { p in
                        out.withUnsafeMutableBufferPointer { o -> String? in
                            let base = o.baseAddress!
                            base.update(from: n.baseAddress!, count: nonceByteCount)
                            var length: Int32 = 0
                            guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1 else { return "EVP_EncryptInit_ex" }
                            guard ccrypto_gcm_set_ivlen(ctx, Int32(nonceByteCount)) == 1 else { return "EVP_CTRL_GCM_SET_IVLEN" }
                            guard EVP_EncryptInit_ex(ctx, nil, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), n.baseAddress) == 1 else {
                                return "EVP_EncryptInit_ex(key)"
                            }
                            // With a NULL output buffer, an update feeds additional data.
                            if a.count > 0, EVP_EncryptUpdate(ctx, nil, &length, a.baseAddress, Int32(a.count)) != 1 {
                                return "EVP_EncryptUpdate(aad)"
                            }
                            let body = base + nonceByteCount
                            if p.count > 0 {
                                guard EVP_EncryptUpdate(ctx, body, &length, p.baseAddress, Int32(p.count)) == 1, Int(length) == p.count else {
                                    return "EVP_EncryptUpdate"
                                }
                            }
                            // GCM is a stream mode: Final writes nothing, it completes the tag.
                            guard EVP_EncryptFinal_ex(ctx, body + p.count, &length) == 1, length == 0 else { return "EVP_EncryptFinal_ex" }
                            guard ccrypto_gcm_get_tag(ctx, body + p.count, Int32(tagByteCount)) == 1 else { return "EVP_CTRL_GCM_GET_TAG" }
                            return nil
                        }
                    }
                }
            }
        }
        if let failed { throw .internalFailure(failed) }
        return out
    }

    /// Checks the tag of `combined` and returns its plaintext.
    /// - Parameters:
    ///   - combined: nonce ‖ ciphertext ‖ tag, as `seal` returns it; shorter than 28 bytes throws `.malformed`.
    ///   - key: the key it was sealed with.
    ///   - aad: the additional data it was sealed with.
    /// - Throws: `.authenticationFailed` when key, additional data, nonce, ciphertext or tag differ.
    public static func open(_ combined: [UInt8], key: SymmetricKey, aad: [UInt8] = []) throws(CryptoError) -> [UInt8] {
        guard combined.count >= overhead else {
            throw .malformed("sealed box of \(combined.count) bytes is shorter than nonce and tag (\(overhead))")
        }
        guard combined.count <= Int(Int32.max), aad.count <= Int(Int32.max) else {
            throw .malformed("input longer than libcrypto's int lengths")
        }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw .internalFailure("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }

        let bodyCount = combined.count - overhead
        var out = [UInt8](repeating: 0, count: bodyCount)
        enum Outcome { case ok, forged, failed(String) }
        let outcome: Outcome = key.withUnsafeBytes { k in
            combined.withUnsafeBufferPointer { c in
                aad.withUnsafeBufferPointer { a in
                    out.withUnsafeMutableBufferPointer { o -> Outcome in
                        let nonce = c.baseAddress!
                        let body = nonce + nonceByteCount
                        let tag = body + bodyCount
                        var length: Int32 = 0
                        guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1 else { return .failed("EVP_DecryptInit_ex") }
                        guard ccrypto_gcm_set_ivlen(ctx, Int32(nonceByteCount)) == 1 else { return .failed("EVP_CTRL_GCM_SET_IVLEN") }
                        guard EVP_DecryptInit_ex(ctx, nil, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), nonce) == 1 else {
                            return .failed("EVP_DecryptInit_ex(key)")
                        }
                        if a.count > 0, EVP_DecryptUpdate(ctx, nil, &length, a.baseAddress, Int32(a.count)) != 1 {
                            return .failed("EVP_DecryptUpdate(aad)")
                        }
                        if bodyCount > 0 {
                            guard EVP_DecryptUpdate(ctx, o.baseAddress, &length, body, Int32(bodyCount)) == 1, Int(length) == bodyCount else {
                                return .failed("EVP_DecryptUpdate")
                            }
                        }
                        guard ccrypto_gcm_set_tag(ctx, tag, Int32(tagByteCount)) == 1 else { return .failed("EVP_CTRL_GCM_SET_TAG") }
                        // Final compares the computed tag with the expected one (in constant time).
                        var scratch = [UInt8](repeating: 0, count: 16)
                        let verified = EVP_DecryptFinal_ex(ctx, &scratch, &length) == 1
                        if !verified {
                            // Unauthenticated plaintext must not outlive this call.
                            OPENSSL_cleanse(o.baseAddress, o.count)
                            return .forged
                        }
                        return .ok
                    }
                }
            }
        }
        switch outcome {
        case .ok: return out
        case .forged: throw .authenticationFailed
        case .failed(let call): throw .internalFailure(call)
        }
    }
}
