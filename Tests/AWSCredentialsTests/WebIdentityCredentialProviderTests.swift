import Foundation
import HTTPClient
import HTTPServer
import Primitives
import XCTest
@testable import AWSCredentials

final class WebIdentityCredentialProviderTests: XCTestCase {
    private var fake: FakeCredentialServer?
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("wi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        fake?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    private func tokenFile(_ token: String) throws -> String {
        let path = directory.appendingPathComponent("token").path
        try token.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func stsAnswer(id: String, expiration: String) -> String {
        """
        <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <AssumeRoleWithWebIdentityResult>
            <SubjectFromWebIdentityToken>system:serviceaccount:ns:app</SubjectFromWebIdentityToken>
            <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/app/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
            <Credentials>
              <SessionToken>IQoJb3JpZ2luX2VjE&amp;+/=</SessionToken>
              <SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>
              <Expiration>\(expiration)</Expiration>
              <AccessKeyId>\(id)</AccessKeyId>
            </Credentials>
            <Provider>www.amazon.com</Provider>
          </AssumeRoleWithWebIdentityResult>
          <ResponseMetadata><RequestId>ad4156e9</RequestId></ResponseMetadata>
        </AssumeRoleWithWebIdentityResponse>
        """
    }

    func testAgainstFakeSTS_sendsTheFormAndParsesTheXML() throws {
        let fake = try FakeCredentialServer { _ in FakeCredentialServer.xml(Self.stsAnswer(id: "ASIAWI", expiration: "2030-01-01T00:00:00Z")) }
        self.fake = fake
        let provider = try WebIdentityCredentialProvider.fromEnvironment(
            [
                "AWS_WEB_IDENTITY_TOKEN_FILE": try tokenFile("eyJhbGc.eyJzdWIi+/=.sig\n"), "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/app",
                "AWS_ROLE_SESSION_NAME": "s 1", "AWS_ENDPOINT_URL_STS": fake.baseURL + "/", "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
            ], http: CurlHTTPClient())
        let c = try provider.credentials()
        XCTAssertEqual(c, AWSCredentials(accessKeyId: "ASIAWI", secretAccessKey: "wJalrXUtnFEMI/K7MDENG", sessionToken: "IQoJb3JpZ2luX2VjE&+/=", expiration: 1_893_456_000))
        let seen = try XCTUnwrap(fake.requests.first)
        XCTAssertEqual(seen.method, "POST")
        XCTAssertEqual(seen.path, "/")
        XCTAssertNil(seen.header("Authorization"), "AssumeRoleWithWebIdentity is unsigned")
        XCTAssertEqual(seen.header("Content-Type"), "application/x-www-form-urlencoded; charset=utf-8")
        XCTAssertEqual(
            seen.body,
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp"
                + "&RoleSessionName=s%201&WebIdentityToken=eyJhbGc.eyJzdWIi%2B%2F%3D.sig")
    }

    func testEndpoint_fallsBackToAWSEndpointURLThenTheRegion() throws {
        let base = ["AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_ROLE_ARN": "arn:r"]
        XCTAssertEqual(try WebIdentityCredentialProvider.fromEnvironment(base, http: CurlHTTPClient()).endpoint, "https://sts.us-east-1.amazonaws.com")
        XCTAssertEqual(
            try WebIdentityCredentialProvider.fromEnvironment(base.merging(["AWS_REGION": "eu-west-1"]) { $1 }, http: CurlHTTPClient()).endpoint,
            "https://sts.eu-west-1.amazonaws.com")
        XCTAssertEqual(
            try WebIdentityCredentialProvider.fromEnvironment(base.merging(["AWS_ENDPOINT_URL": "http://moto:5000/"]) { $1 }, http: CurlHTTPClient()).endpoint,
            "http://moto:5000")
    }

    func testOneVariableWithoutTheOther_isInvalid_neitherIsNotConfigured() {
        XCTAssertThrowsError(try WebIdentityCredentialProvider.fromEnvironment(["AWS_ROLE_ARN": "arn:r"], http: CurlHTTPClient())) {
            guard case .invalidConfiguration? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try WebIdentityCredentialProvider.fromEnvironment([:], http: CurlHTTPClient())) {
            guard case .notConfigured? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }

    func testSTSError_isRejectedWithItsCode() throws {
        let body = Array(
            #"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token expired &amp; invalid</Message></Error><RequestId>x</RequestId></ErrorResponse>"#
                .utf8)
        XCTAssertThrowsError(try WebIdentityCredentialProvider.parse(status: 400, body: body)) {
            XCTAssertEqual($0 as? AWSCredentialError, .rejected(status: 400, code: "InvalidIdentityToken", message: "Token expired & invalid"))
        }
        XCTAssertThrowsError(try WebIdentityCredentialProvider.parse(status: 503, body: Array("<html>".utf8))) {
            XCTAssertEqual($0 as? AWSCredentialError, .rejected(status: 503, code: "", message: ""))
        }
    }

    /// Byte fixtures of answers that must not yield credentials.
    func testMalformedSTSAnswers_areMalformedResponse() {
        let good = Self.stsAnswer(id: "ASIA", expiration: "2030-01-01T00:00:00Z")
        let fixtures: [String] = [
            "",
            "not xml at all",
            String(good.prefix(good.count / 2)),  // truncated
            good.replacingOccurrences(of: "<AccessKeyId>ASIA</AccessKeyId>", with: ""),  // missing field
            good.replacingOccurrences(of: "<AccessKeyId>ASIA</AccessKeyId>", with: "<AccessKeyId></AccessKeyId>"),  // empty
            good.replacingOccurrences(of: "</AccessKeyId>", with: "</AccessKeyId><AccessKeyId>OTHER</AccessKeyId>"),  // repeated
            good.replacingOccurrences(of: "2030-01-01T00:00:00Z", with: "soon"),  // bad timestamp
            good.replacingOccurrences(of: "<AccessKeyId>ASIA<", with: "<AccessKeyId>AS&bogus;IA<"),  // unknown entity
            good.replacingOccurrences(of: "<AccessKeyId>ASIA<", with: "<AccessKeyId>AS&#10;IA<"),  // a newline into a header
            good.replacingOccurrences(of: "<AccessKeyId>ASIA<", with: "<AccessKeyId><![CDATA[ASIA]]><"),  // CDATA
            good.replacingOccurrences(of: "<Credentials>", with: "<Credential>"),  // no Credentials element
            // Credentials outside the result element are not the answer.
            "<AssumeRoleWithWebIdentityResponse><Credentials><AccessKeyId>A</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResponse>",
        ]
        for (i, fixture) in fixtures.enumerated() {
            XCTAssertThrowsError(try WebIdentityCredentialProvider.parse(status: 200, body: Array(fixture.utf8)), "fixture \(i)") {
                guard case .malformedResponse? = $0 as? AWSCredentialError else { return XCTFail("fixture \(i): \($0)") }
            }
        }
    }

    func testMissingTokenFile_isInvalidConfiguration() {
        let provider = WebIdentityCredentialProvider(
            tokenFile: "/nonexistent/token", roleArn: "arn:r", roleSessionName: "s", endpoint: "http://127.0.0.1:1", http: CurlHTTPClient())
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .invalidConfiguration? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }

    /// moto serves STS on the DynamoDB port: the real Query protocol and XML.
    func testAgainstMotoSTS() throws {
        let endpoint = try MotoSTS.requireEndpoint()
        let provider = try WebIdentityCredentialProvider.fromEnvironment(
            [
                "AWS_WEB_IDENTITY_TOKEN_FILE": try tokenFile("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln"),
                "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/cognigy-session", "AWS_ROLE_SESSION_NAME": "test",
                "AWS_ENDPOINT_URL": endpoint,
            ], http: CurlHTTPClient())
        let c = try provider.credentials()
        XCTAssertFalse(c.accessKeyId.isEmpty)
        XCTAssertFalse(c.secretAccessKey.isEmpty)
        XCTAssertFalse(c.sessionToken?.isEmpty ?? true)
        let expiration = try XCTUnwrap(c.expiration)
        XCTAssertGreaterThan(expiration, Date().timeIntervalSince1970)
    }
}

/// Where moto is (scripts/test.sh starts it and sets MOTO_ENDPOINT).
enum MotoSTS {
    static func requireEndpoint() throws -> String {
        if let endpoint = ProcessInfo.processInfo.environment["MOTO_ENDPOINT"] { return endpoint }
        if ProcessInfo.processInfo.environment["REQUIRE_DYNAMODB"] == "1" {
            XCTFail("REQUIRE_DYNAMODB=1 but MOTO_ENDPOINT is not set")
        }
        throw XCTSkip("the STS test needs moto: run scripts/test.sh or set MOTO_ENDPOINT")
    }
}
