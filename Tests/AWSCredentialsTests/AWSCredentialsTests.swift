import XCTest
@testable import AWSCredentials

final class AWSCredentialsTests: XCTestCase {
    func testDescription_redactsSecretAndToken() {
        let c = AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI", sessionToken: "FwoGZXIvYXdzEB", expiration: 1_700_000_000)
        for text in [c.description, "\(c)", String(reflecting: c)] {
            XCTAssertTrue(text.contains("AKIDEXAMPLE"), text)
            XCTAssertFalse(text.contains("wJalrXUtnFEMI"), text)
            XCTAssertFalse(text.contains("FwoGZXIvYXdzEB"), text)
        }
    }

    func testIsValid_respectsExpirationAndMargin() {
        let c = AWSCredentials(accessKeyId: "a", secretAccessKey: "s", expiration: 1000)
        XCTAssertTrue(c.isValid(at: 999))
        XCTAssertFalse(c.isValid(at: 1000))
        XCTAssertFalse(c.isValid(at: 995, for: 10))
        XCTAssertTrue(AWSCredentials(accessKeyId: "a", secretAccessKey: "s").isValid(at: .greatestFiniteMagnitude))
    }

    func testStaticFromEnvironment_needsBothKeys() throws {
        XCTAssertThrowsError(try StaticCredentialProvider.fromEnvironment(["AWS_ACCESS_KEY_ID": "a"])) {
            guard case .notConfigured? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
        let p = try StaticCredentialProvider.fromEnvironment(["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"])
        XCTAssertEqual(try p.credentials(), AWSCredentials(accessKeyId: "a", secretAccessKey: "s", sessionToken: "t"))
    }

    func testISO8601_parsesTheFormsSourcesSend() {
        XCTAssertEqual(ISO8601Timestamp.parse("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(ISO8601Timestamp.parse("2023-11-14T22:13:20Z"), 1_700_000_000)
        XCTAssertEqual(ISO8601Timestamp.parse("2023-11-14T22:13:20.500Z"), 1_700_000_000.5)
        XCTAssertEqual(ISO8601Timestamp.parse("2023-11-15T00:13:20+02:00"), 1_700_000_000)
        XCTAssertEqual(ISO8601Timestamp.parse("2024-02-29T00:00:00Z"), 1_709_164_800)
    }

    func testISO8601_rejectsMalformed() {
        for bad in [
            "", "2023-11-14", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20ZZ", "2023-11-14T22:13:20.Z", "２023-11-14T22:13:20Z", "2023-11-14T22:13:20+0200", "1700000000",
        ] {
            XCTAssertNil(ISO8601Timestamp.parse(bad), bad)
        }
    }
}
