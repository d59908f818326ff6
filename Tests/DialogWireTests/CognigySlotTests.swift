import XCTest
@testable import DialogWire

final class CognigySlotTests: XCTestCase {
    private func normalise(_ json: String) throws -> String? {
        CognigySlot.normalise(try JSONParser.parse(Array(json.utf8)))
    }

    func testNormalise_scalars() throws {
        XCTAssertEqual(try normalise(#""München""#), "München")
        XCTAssertEqual(try normalise(#""""#), "")
        XCTAssertEqual(try normalise("1.50"), "1.50")  // the number's JSON text, as written
        XCTAssertEqual(try normalise("-3e2"), "-3e2")
        XCTAssertEqual(try normalise("true"), "true")
        XCTAssertEqual(try normalise("false"), "false")
        XCTAssertNil(try normalise("null"))
    }

    func testNormalise_arraysTakeTheirFirstElement() throws {
        XCTAssertEqual(try normalise("[100, 143]"), "100")
        XCTAssertEqual(try normalise(#"["anna@example.com","bob@example.com"]"#), "anna@example.com")
        XCTAssertEqual(try normalise(#"[["nested"], "x"]"#), "nested")
        XCTAssertNil(try normalise("[]"))
        XCTAssertNil(try normalise("[null, \"second\"]"))  // the first element decides
        XCTAssertNil(try normalise("[[]]"))
    }

    func testNormalise_lexiconSlots() throws {
        XCTAssertEqual(
            try normalise(#"[{"keyphrase":"Munich","synonym":"München","tags":["city"],"count":1,"data":{}}]"#),
            "München")
        XCTAssertEqual(try normalise(#"{"keyphrase":"window seat","tags":["seat"]}"#), "window seat")
        // An empty synonym is "no synonym": the keyphrase is what was meant.
        XCTAssertEqual(try normalise(#"{"synonym":"","keyphrase":"London"}"#), "London")
        // A non-string synonym is not a match either.
        XCTAssertEqual(try normalise(#"{"synonym":7,"keyphrase":"London"}"#), "London")
    }

    func testNormalise_systemSlots() throws {
        XCTAssertEqual(
            try normalise(#"[{"start":{"day":2,"month":6,"year":2018,"ISODate":"2018-06-02T12:00:00Z"},"end":null}]"#),
            "2018-06-02T12:00:00Z")
        XCTAssertEqual(try normalise(#"{"ISODate":"2021-12-13T00:00:00+01:00","plain":"December 13, 2021"}"#), "2021-12-13T00:00:00+01:00")
        XCTAssertEqual(try normalise(#"[{"value":500,"unit":"$"}]"#), "500")
        XCTAssertEqual(try normalise(#"{"value":{"keyphrase":"EUR"}}"#), "EUR")
        XCTAssertEqual(try normalise(#"{"value":[12.5]}"#), "12.5")
        // Nothing recognisable: the object's JSON text, so what was detected is kept.
        XCTAssertEqual(try normalise(#"{"hour":null,"minute":10,"second":20}"#), #"{"hour":null,"minute":10,"second":20}"#)
        XCTAssertEqual(try normalise(#"{"value":null,"unit":"$"}"#), #"{"value":null,"unit":"$"}"#)
        XCTAssertEqual(try normalise(#"{"start":{"ISODate":5}}"#), #"{"start":{"ISODate":5}}"#)
        XCTAssertEqual(try normalise("{}"), "{}")
    }

    func testNormalise_preferenceOrder() throws {
        XCTAssertEqual(try normalise(#"{"value":"v","start":{"ISODate":"s"},"ISODate":"i","keyphrase":"k","synonym":"y"}"#), "y")
        XCTAssertEqual(try normalise(#"{"value":"v","start":{"ISODate":"s"},"ISODate":"i","keyphrase":"k"}"#), "k")
        XCTAssertEqual(try normalise(#"{"value":"v","start":{"ISODate":"s"},"ISODate":"i"}"#), "i")
        XCTAssertEqual(try normalise(#"{"value":"v","start":{"ISODate":"s"}}"#), "s")
        XCTAssertEqual(try normalise(#"{"value":"v"}"#), "v")
    }
}
