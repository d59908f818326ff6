import XCTest
@testable import Identity

final class IdentityRulesTests: XCTestCase {
    func testKinds() {
        for good in ["phone", "email", "a", "crm_id", "x9", String(repeating: "a", count: 32)] {
            XCTAssertTrue(IdentityRules.isValidKind(good), good)
        }
        for bad in ["", "Phone", "9a", "_a", "a-b", "a b", "é", String(repeating: "a", count: 33)] {
            XCTAssertFalse(IdentityRules.isValidKind(bad), bad)
        }
    }

    func testPhoneNormalisation() throws {
        let cases: [(String, String)] = [
            ("+49 (151) 234-5678", "491512345678"), ("0049 151 2345678", "491512345678"), ("491512345678", "491512345678"),
            ("+1.202.555.0143", "12025550143"), ("  +44 20 7946 0958 ", "442079460958"), ("123456", "123456"),
            ("123456789012345", "123456789012345"), ("(030) 1234567", "0301234567"),
        ]
        for (input, expected) in cases {
            XCTAssertEqual(try IdentityRules.normalize(kind: "phone", value: input), expected, input)
        }
        for bad in ["12345", "1234567890123456", "+49 151 abc", "49+151234567", "++49151234567", "+0049151234567x", "1/234567"] {
            XCTAssertThrowsError(try IdentityRules.normalize(kind: "phone", value: bad), bad) {
                XCTAssertEqual($0 as? IdentityError, .invalidPhone(kind: "phone"))
            }
        }
    }

    func testEmailNormalisation() throws {
        XCTAssertEqual(try IdentityRules.normalize(kind: "email", value: "  Ann.Lee@Example.COM "), "ann.lee@example.com")
        // An "@" followed by a combining mark or modifier is still the one "@" (found by schemathesis).
        XCTAssertEqual(try IdentityRules.normalize(kind: "email", value: "a@\u{1F3FB}b"), "a@\u{1F3FB}b")
        for bad in ["ann", "ann@", "@example.com", "a@b@c", "ann lee@example.com"] {
            XCTAssertThrowsError(try IdentityRules.normalize(kind: "email", value: bad), bad) {
                XCTAssertEqual($0 as? IdentityError, .invalidEmail(kind: "email"))
            }
        }
    }

    func testOtherKindsAreTrimmed_emptyIsIgnored_controlCharactersRefused() throws {
        XCTAssertEqual(try IdentityRules.normalize(kind: "crm_id", value: "  ABC 42 "), "ABC 42")
        XCTAssertNil(try IdentityRules.normalize(kind: "phone", value: ""))
        XCTAssertNil(try IdentityRules.normalize(kind: "email", value: "   "))
        XCTAssertThrowsError(try IdentityRules.normalize(kind: "crm_id", value: "a\nb")) {
            XCTAssertEqual($0 as? IdentityError, .controlCharacter(kind: "crm_id"))
        }
        XCTAssertThrowsError(try IdentityRules.normalize(kind: "Bad", value: "x")) {
            XCTAssertEqual($0 as? IdentityError, .invalidKind("Bad"))
        }
        XCTAssertThrowsError(try IdentityRules.normalize(kind: "crm_id", value: String(repeating: "x", count: 9), maxLength: 8)) {
            XCTAssertEqual($0 as? IdentityError, .tooLong(kind: "crm_id", limit: 8))
        }
    }

    func testSubjects_identitiesInBytewiseKeyOrderThenTheUser() throws {
        let subjects = try IdentityRules.subjects(
            identities: ["phone": "+49 151 2345678", "email": "A@B.C", "crm_id": "", "b_2": "x", "b": "y"],
            channel: "whatsapp", userId: "u1")
        XCTAssertEqual(
            subjects,
            [.identity(kind: "b", value: "y"), .identity(kind: "b_2", value: "x"), .identity(kind: "email", value: "a@b.c"),
             .identity(kind: "phone", value: "491512345678"), .user(channel: "whatsapp", userId: "u1")])
        XCTAssertEqual(subjects.map(\.label), ["identity:b", "identity:b_2", "identity:email", "identity:phone", "user"])
        XCTAssertEqual(try IdentityRules.subjects(identities: [:], channel: "web", userId: ""), [])
    }
}

final class LinkHasherTests: XCTestCase {
    /// Byte fixtures: the key is HMAC-SHA256(key, "identity\n<kind>\n<value>") or
    /// HMAC-SHA256(key, "user\n<channel>\n<userId>") in lowercase hex, checked with
    /// `printf 'identity\nphone\n491512345678' | openssl dgst -sha256 -hmac k`.
    func testKeyedLinkKeys() {
        XCTAssertTrue(LinkHasher(key: Array("k".utf8)).isKeyed)
        XCTAssertEqual(
            LinkHasher(key: Array("k".utf8)).linkKey(.identity(kind: "phone", value: "491512345678")),
            "ac37cdb5f98be60538bf9b0e45d02df80d742b5992cdd29928eccc614ff7e862")
        XCTAssertEqual(
            LinkHasher(key: Array("secret-key-0123456789".utf8)).linkKey(.identity(kind: "email", value: "a@b.c")),
            "4aa8ebd355762755b99154835cffbc8e7bc50d79289e6a67ae40618228104bf7")
    }

    /// `printf 'user\nwhatsapp\n4915123456789' | openssl dgst -sha256`
    func testUnkeyedIsSHA256() {
        XCTAssertEqual(
            LinkHasher(key: nil).linkKey(.user(channel: "whatsapp", userId: "4915123456789")),
            "b6b3e2392d61f679e7f06919dae0c69bbce0bf506a55c14e6a7b0824ec12beb5")
    }

    func testKindsNeverCollide() {
        let plain = LinkHasher(key: nil)
        XCTAssertFalse(plain.isKeyed)
        XCTAssertFalse(LinkHasher(key: []).isKeyed)
        XCTAssertEqual(plain.linkKey(.identity(kind: "email", value: "a@b.c")).count, 64)
        XCTAssertNotEqual(plain.linkKey(.identity(kind: "user", value: "web")), plain.linkKey(.user(channel: "web", userId: "")))
        XCTAssertNotEqual(
            LinkHasher(key: Array("k1".utf8)).linkKey(.user(channel: "web", userId: "u")),
            LinkHasher(key: Array("k2".utf8)).linkKey(.user(channel: "web", userId: "u")))
    }
}

final class ConversationIdsTests: XCTestCase {
    func testShapeAndUniqueness() throws {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = try ConversationIds.generate()
            XCTAssertEqual(id.count, 34)
            XCTAssertTrue(id.hasPrefix("c-"))
            XCTAssertTrue(id.dropFirst(2).allSatisfy { "0123456789abcdef".contains($0) })
            seen.insert(id)
        }
        XCTAssertEqual(seen.count, 1000)
    }
}
