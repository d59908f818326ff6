import Foundation
import HTTPClient
import HTTPServer
import Primitives
import XCTest
@testable import AWSCredentials

final class ContainerCredentialProviderTests: XCTestCase {
    private var fake: FakeCredentialServer?
    private var directory: URL?

    override func tearDown() {
        fake?.stop()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    private func tokenFile(_ contents: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("creds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        directory = dir
        let path = dir.appendingPathComponent("token").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testFullURI_withTokenFromFile_sendsItAndParsesTheAnswer() throws {
        let expiration = Date().timeIntervalSince1970 + 3600
        let fake = try FakeCredentialServer { req in
            guard req.headers["authorization"] == "pod-token-1" else { return FakeCredentialServer.json(#"{"Code":"AccessDenied"}"#, status: .unauthorized) }
            return FakeCredentialServer.json(FakeCredentialServer.credentialsJSON(id: "ASIA1", expiration: expiration))
        }
        self.fake = fake
        let file = try tokenFile("pod-token-1\n")  // a mounted secret's trailing newline is dropped
        let provider = try ContainerCredentialProvider.fromEnvironment(
            [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.baseURL + "/v1/credentials",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": file, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored",
            ], http: CurlHTTPClient())
        let c = try provider.credentials()
        XCTAssertEqual(c.accessKeyId, "ASIA1")
        XCTAssertEqual(c.secretAccessKey, "secret-ASIA1")
        XCTAssertEqual(c.sessionToken, "token-ASIA1")
        XCTAssertEqual(c.expiration!, expiration.rounded(.down), accuracy: 1)
        XCTAssertEqual(fake.requests.map(\.path), ["/v1/credentials"])
        XCTAssertEqual(fake.requests.first?.method, "GET")

        // The file is read again on every fetch: a rotated token is picked up.
        try "pod-token-2".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .rejected(401, "AccessDenied", _)? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(fake.requests.last?.header("Authorization"), "pod-token-2")
    }

    func testTokenVariable_usedWithoutFile() throws {
        let fake = try FakeCredentialServer { _ in FakeCredentialServer.json(FakeCredentialServer.credentialsJSON(id: "A", expiration: 4e9)) }
        self.fake = fake
        let provider = try ContainerCredentialProvider.fromEnvironment(
            ["AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.baseURL + "/c", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Basic abc"], http: CurlHTTPClient())
        XCTAssertEqual(try provider.credentials().accessKeyId, "A")
        XCTAssertEqual(fake.requests.first?.header("Authorization"), "Basic abc")
    }

    func testTokenWithNewline_isRefusedNotSentAsTwoHeaders() throws {
        let provider = ContainerCredentialProvider(url: "http://127.0.0.1:1/c", authorization: .token("a\r\nX-Evil: 1"), http: CurlHTTPClient())
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .invalidConfiguration? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }

    func testMissingTokenFile_isInvalidConfiguration() throws {
        let provider = ContainerCredentialProvider(url: "http://127.0.0.1:1/c", authorization: .tokenFile("/nonexistent/token"), http: CurlHTTPClient())
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .invalidConfiguration? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }

    func testMalformedAnswers_areTypedErrors() throws {
        let answers = Locked<[String]>([
            "not json", "[]", #"{"AccessKeyId":"A"}"#, #"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"tomorrow"}"#,
            #"{"AccessKeyId":"A\nB","SecretAccessKey":"S"}"#,
        ])
        let fake = try FakeCredentialServer { _ in FakeCredentialServer.json(answers.withLock { $0.removeFirst() }) }
        self.fake = fake
        let provider = ContainerCredentialProvider(url: fake.baseURL + "/c", authorization: .none, http: CurlHTTPClient())
        for _ in 0..<5 {
            XCTAssertThrowsError(try provider.credentials()) {
                guard case .malformedResponse? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
            }
        }
    }

    func testOversizedAnswer_isCut() throws {
        let fake = try FakeCredentialServer { _ in FakeCredentialServer.json(String(repeating: " ", count: 200_000) + "{}") }
        self.fake = fake
        let provider = ContainerCredentialProvider(url: fake.baseURL + "/c", authorization: .none, http: CurlHTTPClient())
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .transport(let why)? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("larger than"), why)
        }
    }

    func testResolveURL_relativeGoesToTheECSAgent_fullMustBeSafe() throws {
        XCTAssertEqual(
            try ContainerCredentialProvider.resolveURL(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"]),
            "http://169.254.170.2/v2/credentials/abc")
        for ok in ["https://creds.example.com/x", "http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/v1"] {
            XCTAssertEqual(try ContainerCredentialProvider.resolveURL(["AWS_CONTAINER_CREDENTIALS_FULL_URI": ok]), ok)
        }
        for bad in ["http://example.com/x", "http://10.0.0.1/x", "ftp://127.0.0.1/x", "not a url", "http://127.0.0.1.evil.com/x"] {
            XCTAssertThrowsError(try ContainerCredentialProvider.resolveURL(["AWS_CONTAINER_CREDENTIALS_FULL_URI": bad]), bad) {
                guard case .invalidConfiguration? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
            }
        }
        XCTAssertThrowsError(try ContainerCredentialProvider.resolveURL([:])) {
            guard case .notConfigured? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }
}
