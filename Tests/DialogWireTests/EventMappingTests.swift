import Foundation
import XCTest
@testable import DialogWire

final class EventMappingTests: XCTestCase {
    private func json(_ s: String) throws -> DialogEvent { try DialogEvent(jsonBytes: Array(s.utf8)) }
    private func form(_ s: String) throws -> DialogEvent { try DialogEvent(formBytes: Array(s.utf8)) }
    private func fixture(_ name: String) throws -> DialogEvent {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures/cognigy"), name)
        return try DialogEvent(jsonBytes: Array(try Data(contentsOf: url)))
    }
    private func assertFails(
        _ body: @autoclosure () throws -> DialogEvent, _ expected: EventDecodingError, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), line: line) { XCTAssertEqual($0 as? EventDecodingError, expected, line: line) }
    }

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

    // MARK: inputId, identities

    func testInputIdIsAnAliasOfEventId() throws {
        XCTAssertEqual(try json(#"{"channel":"x","inputId":"in-1"}"#).eventId, "in-1")
        XCTAssertEqual(try form("channel=x&inputId=in-1").eventId, "in-1")
        assertFails(try json(#"{"inputId":"a","eventId":"b"}"#), .duplicateField("eventId"))
        assertFails(try json(#"{"event_id":"a","inputId":"b"}"#), .duplicateField("eventId"))
        assertFails(try form("inputId=a&eventId=b"), .duplicateField("eventId"))
        assertFails(try json(#"{"inputId":7}"#), .wrongType(field: "eventId", expected: "a string"))
    }

    func testIdentities_JSON() throws {
        let e = try json(#"{"channel":"x","identities":{"email":"a@b.c","phone":4917012345678,"crm_id":"","login":null}}"#)
        // A phone number posted as a JSON number keeps its text; null means "not given".
        XCTAssertEqual(e.identities, ["email": "a@b.c", "phone": "4917012345678", "crm_id": ""])
        XCTAssertEqual(
            try json(#"{"identities":{"a":4917012345678.0,"b":4.917012345678e12,"c":-5,"d":1.50,"e":1e400}}"#).identities,
            ["a": "4917012345678", "b": "4917012345678", "c": "-5", "d": "1.50", "e": "1e400"])
        XCTAssertEqual(try json(#"{"identities":null}"#).identities, [:])
        XCTAssertEqual(try json(#"{"identities":{}}"#).identities, [:])
        assertFails(try json(#"{"identities":{"vip":true}}"#), .wrongType(field: "identities.vip", expected: "a string"))
        assertFails(try json(#"{"identities":{"phone":["1"]}}"#), .wrongType(field: "identities.phone", expected: "a string"))
        assertFails(try json(#"{"identities":{"o":{}}}"#), .wrongType(field: "identities.o", expected: "a string"))
        assertFails(try json(#"{"identities":["a@b.c"]}"#), .wrongType(field: "identities", expected: "an object"))
        assertFails(try json(#"{"identities":"a@b.c"}"#), .wrongType(field: "identities", expected: "an object"))
        assertFails(try json(#"{"identities":{},"identities":{}}"#), .duplicateField("identities"))
    }

    func testIdentities_form() throws {
        // identities={"email":"a@b.c","phone":49170}
        let e = try form("channel=x&identities=%7B%22email%22%3A%22a%40b.c%22%2C%22phone%22%3A49170%7D")
        XCTAssertEqual(e.identities, ["email": "a@b.c", "phone": "49170"])
        XCTAssertEqual(try form("channel=x&identities=").identities, [:])
        XCTAssertThrowsError(try form("identities=notjson")) {
            guard case .wrongType(field: "identities", _)? = $0 as? EventDecodingError else { return XCTFail("\($0)") }
        }
        assertFails(try form("identities=%5B%5D"), .wrongType(field: "identities", expected: "an object"))
        assertFails(try form("identities=%7B%22vip%22%3Atrue%7D"), .wrongType(field: "identities.vip", expected: "a string"))
    }

    func testIdentities_protobufRoundTrip() throws {
        let e = DialogEvent(
            conversationId: "c", channel: "whatsapp", identities: ["phone": "4917012345678", "email": "a@b.c", "": ""])
        XCTAssertEqual(try DialogEvent(protobufBytes: e.serializedBytes()), e)
        XCTAssertEqual(e.serializedBytes().count, e.serializedSize())
    }

    // MARK: Cognigy input mode

    func testCognigyInput_webChatFixture() throws {
        XCTAssertEqual(
            try fixture("webchat-input"),
            DialogEvent(
                conversationId: "conv-88a2c1f9", channel: "webchat3", intent: "book_flight",
                slots: ["city": "München", "destination": "London", "DATE": "2024-06-16T00:00:00+02:00", "NUMBER": "2"],
                userId: "web-user-1b2c3d4e", sessionId: "session-7f3c2b1a-0d9e-4f8a-b7c6-5d4e3f2a1b0c",
                eventId: "d5c6b1f0-8e2a-4c7b-9f1d-3a2b1c0d9e8f",
                identities: ["email": "Anna.Schmidt@example.com", "phone": "4917012345678"]))
    }

    /// Top-level fields win; `input.slots` fills only keys the top level does not set; the
    /// Input object's own `conversationId`, `timestamp`, `text` … are not read.
    func testCognigyInput_voiceFixture_topLevelWins() throws {
        XCTAssertEqual(
            try fixture("voice-input"),
            DialogEvent(
                channel: "voice",
                slots: [
                    "NUMBER": "three", "seat": "window seat", "note": "from input", "AGE": "32", "PERCENTAGE": "5",
                    "TEMPERATURE": "50", "EMAIL": "anna@example.com", "URL": "https://cognigy.com", "MONEY": "143",
                    "DISTANCE": "12.5", "DURATION": #"{"hour":null,"minute":10,"second":20}"#,
                    "DATE": "2024-06-17T17:00:00Z", "confirmed": "true",
                ],
                timestamp: 1718445900, userId: "+491701234567", sessionId: "vg-session-0f1e2d3c", eventId: "vg-call-42#7"))
    }

    func testCognigyInput_fieldsFromInput() throws {
        let e = try json(#"""
            {"conversationId":"c","input":{"channel":"webchat3","intent":"greet","userId":"u","sessionId":"s","inputId":"i",
             "slots":{"a":"b"}}}
            """#)
        XCTAssertEqual(
            e, DialogEvent(conversationId: "c", channel: "webchat3", intent: "greet", slots: ["a": "b"], userId: "u", sessionId: "s", eventId: "i"))
    }

    /// proto3 reads null and "" as "not given", so neither hides what the Input object says.
    func testCognigyInput_topLevelNullOrEmptyDoesNotHideInput() throws {
        let e = try json(#"""
            {"channel":"","intent":null,"userId":"","session_id":null,"input":{"channel":"c","intent":"i","userId":"u","sessionId":"s"}}
            """#)
        XCTAssertEqual(e, DialogEvent(channel: "c", intent: "i", userId: "u", sessionId: "s"))
        let top = try json(#"{"channel":"t","intent":"ti","user_id":"tu","sessionId":"ts","inputId":"te","input":{"channel":"c","intent":"i","userId":"u","sessionId":"s","inputId":"e"}}"#)
        XCTAssertEqual(top, DialogEvent(channel: "t", intent: "ti", userId: "tu", sessionId: "ts", eventId: "te"))
    }

    func testCognigyInput_slotsPrecedenceAndNormalisation() throws {
        let e = try json(#"""
            {"slots":{"both":{"keyphrase":"top"},"top":[1.50],"dropped":[],"gone":null},
             "input":{"slots":{"both":"input","in":[{"synonym":"S","keyphrase":"K"}],"dropped":"from input","gone":null,"empty":[]}}}
            """#)
        XCTAssertEqual(e.slots, ["both": "top", "top": "1.50", "dropped": "from input", "in": "S"])
    }

    /// Outside input mode slots keep the plain proto3 rule (non-strings as JSON text); an
    /// `input` object, even empty, switches the whole body to Cognigy's rules.
    func testCognigyInput_modeDecidesTopLevelSlotRules() throws {
        let slots = #""slots":{"n":[1,2],"z":null,"o":{"keyphrase":"k"},"b":false}"#
        XCTAssertEqual(try json("{\(slots)}").slots, ["n": "[1,2]", "z": "null", "o": #"{"keyphrase":"k"}"#, "b": "false"])
        XCTAssertEqual(try json("{\(slots),\"input\":null}").slots, ["n": "[1,2]", "z": "null", "o": #"{"keyphrase":"k"}"#, "b": "false"])
        XCTAssertEqual(try json("{\(slots),\"input\":{}}").slots, ["n": "1", "o": "k", "b": "false"])
        // Form bodies have no input mode: an `input` field is just an unknown field.
        XCTAssertEqual(try form("channel=x&input=%7B%22channel%22%3A%22y%22%7D").channel, "x")
    }

    func testCognigyInput_errors() {
        assertFails(try json(#"{"input":"webchat"}"#), .wrongType(field: "input", expected: "an object (Cognigy's Input object)"))
        assertFails(try json(#"{"input":[{}]}"#), .wrongType(field: "input", expected: "an object (Cognigy's Input object)"))
        assertFails(try json(#"{"input":{},"input":{}}"#), .duplicateField("input"))
        assertFails(try json(#"{"input":{"sessionId":42}}"#), .wrongType(field: "input.sessionId", expected: "a string"))
        assertFails(try json(#"{"input":{"intent":{"name":"x"}}}"#), .wrongType(field: "input.intent", expected: "a string"))
        assertFails(try json(#"{"input":{"inputId":1}}"#), .wrongType(field: "input.inputId", expected: "a string"))
        assertFails(try json(#"{"input":{"slots":[]}}"#), .wrongType(field: "input.slots", expected: "an object"))
        assertFails(try json(#"{"input":{"userId":"a","userId":"b"}}"#), .duplicateField("input.userId"))
        // A wrong type, or a control character, is an error even where the top level would win.
        assertFails(try json(#"{"channel":"x","input":{"channel":5}}"#), .wrongType(field: "input.channel", expected: "a string"))
        for name in ["channel", "intent", "userId", "sessionId", "inputId"] {
            assertFails(
                try json(#"{"channel":"x","intent":"i","userId":"u","sessionId":"s","eventId":"e","input":{"\#(name)":"a\u0007b"}}"#),
                .wrongType(field: "input.\(name)", expected: "a string without control characters"))
        }
        assertFails(try json(#"{"input":{"intent":"\u007f"}}"#), .wrongType(field: "input.intent", expected: "a string without control characters"))
        // Slot values are not ids: a control character there is the service's business (stored as given).
        XCTAssertEqual(try json(#"{"input":{"slots":{"s":"a\nb"}}}"#).slots, ["s": "a\nb"])
    }

    func testCognigyInput_unknownFieldsIgnored() throws {
        let e = try json(#"""
            {"input":{"text":null,"data":{"deep":[1,{"a":2}]},"entrypoint":"e","URLToken":7,"endpointType":["x"],
             "conversationId":"not-read","eventId":"not-read","user_id":"not-read","channel":"c"}}
            """#)
        XCTAssertEqual(e, DialogEvent(channel: "c"))
    }
}
