import XCTest
@testable import DialogWire

final class EventMappingTests: XCTestCase {
    private func json(_ s: String) throws -> DialogEvent { try DialogEvent(jsonBytes: Array(s.utf8)) }
    private func form(_ s: String) throws -> DialogEvent { try DialogEvent(formBytes: Array(s.utf8)) }

    func testJSON_originalDesignExample() throws {
        let e = try json(#"""
            {"conversationId":"conv-88a2c1f9","channel":"web-chat","intent":"book_flight",
             "slots":{"origin":"JFK","destination":"LHR","date":"2024-06-15"},"timestamp":1718409600}
            """#)
        XCTAssertEqual(
            e,
            DialogEvent(
                conversationId: "conv-88a2c1f9", channel: "web-chat", intent: "book_flight",
                slots: ["origin": "JFK", "destination": "LHR", "date": "2024-06-15"], timestamp: 1718409600))
    }

    func testJSON_originalFieldNamesAndNulls() throws {
        let e = try json(#"{"conversation_id":"c","channel":"x","user_id":"u","session_id":"s","event_id":"e","intent":null,"slots":null}"#)
        XCTAssertEqual(e, DialogEvent(conversationId: "c", channel: "x", userId: "u", sessionId: "s", eventId: "e"))
    }

    func testJSON_nonStringSlotValuesKeepTheirJSONText() throws {
        let e = try json(#"{"slots":{"n":1.50,"b":true,"z":null,"o":{"a":[1, 2]},"s":"t"}}"#)
        XCTAssertEqual(e.slots, ["n": "1.50", "b": "true", "z": "null", "o": #"{"a":[1,2]}"#, "s": "t"])
    }

    func testJSON_timestampForms() throws {
        XCTAssertEqual(try json(#"{"timestamp":"1718409600"}"#).timestamp, 1718409600)
        XCTAssertEqual(try json(#"{"timestamp":"2024-06-15T00:00:00Z"}"#).timestamp, 1718409600)
        XCTAssertEqual(try json(#"{"timestamp":"2024-06-15T02:00:00.987+02:00"}"#).timestamp, 1718409600)
        XCTAssertEqual(try json(#"{"timestamp":"1970-01-01T00:00:00Z"}"#).timestamp, 0)
        XCTAssertEqual(try json(#"{"timestamp":"2000-02-29t12:00:00-00:30"}"#).timestamp, 951782400 + 12 * 3600 + 1800)
        // proto3 JSON (and JSON Schema's "integer") accept an integral number in any notation.
        XCTAssertEqual(try json(#"{"timestamp":1718409600.0}"#).timestamp, 1718409600)
        XCTAssertEqual(try json(#"{"timestamp":1.7184096e9}"#).timestamp, 1718409600)
    }

    /// Integral JSON numbers, exactly: no trip through Double, so the Int64 edges survive.
    func testJSONInteger_exactIntegralValues() {
        let accepted: [(String, Int64)] = [
            ("0", 0), ("-0", 0), ("0.000", 0), ("0e99999", 0), ("161", 161), ("161.0", 161), ("1.61e2", 161),
            ("1.61E+2", 161), ("16100e-2", 161), ("-5", -5), ("9223372036854775807", .max),
            ("-9223372036854775808", .min), ("9.223372036854775807e18", .max), ("92233720368547758070e-1", .max),
        ]
        for (text, value) in accepted { XCTAssertEqual(JSONInteger.int64(text), value, text) }
        for text in [
            "1.5", "16101e-2", "9223372036854775808", "-9223372036854775809", "1e19", "1e99999", "1e-1", "", "-",
            "1.", ".5", "1e", "1e+", "abc", "1 ", "0x10", "9.2233720368547758075e18",
        ] {
            XCTAssertNil(JSONInteger.int64(text), text)
        }
    }

    func testJSON_errors() {
        XCTAssertThrowsError(try json(#"{"timestamp":1.5}"#)) {
            guard case .invalidTimestamp? = $0 as? EventDecodingError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try json(#"{"timestamp":"2023-02-29T00:00:00Z"}"#)) {
            guard case .invalidTimestamp? = $0 as? EventDecodingError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try json(#"{"timestamp":true}"#)) {
            XCTAssertEqual($0 as? EventDecodingError, .wrongType(field: "timestamp", expected: "a number or a string"))
        }
        XCTAssertThrowsError(try json(#"{"channel":5}"#)) {
            XCTAssertEqual($0 as? EventDecodingError, .wrongType(field: "channel", expected: "a string"))
        }
        XCTAssertThrowsError(try json(#"{"slots":[1]}"#)) {
            XCTAssertEqual($0 as? EventDecodingError, .wrongType(field: "slots", expected: "an object"))
        }
        XCTAssertThrowsError(try json(#"{"conversationId":"a","conversation_id":"b"}"#)) {
            XCTAssertEqual($0 as? EventDecodingError, .duplicateField("conversationId"))
        }
        XCTAssertThrowsError(try json("[]")) { XCTAssertEqual($0 as? EventDecodingError, .notAnObject) }
        XCTAssertThrowsError(try json("{")) {
            guard case .invalidJSON? = $0 as? EventDecodingError else { return XCTFail("\($0)") }
        }
    }

    func testJSON_unknownFieldsIgnored() throws {
        XCTAssertEqual(try json(#"{"channel":"x","data":{"deep":[1]},"extra":1}"#).channel, "x")
    }

    func testForm_fields() throws {
        let e = try form(
            "conversationId=conv-1&channel=whats+app&slots=%7B%22city%22%3A%22M%C3%BCnchen%22%2C%22n%22%3A2%7D&timestamp=2024-06-15T00%3A00%3A00Z&user_id=u")
        XCTAssertEqual(
            e,
            DialogEvent(
                conversationId: "conv-1", channel: "whats app", slots: ["city": "München", "n": "2"],
                timestamp: 1718409600, userId: "u"))
    }

    func testForm_errors() {
        XCTAssertThrowsError(try form("channel=%zz")) {
            XCTAssertEqual($0 as? EventDecodingError, .invalidForm("bad percent-escape"))
        }
        XCTAssertThrowsError(try form("channel=%ff")) { XCTAssertEqual($0 as? EventDecodingError, .invalidForm("not UTF-8")) }
        XCTAssertThrowsError(try form("slots=notjson")) {
            guard case .wrongType(field: "slots", _)? = $0 as? EventDecodingError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try form("channel=a&channel=b")) {
            XCTAssertEqual($0 as? EventDecodingError, .duplicateField("channel"))
        }
    }

    func testProtobufBodyErrorsAreTyped() {
        XCTAssertThrowsError(try DialogEvent(protobufBytes: [0x0F])) {
            XCTAssertEqual($0 as? EventDecodingError, .invalidProtobuf(.invalidWireType(7)))
        }
    }

    func testRFC3339_rejectsMalformed() {
        for s in ["2024-06-15", "2024-06-15T00:00:00", "2024-13-01T00:00:00Z", "2024-06-15T24:00:00Z",
                  "2024-06-15T00:00:00.Z", "2024-06-15T00:00:00+0200", "2024-06-15T00:00:00Zjunk"] {
            XCTAssertNil(RFC3339.epochSeconds(s), s)
        }
    }
}
