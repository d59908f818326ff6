import XCTest
@testable import Crypto

/// A known answer: key, 96-bit IV, plaintext, additional data → ciphertext and 128-bit tag.
struct GCMVector {
    let name: String
    let key: String, iv: String, pt: String, aad: String, ct: String, tag: String
}

/// AES-256, 96-bit IV, 128-bit tag only (the form this service uses).
/// - NIST CAVP "GCM Test Vectors" (gcmtestvectors.zip, CAVS 14.0), file gcmEncryptExtIV256.rsp,
///   sections [Keylen = 256][IVlen = 96][Taglen = 128], Count as named.
/// - McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", revised 2005, Appendix B,
///   Test Cases 13–16 (the AES-256 cases with a 96-bit IV; 17 and 18 use other IV lengths).
/// Each was also checked against an independent implementation (Python `cryptography`'s AESGCM).
let gcmVectors: [GCMVector] = [
    GCMVector(
        name: "CAVP PTlen=0 AADlen=0 Count=0",
        key: "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4", iv: "516c33929df5a3284ff463d7",
        pt: "", aad: "", ct: "", tag: "bdc1ac884d332457a1d2664f168c76f0"),
    GCMVector(
        name: "CAVP PTlen=128 AADlen=0 Count=0",
        key: "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22", iv: "0d18e06c7c725ac9e362e1ce",
        pt: "2db5168e932556f8089a0622981d017d", aad: "", ct: "fa4362189661d163fcd6a56d8bf0405a",
        tag: "d636ac1bbedd5cc3ee727dc2ab4a9489"),
    GCMVector(
        name: "CAVP PTlen=128 AADlen=128 Count=0",
        key: "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b", iv: "ac93a1a6145299bde902f21a",
        pt: "2d71bcfa914e4ac045b2aa60955fad24", aad: "1e0889016f67601c8ebea4943bc23ad6",
        ct: "8995ae2e6df3dbf96fac7b7137bae67f", tag: "eca5aa77d51d4a0a14d9c51e1da474ab"),
    GCMVector(
        name: "CAVP PTlen=104 AADlen=160 Count=1",
        key: "97431e565e8370a4879de962746a2fd67eca868b1c8e51eece2c1f94f74af407", iv: "17fb63066e2726d282ecc610",
        pt: "e21629cc973fbe40176e621d9d", aad: "78e7374da7c77be5938de8dd76cf0308618306a9",
        ct: "80dbd469de480389ba6c2fca52", tag: "4e284abb8b4f9f13c7497ae56df05fa5"),
    GCMVector(
        name: "CAVP PTlen=408 AADlen=720 Count=2",
        key: "c277df045d0a1a3956958f271055c229d2634427b1d73e99d54920da69f72e01", iv: "79e24f84bc77a21a6cb14ee2",
        pt: """
            5ca68d858cc30b1cb0514c4e9de98e1a1a835df401f69e9ec6f1bcb1158f09114dff551683b3827457f77e17a7097b
            1ea69eac
            """,
        aad: """
            ca09282238d492029afbd30ea9b4aa9d448d77b4b41a791c35ebe3f8e5034ac71210117a843fae647cea020712c27e
            5c8f85acf933d5e28430c7770862d8dbb197cbbcfe49dd63f6aa05fbd13e32c459342698dfee5935c7c321
            """,
        ct: """
            5c5223c8eda59a8dc28b08e6c21482a46e5d84d32c7050bf144fc57f4e8094de133198da7b4b8398b167204aff837d
            a15d9ab2
            """,
        tag: "378885950a4491bee3cd681d3c957b9a"),
    GCMVector(
        name: "McGrew-Viega Test Case 13",
        key: String(repeating: "00", count: 32), iv: String(repeating: "00", count: 12),
        pt: "", aad: "", ct: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
    GCMVector(
        name: "McGrew-Viega Test Case 14",
        key: String(repeating: "00", count: 32), iv: String(repeating: "00", count: 12),
        pt: String(repeating: "00", count: 16), aad: "", ct: "cea7403d4d606b6e074ec5d3baf39d18",
        tag: "d0d1c8a799996bf0265b98b5d48ab919"),
    GCMVector(
        name: "McGrew-Viega Test Case 15",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
        pt: """
            d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
            1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255
            """,
        aad: "",
        ct: """
            522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
            8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad
            """,
        tag: "b094dac5d93471bdec1a502270e3cc6c"),
    GCMVector(
        name: "McGrew-Viega Test Case 16",
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
        pt: """
            d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
            1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39
            """,
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        ct: """
            522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
            8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662
            """,
        tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
]

final class AESGCMTests: XCTestCase {
    private let key = try! SymmetricKey(bytes: Array(1...32))

    func testSeal_matchesNISTVectors() throws {
        for v in gcmVectors {
            let sealed = try AESGCM.seal(hex(v.pt), key: SymmetricKey(bytes: hex(v.key)), aad: hex(v.aad), nonce: hex(v.iv))
            XCTAssertEqual(hexString(sealed), hexString(hex(v.iv) + hex(v.ct) + hex(v.tag)), v.name)
        }
    }

    func testOpen_matchesNISTVectors() throws {
        for v in gcmVectors {
            let opened = try AESGCM.open(hex(v.iv) + hex(v.ct) + hex(v.tag), key: SymmetricKey(bytes: hex(v.key)), aad: hex(v.aad))
            XCTAssertEqual(opened, hex(v.pt), v.name)
        }
    }

    func testSeal_drawsAFreshNonceEachTime() throws {
        let a = try AESGCM.seal(Array("same".utf8), key: key, aad: [])
        let b = try AESGCM.seal(Array("same".utf8), key: key, aad: [])
        XCTAssertEqual(a.count, 4 + AESGCM.overhead)
        XCTAssertNotEqual(Array(a[0..<12]), Array(b[0..<12]))
        XCTAssertEqual(try AESGCM.open(a, key: key, aad: []), Array("same".utf8))
        XCTAssertEqual(try AESGCM.open(b, key: key, aad: []), Array("same".utf8))
    }

    func testRoundTrip_variousLengths() throws {
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 255, 4096, 70_000] {
            let plaintext = try randomBytes(n)
            let aad = try randomBytes(n % 50)
            let sealed = try AESGCM.seal(plaintext, key: key, aad: aad)
            XCTAssertEqual(sealed.count, n + 28)
            XCTAssertEqual(try AESGCM.open(sealed, key: key, aad: aad), plaintext, "length \(n)")
        }
    }

    /// Every single-bit change anywhere — nonce, ciphertext, tag — must fail authentication.
    func testOpen_rejectsEveryFlippedBit() throws {
        let aad = Array("c-1\nslots.iban".utf8)
        let sealed = try AESGCM.seal(Array("DE89370400440532013000".utf8), key: key, aad: aad)
        for byte in 0..<sealed.count {
            for bit in 0..<8 {
                var tampered = sealed
                tampered[byte] ^= 1 << bit
                assertThrows(CryptoError.authenticationFailed, "byte \(byte) bit \(bit)") { () throws(CryptoError) in
                    try AESGCM.open(tampered, key: key, aad: aad)
                }
            }
        }
    }

    func testOpen_rejectsChangedAAD() throws {
        let aad = Array("c-1\nslots.iban".utf8)
        let sealed = try AESGCM.seal(Array("secret".utf8), key: key, aad: aad)
        for index in aad.indices {
            var changed = aad
            changed[index] ^= 0x01
            assertThrows(CryptoError.authenticationFailed) { () throws(CryptoError) in try AESGCM.open(sealed, key: key, aad: changed) }
        }
        assertThrows(CryptoError.authenticationFailed) { () throws(CryptoError) in try AESGCM.open(sealed, key: key, aad: []) }
        assertThrows(CryptoError.authenticationFailed) { () throws(CryptoError) in try AESGCM.open(sealed, key: key, aad: aad + [0]) }
    }

    func testOpen_rejectsWrongKeyAndTruncation() throws {
        let sealed = try AESGCM.seal(Array("secret".utf8), key: key, aad: [])
        let other = try SymmetricKey.random()
        assertThrows(CryptoError.authenticationFailed) { () throws(CryptoError) in try AESGCM.open(sealed, key: other, aad: []) }
        // Dropping a ciphertext byte shifts the tag: still a bad tag, not a crash.
        assertThrows(CryptoError.authenticationFailed) { () throws(CryptoError) in
            try AESGCM.open(Array(sealed.prefix(12)) + Array(sealed.dropFirst(13)), key: key, aad: [])
        }
        // Shorter than nonce and tag: malformed before any cryptography.
        for n in [0, 1, 12, 27] {
            do {
                _ = try AESGCM.open(Array(sealed.prefix(n)), key: key, aad: [])
                XCTFail("opened \(n) bytes")
            } catch {
                guard case .malformed = error else { return XCTFail("\(n) bytes: \(error)") }
            }
        }
        // Exactly nonce and tag (empty plaintext) is well-formed: it is checked, and fails.
        assertThrows(CryptoError.authenticationFailed) { () throws(CryptoError) in
            try AESGCM.open(Array(sealed.prefix(12)) + Array(sealed.suffix(16)), key: key, aad: [])
        }
    }

    func testSeal_rejectsNonceOfWrongLength() {
        for n in [0, 8, 11, 13, 16] {
            assertThrows(CryptoError.invalidNonceLength(n)) { () throws(CryptoError) in
                try AESGCM.seal([1, 2, 3], key: key, aad: [], nonce: [UInt8](repeating: 0, count: n))
            }
        }
    }
}
