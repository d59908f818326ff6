import AWSCredentials
import Foundation
import HTTPClient
import HTTPServer
import Primitives
import XCTest
@testable import SessionStore

/// A DynamoDB endpoint that accepts only the access key ids it is told to, answering
/// others as AWS does for a key it does not know (`UnrecognizedClientException`, 400).
final class KeyCheckingDynamoDB: HTTPHandler {
    let accepted = Locked<Set<String>>([])
    let seenKeys = Locked<[String]>([])

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        // Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/dynamodb/aws4_request, …
        let auth = request.headers["authorization"] ?? ""
        let key = auth.components(separatedBy: "Credential=").dropFirst().first?.split(separator: "/").first.map(String.init) ?? ""
        seenKeys.withLock { $0.append(key) }
        guard accepted.withLock({ $0.contains(key) }) else {
            return HTTPResponse(
                status: .badRequest, headers: [("Content-Type", "application/x-amz-json-1.0")],
                body: Array(#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#.utf8))
        }
        return HTTPResponse(status: .ok, headers: [("Content-Type", "application/x-amz-json-1.0")], body: Array(#"{"Items":[],"Count":0}"#.utf8))
    }
}

/// Hands out "K<n>" from a generation the test moves (as a credential source renews).
final class GenerationProvider: AWSCredentialProvider, Sendable {
    let generation = Locked(1)
    let fail = Locked(false)
    let fetches = Locked(0)
    func credentials() throws(AWSCredentialError) -> AWSCredentials {
        fetches.withLock { $0 += 1 }
        if fail.withLock({ $0 }) { throw .transport("credential source down") }
        let n = generation.withLock { $0 }
        return AWSCredentials(accessKeyId: "K\(n)", secretAccessKey: "s\(n)", sessionToken: "t\(n)", expiration: Date().timeIntervalSince1970 + 3600)
    }
}

final class DynamoDBCredentialsTests: XCTestCase {
    private var server: HTTPServer?

    override func tearDown() { server?.shutdown() }

    private func store(_ fake: KeyCheckingDynamoDB, _ credentials: any AWSCredentialProvider) throws -> DynamoDBStore {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.drainTimeoutMs = 100
        let server = try HTTPServer(configuration: config, handler: fake)
        try server.start()
        self.server = server
        var client = DynamoDBClient.Configuration(endpoint: "http://127.0.0.1:\(server.port)", region: "us-east-1")
        client.deadlineMs = 1500
        return DynamoDBStore(client: DynamoDBClient(configuration: client, credentials: credentials), table: "T")
    }

    func testUnrecognizedClient_isAuthFailed_notRetried_thenRecoversAfterRefresh() throws {
        let fake = KeyCheckingDynamoDB()
        fake.accepted.withLock { $0 = ["K2"] }
        let source = GenerationProvider()
        let rotating = RotatingCredentialProvider(source)
        let store = try store(fake, rotating)

        XCTAssertThrowsError(try store.latest("c")) {
            guard case .authFailed(let why)? = $0 as? StoreError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("UnrecognizedClientException"), why)
        }
        XCTAssertEqual(fake.seenKeys.withLock { $0 }, ["K1"], "an auth failure is not retried with the same keys")
        XCTAssertThrowsError(try store.checkReady()) {
            guard case .authFailed? = $0 as? StoreError else { return XCTFail("\($0)") }
        }

        // The source renews (a rotated role, a fixed policy): the next call recovers by itself,
        // because the refused credentials were invalidated rather than kept until expiry.
        source.generation.withLock { $0 = 2 }
        XCTAssertNil(try store.latest("c"))
        XCTAssertEqual(fake.seenKeys.withLock { $0 }.last, "K2")
    }

    func testRefusedCredentials_retriedOnceAtOnceWhenTheSourceAlreadyHasNewOnes() throws {
        let fake = KeyCheckingDynamoDB()
        fake.accepted.withLock { $0 = ["K2"] }
        let source = GenerationProvider()
        let rotating = RotatingCredentialProvider(source)
        let store = try store(fake, rotating)
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K1")  // cached
        source.generation.withLock { $0 = 2 }  // renewed at the source; the cache does not know yet
        XCTAssertNil(try store.latest("c"))
        XCTAssertEqual(fake.seenKeys.withLock { $0 }, ["K1", "K2"])
    }

    func testNoCredentials_isAuthFailed_withoutARequest() throws {
        let fake = KeyCheckingDynamoDB()
        let source = GenerationProvider()
        source.fail.withLock { $0 = true }
        let store = try store(fake, RotatingCredentialProvider(source))
        XCTAssertThrowsError(try store.latest("c")) {
            guard case .authFailed(let why)? = $0 as? StoreError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("credential source down"), why)
        }
        XCTAssertEqual(fake.seenKeys.withLock { $0 }, [])
    }

    func testAuthErrorCodes_areAuthFailures_othersAreNot() {
        for code in [
            "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "AccessDeniedException", "InvalidSignatureException",
            "MissingAuthenticationToken", "MissingAuthenticationTokenException", "InvalidClientTokenId", "IncompleteSignatureException",
        ] {
            let e = DynamoDBError.parse(status: 400, body: Array(#"{"__type":"com.amazon.coral.service#\#(code)","message":"m"}"#.utf8))
            XCTAssertTrue(e.isAuthFailure, code)
            XCTAssertFalse(e.isRetryable, code)
        }
        XCTAssertTrue(DynamoDBError.parse(status: 403, body: Array("<html>Forbidden</html>".utf8)).isAuthFailure)
        for code in ["ThrottlingException", "ValidationException", "ResourceNotFoundException", "ConditionalCheckFailedException"] {
            XCTAssertFalse(DynamoDBError(code: code, message: "", status: 400).isAuthFailure, code)
        }
    }
}
