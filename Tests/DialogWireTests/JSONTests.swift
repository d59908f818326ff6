import XCTest
@testable import DialogWire

final class JSONTests: XCTestCase {
    private func parse(_ s: String, maxDepth: Int = 64) throws -> JSONValue {
        try JSONParser.parse(Array(s.utf8), maxDepth: maxDepth)
    }

    private func assertFails(_ s: String, _ reason: JSONError.Reason, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(s), file: file, line: line) { error in
            XCTAssertEqual((error as? JSONError)?.reason, reason, file: file, line: line)
        }
    }

    func testParse_keepsNumberTextAndOrder() throws {
        let v = try parse(#" {"b": 1.50, "a": [true, null, -0, 2e10], "c": "x"} "#)
        XCTAssertEqual(
            v,
            .object([
                JSONMember("b", .number("1.50")),
                JSONMember("a", .array([.bool(true), .null, .number("-0"), .number("2e10")])),
                JSONMember("c", .string("x")),
            ]))
    }

    func testParse_escapesAndSurrogates() throws {
        XCTAssertEqual(try parse(#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#), .string("a\"\\/\u{8}\u{c}\n\r\té😀"))
    }

    func testParse_rejects() {
        assertFails("", .unexpectedEnd)
        assertFails("{", .unexpectedEnd)
        assertFails(#"{"a":1,}"#, .unexpectedByte(UInt8(ascii: "}")))
        assertFails("[1,]", .unexpectedByte(UInt8(ascii: "]")))
        assertFails("01", .invalidNumber)
        assertFails("1.", .invalidNumber)
        assertFails("-", .invalidNumber)
        assertFails("1e", .invalidNumber)
        assertFails(#""\x""#, .invalidEscape)
        assertFails(#""\ud83d""#, .invalidUnicode)
        assertFails(#""\ude00""#, .invalidUnicode)
        assertFails("\"a\u{1}\"", .controlCharacterInString)
        assertFails("{} {}", .trailingData)
        assertFails("nul", .unexpectedEnd)
        assertFails("tru e", .unexpectedByte(UInt8(ascii: " ")))
    }

    func testParse_rejectsInvalidUTF8() {
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0xC3, 0x28, 0x22])) { error in
            XCTAssertEqual((error as? JSONError)?.reason, .invalidUnicode)
        }
    }

    func testParse_depthLimit() throws {
        XCTAssertNoThrow(try parse(String(repeating: "[", count: 8) + String(repeating: "]", count: 8), maxDepth: 8))
        XCTAssertThrowsError(try parse(String(repeating: "[", count: 9) + String(repeating: "]", count: 9), maxDepth: 8)) {
            XCTAssertEqual(($0 as? JSONError)?.reason, .tooDeep(limit: 8))
        }
        // Far past the limit must not exhaust the stack.
        XCTAssertThrowsError(try parse(String(repeating: "[", count: 100_000)))
    }

    func testWriter_escapesAndRoundTrips() throws {
        let value = JSONValue.object([
            JSONMember("k\"ey", .string("line\nbreak\u{1}é")), JSONMember("n", .number("1.50")),
            JSONMember("a", .array([.null, .bool(false), .object([])])),
        ])
        let text = JSONWriter.serialize(value)
        XCTAssertEqual(text, #"{"k\"ey":"line\nbreak\u0001é","n":1.50,"a":[null,false,{}]}"#)
        XCTAssertEqual(try parse(text), value)
    }

    /// Every byte class the writer escapes, at the start, middle and end of a string and
    /// back to back, against the expected bytes; DEL and non-ASCII pass through as they are.
    func testWriter_escapesEachClassAtEveryPosition() {
        let cases: [(String, String)] = [
            ("", #""""#),
            ("plain", #""plain""#),
            ("\"", #""\"""#),
            ("\"a\\b\n", #""\"a\\b\n""#),
            ("\r\t\u{0}\u{1f}x", #""\r\t\u0000\u001fx""#),
            ("a\u{7f}é😀\u{8}", "\"a\u{7f}é😀\\u0008\""),
            ("\\\\", #""\\\\""#),
        ]
        for (input, expected) in cases {
            var w = JSONWriter(capacity: 4)
            w.value(input)
            XCTAssertEqual(w.bytes, Array(expected.utf8), "\(Array(input.utf8))")
        }
    }
}
