import Foundation
import HTTPClient
import HTTPServer
import Primitives
import XCTest
@testable import AWSCredentials

/// A fake IMDSv2: a session token from PUT /latest/api/token, required on every GET.
final class FakeIMDS: Sendable {
    let issued = Locked(0)
    let role: String
    let credentials: Locked<String>

    init(role: String = "app-role", credentials: String) {
        self.role = role
        self.credentials = Locked(credentials)
    }

    func handle(_ req: HTTPRequest) -> HTTPResponse {
        if req.path == "/latest/api/token" {
            guard req.method == .PUT, let ttl = req.headers["x-aws-ec2-metadata-token-ttl-seconds"], Int(ttl) != nil else {
                return HTTPResponse(status: .badRequest)
            }
            let n = issued.withLock { c -> Int in c += 1; return c }
            return HTTPResponse(status: .ok, headers: [("Content-Type", "text/plain")], body: Array("imds-token-\(n)".utf8))
        }
        // IMDSv2 only: a GET without a valid session token is 401.
        let n = issued.withLock { $0 }
        guard let token = req.headers["x-aws-ec2-metadata-token"], token == "imds-token-\(n)" else {
            return HTTPResponse(status: .unauthorized)
        }
        switch req.path {
        case "/latest/meta-data/iam/security-credentials/":
            return HTTPResponse(status: .ok, headers: [("Content-Type", "text/plain")], body: Array("\(role)\n".utf8))
        case "/latest/meta-data/iam/security-credentials/\(role)":
            return FakeCredentialServer.json(credentials.withLock { $0 })
        default:
            return HTTPResponse(status: .notFound)
        }
    }
}

final class InstanceMetadataCredentialProviderTests: XCTestCase {
    private var fake: FakeCredentialServer?

    override func tearDown() { fake?.stop() }

    private func start(_ imds: FakeIMDS) throws -> FakeCredentialServer {
        let fake = try FakeCredentialServer { imds.handle($0) }
        self.fake = fake
        return fake
    }

    func testIMDSv2_tokenThenRoleThenCredentials() throws {
        let imds = FakeIMDS(credentials: FakeCredentialServer.credentialsJSON(id: "ASIAEC2", expiration: 4e9, extra: #""Code":"Success","Type":"AWS-HMAC","#))
        let fake = try start(imds)
        let provider = try InstanceMetadataCredentialProvider.fromEnvironment(
            ["AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.baseURL + "/"], http: CurlHTTPClient())
        let c = try provider.credentials()
        XCTAssertEqual(c.accessKeyId, "ASIAEC2")
        XCTAssertEqual(c.sessionToken, "token-ASIAEC2")
        XCTAssertEqual(
            fake.requests.map { "\($0.method) \($0.path)" },
            ["PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/", "GET /latest/meta-data/iam/security-credentials/app-role"])
        XCTAssertEqual(fake.requests[0].header("X-aws-ec2-metadata-token-ttl-seconds"), "21600")
        XCTAssertEqual(fake.requests[1].header("X-aws-ec2-metadata-token"), "imds-token-1")
        XCTAssertEqual(fake.requests[2].header("X-aws-ec2-metadata-token"), "imds-token-1")
    }

    func testFake_refusesAGetWithoutTheToken() throws {
        // The fake holds IMDSv2's rule, so the test above proves the token is sent.
        let fake = try start(FakeIMDS(credentials: "{}"))
        let r = try CurlHTTPClient().send(HTTPClientRequest(method: "GET", url: fake.baseURL + "/latest/meta-data/iam/security-credentials/"))
        XCTAssertEqual(r.status, 401)
    }

    func testNonSuccessCode_isRejected() throws {
        let fake = try start(FakeIMDS(credentials: #"{"Code":"AssumeRoleUnauthorizedAccess","Message":"no"}"#))
        let provider = InstanceMetadataCredentialProvider(endpoint: fake.baseURL, http: CurlHTTPClient())
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .rejected(_, "AssumeRoleUnauthorizedAccess", _)? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }

    func testRoleNameWithPathCharacters_isRefused() throws {
        let fake = try start(FakeIMDS(role: "../../user-data", credentials: "{}"))
        let provider = InstanceMetadataCredentialProvider(endpoint: fake.baseURL, http: CurlHTTPClient())
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .malformedResponse? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(fake.requests.count, 2, "the credentials path was never requested")
    }

    func testDisabled_isNotConfigured() {
        XCTAssertThrowsError(try InstanceMetadataCredentialProvider.fromEnvironment(["AWS_EC2_METADATA_DISABLED": "TRUE"], http: CurlHTTPClient())) {
            guard case .notConfigured? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }

    func testNothingListening_failsWithinTheTimeLimit() throws {
        let provider = InstanceMetadataCredentialProvider(endpoint: "http://127.0.0.1:1", http: CurlHTTPClient())
        let started = Date()
        XCTAssertThrowsError(try provider.credentials()) {
            guard case .transport? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }
}
