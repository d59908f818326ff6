import XCTest
@testable import Crypto

final class FieldCipherTests: XCTestCase {
    private let newKey = try! SymmetricKey.random()
    private let oldKey = try! SymmetricKey.random()

    private func cipher(_ keys: [(String, SymmetricKey)]) throws -> FieldCipher {
        try FieldCipher(keys: keys.map { (id: $0.0, key: $0.1) })
    }

    func testRoundTrip_andStoredForm() throws {
        let c = try cipher([("k1", newKey)])
        for value in ["DE89370400440532013000", "", "Grüße, 👋", String(repeating: "x", count: 10_000)] {
            let stored = try c.encrypt(value, conversationId: "c-1", field: "slots.iban")
            XCTAssertTrue(stored.hasPrefix("enc:v1:k1:"), stored)
            XCTAssertTrue(FieldCipher.isEncrypted(stored))
            XCTAssertEqual(FieldCipher.keyId(of: stored), "k1")
            let payload = stored.dropFirst("enc:v1:k1:".count)
            let sealed = try XCTUnwrap(Base64.decode(payload), "standard base64 with padding")
            XCTAssertEqual(sealed.count, value.utf8.count + 28, "nonce ‖ ciphertext ‖ tag")
            XCTAssertFalse(stored.contains(value.isEmpty ? "\u{0}" : value))
            XCTAssertEqual(try c.decrypt(stored, conversationId: "c-1", field: "slots.iban"), value)
        }
        let a = try c.encrypt("same", conversationId: "c-1", field: "slots.x")
        let b = try c.encrypt("same", conversationId: "c-1", field: "slots.x")
        XCTAssertNotEqual(a, b, "random nonce per value")
    }

    /// SPEC: the additional data is `<conversationId>\n<field>`, built independently here.
    func testAAD_isConversationNewlineField() throws {
        let c = try cipher([("k1", newKey)])
        let stored = try c.encrypt("4111111111111111", conversationId: "c-abc", field: "slots.card")
        let sealed = try XCTUnwrap(Base64.decode(stored.dropFirst("enc:v1:k1:".count)))
        XCTAssertEqual(try AESGCM.open(sealed, key: newKey, aad: Array("c-abc\nslots.card".utf8)), Array("4111111111111111".utf8))
    }

    func testDecrypt_refusesValuesMovedToAnotherPlace() throws {
        let c = try cipher([("k1", newKey)])
        let stored = try c.encrypt("alice@example.com", conversationId: "c-1", field: "channels.web.userId")
        let elsewhere: [(String, String)] = [
            ("c-2", "channels.web.userId"), ("c-1", "channels.web.sessionId"), ("c-1", "channels.voice.userId"),
            ("c-1", "slots.email"), ("c-1\nchannels.web", "userId"), ("", "c-1\nchannels.web.userId"),
        ]
        for (conversation, field) in elsewhere {
            assertThrows(FieldCipherError.authenticationFailed, "\(conversation) \(field)") { () throws(FieldCipherError) in
                try c.decrypt(stored, conversationId: conversation, field: field)
            }
        }
    }

    func testDecrypt_rejectsTamperedValues() throws {
        let c = try cipher([("k1", newKey)])
        let stored = try c.encrypt("secret", conversationId: "c-1", field: "slots.pin")
        var sealed = try XCTUnwrap(Base64.decode(stored.dropFirst("enc:v1:k1:".count)))
        for index in [0, 11, 12, 17, sealed.count - 16, sealed.count - 1] {  // nonce, ciphertext, tag
            sealed[index] ^= 0x80
            let tampered = "enc:v1:k1:" + Base64.encode(sealed)
            sealed[index] ^= 0x80
            assertThrows(FieldCipherError.authenticationFailed, "byte \(index)") { () throws(FieldCipherError) in
                try c.decrypt(tampered, conversationId: "c-1", field: "slots.pin")
            }
        }
        // Same id, different key: indistinguishable from tampering.
        let impostor = try cipher([("k1", oldKey)])
        assertThrows(FieldCipherError.authenticationFailed) { () throws(FieldCipherError) in
            try impostor.decrypt(stored, conversationId: "c-1", field: "slots.pin")
        }
    }

