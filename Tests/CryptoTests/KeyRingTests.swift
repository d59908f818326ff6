import XCTest
@testable import Crypto

final class KeyRingTests: XCTestCase {
    private let k1 = Base64.encode([UInt8](repeating: 1, count: 32))
    private let k2 = Base64.encode([UInt8](repeating: 2, count: 32))

    func testParse_keepsOrderAndRecognisesKMSEntries() throws {
        let entries = try KeyRing.parse(" new:\(k1), old:\(k2) ,wrapped:kms:AQIDBA== ")
        XCTAssertEqual(entries.map(\.id), ["new", "old", "wrapped"])
        XCTAssertEqual(entries[0], .key(id: "new", key: try SymmetricKey(bytes: [UInt8](repeating: 1, count: 32))))
        XCTAssertEqual(entries[1], .key(id: "old", key: try SymmetricKey(bytes: [UInt8](repeating: 2, count: 32))))
        XCTAssertEqual(entries[2], .kmsKey(id: "wrapped", ciphertextBlob: [1, 2, 3, 4]))
    }

    func testParse_rejectsEachProblemByName() {
        let short = Base64.encode([UInt8](repeating: 1, count: 31))
        let long = Base64.encode([UInt8](repeating: 1, count: 33))
        let cases: [(String, KeyRingError)] = [
            ("", .empty),
            ("  ", .empty),
            ("a:\(k1),", .emptyEntry(position: 2)),
            (",a:\(k1)", .emptyEntry(position: 1)),
            ("a:\(k1),,b:\(k2)", .emptyEntry(position: 2)),
            (k1, .missingSeparator(position: 1)),
            (":\(k1)", .emptyKeyId(position: 1)),
            ("a:\(k1), :\(k2)", .emptyKeyId(position: 2)),
            ("a:b:\(k1)", .invalidKeyId("a:b")),
            ("my key:\(k1)", .invalidKeyId("my key")),
            ("a:\(k1),a:\(k2)", .duplicateKeyId("a")),
            ("a:\(k1),a:kms:AQID", .duplicateKeyId("a")),
            ("a:not base64", .invalidBase64(keyId: "a")),
            ("a:\(k1.dropLast())", .invalidBase64(keyId: "a")),
            ("a:", .invalidKeyLength(keyId: "a", byteCount: 0)),
            ("a:\(short)", .invalidKeyLength(keyId: "a", byteCount: 31)),
            ("a:\(long)", .invalidKeyLength(keyId: "a", byteCount: 33)),
            ("a:kms:", .emptyKMSBlob(keyId: "a")),
            ("a:kms:%%%", .invalidBase64(keyId: "a")),
        ]
        for (text, expected) in cases {
            assertThrows(expected, text) { () throws(KeyRingError) in try KeyRing.parse(text) }
        }
    }

    /// Error texts go to the start-up log: they name the id, never the key.
    func testErrors_neverEchoKeyMaterial() {
        for text in [k1, "a:\(k1.dropLast())", "a:\(Base64.encode([9, 9, 9]))", "a:b:\(k1)"] {
            do {
                _ = try KeyRing.parse(text)
                XCTFail(text)
            } catch {
                XCTAssertFalse(error.description.contains(k1.prefix(8)), error.description)
                XCTAssertFalse(error.description.contains("CQkJ"), error.description)
            }
        }
    }

    func testFieldCipherInit_requiresResolvedKeys() {
        assertThrows(KeyRingError.kmsKeyNotResolved(keyId: "w")) { () throws(KeyRingError) in
            try FieldCipher(parsing: "a:\(k1),w:kms:AQID")
        }
        assertThrows(KeyRingError.empty) { () throws(KeyRingError) in try FieldCipher(keys: []) }
        let key = try! SymmetricKey.random()
        assertThrows(KeyRingError.invalidKeyId("a,b")) { () throws(KeyRingError) in try FieldCipher(keys: [("a,b", key)]) }
        assertThrows(KeyRingError.invalidKeyId("")) { () throws(KeyRingError) in try FieldCipher(keys: [("", key)]) }
        assertThrows(KeyRingError.duplicateKeyId("a")) { () throws(KeyRingError) in try FieldCipher(keys: [("a", key), ("a", key)]) }
    }

    func testGenerateKeyLine_parsesBackAsOneFreshKey() throws {
        let line = try generateKeyLine(id: "2025-06")
        XCTAssertTrue(line.hasPrefix("2025-06:"))
        XCTAssertEqual(line.count, "2025-06:".count + 44)
        let entries = try KeyRing.parse(line)
        XCTAssertEqual(entries.map(\.id), ["2025-06"])
        guard case .key = entries[0] else { return XCTFail("\(entries)") }
        XCTAssertNotEqual(try generateKeyLine(id: "x"), try generateKeyLine(id: "x"))
        for bad in ["", "a:b", "a,b", "a b", "tab\t"] {
            assertThrows(CryptoError.invalidKeyId(bad)) { () throws(CryptoError) in try generateKeyLine(id: bad) }
        }
    }
}
