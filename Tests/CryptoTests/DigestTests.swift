import XCTest
@testable import Crypto

final class DigestTests: XCTestCase {
    /// RFC 4231 §4.2–4.8, HMAC-SHA-256 row of each test case.
    func testHMACSHA256_matchesRFC4231() {
        let largeKey = [UInt8](repeating: 0xaa, count: 131)
        let cases: [(name: String, key: [UInt8], data: [UInt8], mac: String)] = [
            ("4.2 Test Case 1", [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            ("4.3 Test Case 2 (key shorter than the output)", Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ("4.4 Test Case 3", [UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            ("4.5 Test Case 4", Array(1...25), [UInt8](repeating: 0xcd, count: 50),
             "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            // Test Case 5 publishes the output truncated to 128 bits: compare that prefix.
            ("4.6 Test Case 5 (truncated)", [UInt8](repeating: 0x0c, count: 20), Array("Test With Truncation".utf8),
             "a3b6167473100ee06e0c796c2955552b"),
            ("4.7 Test Case 6 (key larger than the block)", largeKey,
             Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            ("4.8 Test Case 7 (key and data larger than the block)", largeKey,
             Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ]
        for c in cases {
            let mac = HMACSHA256.mac(key: c.key, message: c.data)
            XCTAssertEqual(mac.count, 32, c.name)
            XCTAssertEqual(hexString(Array(mac.prefix(c.mac.count / 2))), c.mac, c.name)
        }
    }

    /// Empty key and message: Swift hands NULL for empty arrays, which must mean zero bytes.
    /// Expected value from Python's hmac module (not an RFC vector).
    func testHMACSHA256_emptyKeyAndMessage() {
        XCTAssertEqual(
            hexString(HMACSHA256.mac(key: [], message: [])),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    /// FIPS 180-4 examples (NIST CSRC "Cryptographic Standards and Guidelines: Examples with
    /// Intermediate Values", SHA256.pdf / SHA2_Additional) and the empty message.
    func testSHA256_matchesFIPSExamples() {
        XCTAssertEqual(hexString(SHA256.hash([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hexString(SHA256.hash(Array("abc".utf8))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            hexString(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testRandomBytes_lengthAndVariety() throws {
        XCTAssertEqual(try randomBytes(0), [])
        let a = try randomBytes(32), b = try randomBytes(32)
        XCTAssertEqual(a.count, 32)
        XCTAssertNotEqual(a, b)
    }

    /// RFC 4648 §10 vectors, and the strictness the key and value parsers rely on.
    func testBase64_rfc4648AndStrictDecoding() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(encoded), Array(plain.utf8))
        }
        XCTAssertEqual(Base64.encode([0xfb, 0xff, 0xbf]), "+/+/")
        for bad in ["Zg", "Zg=", "Zm9vY", "Zh==", "Zm9=", "Zg==Zg==", "Z===", "Zm 9v", "Zm9v\n", "Zm-_", "=Zm9"] {
            XCTAssertNil(Base64.decode(bad), bad)
        }
    }
}