    func testDecrypt_malformedValues() throws {
        let c = try cipher([("k1", newKey)])
        let ok = try c.encrypt("x", conversationId: "c", field: "f")
        let payload = String(ok.dropFirst("enc:v1:k1:".count))
        for bad in [
            "enc:v1:", "enc:v1:k1", "enc:v1::\(payload)", "enc:v1:k1:", "enc:v1:k1:\(payload.dropLast())",
            "enc:v1:k1:\(payload) ", "enc:v1:k1:!!!!", "enc:v1:k1:" + Base64.encode(Array(repeating: 0, count: 27)),
        ] {
            do {
                let value = try c.decrypt(bad, conversationId: "c", field: "f")
                XCTFail("\(bad) decrypted to \(value)")
            } catch {
                guard case .malformed = error else { return XCTFail("\(bad): \(error)") }
            }
        }
        // Authentic but not UTF-8: refused rather than turned into replacement characters.
        let sealed = try AESGCM.seal([0xff, 0xfe], key: newKey, aad: FieldCipher.aad(conversationId: "c", field: "f"))
        assertThrows(FieldCipherError.malformed("plaintext is not UTF-8")) { () throws(FieldCipherError) in
            try c.decrypt("enc:v1:k1:" + Base64.encode(sealed), conversationId: "c", field: "f")
        }
    }

    /// Values written before encryption was enabled are plaintext and pass through.
    func testDecrypt_passesPlaintextThrough() throws {
        let c = try cipher([("k1", newKey)])
        for plain in ["", "DE89", "enc:v2:k1:abc", "enc:", "ENC:V1:k1:x", "enc:v1", " enc:v1:k1:x"] {
            XCTAssertFalse(FieldCipher.isEncrypted(plain))
            XCTAssertNil(FieldCipher.keyId(of: plain))
            XCTAssertEqual(try c.decrypt(plain, conversationId: "c", field: "f"), plain)
        }
    }

    func testRotation_newKeyEncryptsOldStillDecrypts() throws {
        let before = try cipher([("old", oldKey)])
        let oldValue = try before.encrypt("1234", conversationId: "c-1", field: "slots.pin")
        XCTAssertEqual(FieldCipher.keyId(of: oldValue), "old")

        let rotated = try FieldCipher(parsing: "new:\(Base64.encode(bytes(of: newKey))),old:\(Base64.encode(bytes(of: oldKey)))")
        XCTAssertEqual(rotated.encryptingKeyId, "new")
        XCTAssertEqual(rotated.keyIds, ["new", "old"])
        let newValue = try rotated.encrypt("5678", conversationId: "c-1", field: "slots.pin")
        XCTAssertEqual(FieldCipher.keyId(of: newValue), "new")
        XCTAssertEqual(try rotated.decrypt(oldValue, conversationId: "c-1", field: "slots.pin"), "1234")
        XCTAssertEqual(try rotated.decrypt(newValue, conversationId: "c-1", field: "slots.pin"), "5678")

        let retired = try cipher([("new", newKey)])
        XCTAssertEqual(try retired.decrypt(newValue, conversationId: "c-1", field: "slots.pin"), "5678")
        assertThrows(FieldCipherError.keyUnavailable("old")) { () throws(FieldCipherError) in
            try retired.decrypt(oldValue, conversationId: "c-1", field: "slots.pin")
        }
    }

    func testErrors_carryNoPlaintextOrKey() throws {
        let c = try cipher([("k1", newKey)])
        let stored = try c.encrypt("very-secret-value", conversationId: "c", field: "f")
        for error in [FieldCipherError.keyUnavailable("k9"), .authenticationFailed, .malformed("x")] {
            XCTAssertFalse(error.description.contains("very-secret-value"))
            XCTAssertFalse(error.description.contains(stored))
        }
    }

    private func bytes(of key: SymmetricKey) -> [UInt8] {
        key.withUnsafeBytes { Array($0) }
    }
}
