import XCTest
@testable import Crypto

final class SymmetricKeyTests: XCTestCase {
    func testInit_acceptsExactly32Bytes() {
        XCTAssertNoThrow(try SymmetricKey(bytes: [UInt8](repeating: 7, count: 32)))
        for n in [0, 16, 24, 31, 33, 64] {
            assertThrows(CryptoError.invalidKeyLength(n)) { () throws(CryptoError) in
                try SymmetricKey(bytes: [UInt8](repeating: 7, count: n))
            }
        }
    }

    func testRandom_givesDistinctKeys() throws {
        let a = try SymmetricKey.random(), b = try SymmetricKey.random()
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(a, a)
        XCTAssertEqual(try SymmetricKey(bytes: Array(0..<32)), try SymmetricKey(bytes: Array(0..<32)))
    }

    /// Every way Swift turns a value into text: none may show the key.
    func testKey_neverPrintsItsBytes() throws {
        let bytes: [UInt8] = Array(0xA0..<0xC0)
        let key = try SymmetricKey(bytes: bytes)
        var dumped = ""
        dump(key, to: &dumped)
        var dumpedInEntry = ""
        dump(KeyRingEntry.key(id: "k1", key: key), to: &dumpedInEntry)
        let texts = [
            "\(key)", String(describing: key), String(reflecting: key), key.description, key.debugDescription, dumped,
            dumpedInEntry, "\(KeyRingEntry.key(id: "k1", key: key))", "\([key])", "\(Optional(key) as Any)",
        ]
        let forbidden = [
            hexString(bytes), Base64.encode(bytes), "\(bytes)", "160, 161, 162", "a0a1a2", "storage", "pointer",
        ]
        for text in texts {
            XCTAssertTrue(text.contains("SymmetricKey"), text)
            for f in forbidden { XCTAssertFalse(text.contains(f), "\(text) contains \(f)") }
        }
        XCTAssertEqual(key.description, "SymmetricKey(redacted)")
        XCTAssertEqual(key.debugDescription, "SymmetricKey(redacted)")
        XCTAssertTrue(Mirror(reflecting: key).children.isEmpty)
    }
}
