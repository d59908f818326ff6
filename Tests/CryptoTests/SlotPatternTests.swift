import XCTest
@testable import Crypto

final class SlotPatternTests: XCTestCase {
    func testStar_matchesEverySlot() throws {
        for p in [SlotPattern.all, try SlotPattern(parsing: "*"), try SlotPattern(parsing: " * "), try SlotPattern(parsing: "iban,*")] {
            for name in ["iban", "", "anything", "card.number"] { XCTAssertTrue(p.matches(name), name) }
        }
    }

    func testList_exactNamesAndTrailingStarPrefixes() throws {
        let p = try SlotPattern(parsing: "iban, card*,email")
        for name in ["iban", "card", "cardNumber", "card_cvc", "email"] { XCTAssertTrue(p.matches(name), name) }
        for name in ["ibanx", "xiban", "Iban", "car", "CardNumber", "emails", "", "e-mail"] { XCTAssertFalse(p.matches(name), name) }
    }

    /// A combining mark after the prefix changes the Character but not the bytes: still a match.
    func testPrefix_matchesByBytesToo() throws {
        XCTAssertTrue(try SlotPattern(parsing: "card*").matches("card\u{301}x"))
    }

    func testParse_rejects() {
        let cases: [(String, SlotPatternError)] = [
            ("", .empty), ("   ", .empty), ("iban,", .emptyEntry(position: 2)), ("a,,b", .emptyEntry(position: 2)),
            ("ca*rd", .misplacedWildcard("ca*rd")), ("card**", .misplacedWildcard("card**")), ("*iban", .misplacedWildcard("*iban")),
        ]
        for (text, expected) in cases {
            assertThrows(expected, text) { () throws(SlotPatternError) in try SlotPattern(parsing: text) }
        }
    }
}
