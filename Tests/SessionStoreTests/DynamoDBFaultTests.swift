import Foundation
import HTTPServer
import Primitives
import XCTest
@testable import SessionStore

/// A fake DynamoDB endpoint that misbehaves on purpose; it counts requests.
final class FaultyDynamoDB: HTTPHandler {
    enum Mode { case throttleThenOK(Int), always500, slow(ms: Int), validation, jsonErrorContentType }
    let mode: Mode
    let requests = Locked(0)
    init(_ mode: Mode) { self.mode = mode }

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        let n = requests.withLock { c -> Int in c += 1; return c }
        func error(_ status: HTTPStatus, _ type: String, contentType: String = "application/x-amz-json-1.0") -> HTTPResponse {
            HTTPResponse(
                status: status, headers: [("Content-Type", contentType)],
                body: Array(#"{"__type":"com.amazonaws.dynamodb.v20120810#\#(type)","message":"injected \#(type)"}"#.utf8))
        }
        let ok = HTTPResponse(status: .ok, headers: [("Content-Type", "application/x-amz-json-1.0")], body: Array(#"{"Items":[],"Count":0}"#.utf8))
        switch mode {
        case .throttleThenOK(let k): return n <= k ? error(.badRequest, "ProvisionedThroughputExceededException") : ok
        case .always500: return error(.internalServerError, "InternalServerError")
        case .slow(let ms): usleep(UInt32(ms * 1000)); return ok
        case .validation: return error(.badRequest, "ValidationException")
        case .jsonErrorContentType: return n == 1 ? error(.badRequest, "ThrottlingException", contentType: "application/json") : ok
        }
    }
}

final class DynamoDBFaultTests: XCTestCase {
    private var server: HTTPServer?

    override func tearDown() { server?.shutdown() }

    private func store(_ handler: FaultyDynamoDB, deadlineMs: Int = 1500, requestTimeoutMs: Int = 300) throws -> DynamoDBStore {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.drainTimeoutMs = 100
        let server = try HTTPServer(configuration: config, handler: handler)
        try server.start()
        self.server = server
        var client = DynamoDBClient.Configuration(
            endpoint: "http://127.0.0.1:\(server.port)/", region: "us-east-1", accessKeyId: "k", secretAccessKey: "s",
            sessionToken: "tok")
        client.deadlineMs = deadlineMs
        client.requestTimeoutMs = requestTimeoutMs
        client.maxAttempts = 6
        return DynamoDBStore(client: DynamoDBClient(configuration: client), table: "T")
    }

    func testThrottling_retriedThenSucceeds() throws {
        let fake = FaultyDynamoDB(.throttleThenOK(2))
        let store = try store(fake)
        XCTAssertNil(try store.latest("c"))
        XCTAssertEqual(fake.requests.withLock { $0 }, 3)
        XCTAssertEqual(store.client.requestCounts, ["Query": 3])
        XCTAssertEqual(store.client.retryCounts, ["Query": 2])
    }

    func testErrorBodyAsApplicationJSON_isUnderstood() throws {
        let fake = FaultyDynamoDB(.jsonErrorContentType)
        XCTAssertNil(try store(fake).latest("c"))
        XCTAssertEqual(fake.requests.withLock { $0 }, 2, "ThrottlingException recognised and retried")
    }

    func testServerErrors_retriedUntilDeadline_thenUnavailable() throws {
        let fake = FaultyDynamoDB(.always500)
        let s = try store(fake, deadlineMs: 800)
        let started = Date()
        XCTAssertThrowsError(try s.latest("c")) { error in
            guard case .unavailable(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("InternalServerError"), why)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.2, "bounded by the deadline")
        XCTAssertGreaterThanOrEqual(fake.requests.withLock { $0 }, 2)
    }

    func testSlowResponses_timeOutWithinDeadline() throws {
        let fake = FaultyDynamoDB(.slow(ms: 1000))
        let s = try store(fake, deadlineMs: 700, requestTimeoutMs: 200)
        let started = Date()
        XCTAssertThrowsError(try s.insertOnTop(SessionStoreContractTests.snapshot("c", 1))) { error in
            guard case .unavailable(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("timed out") || why.contains("Transport"), why)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.2)
        XCTAssertGreaterThanOrEqual(fake.requests.withLock { $0 }, 2)
    }

    func testValidationError_notRetried_namesTheProblem() throws {
        let fake = FaultyDynamoDB(.validation)
        XCTAssertThrowsError(try store(fake).latest("c")) { error in
            guard case .invalidRequest(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("ValidationException") || why.contains("injected"), why)
        }
        XCTAssertEqual(fake.requests.withLock { $0 }, 1)
    }

    func testConnectionRefused_unavailableQuickly() throws {
        var client = DynamoDBClient.Configuration(endpoint: "http://127.0.0.1:1", region: "us-east-1", accessKeyId: "k", secretAccessKey: "s")
        client.deadlineMs = 500
        let s = DynamoDBStore(client: DynamoDBClient(configuration: client), table: "T")
        let started = Date()
        XCTAssertThrowsError(try s.latest("c")) { error in
            guard case .unavailable? = error as? StoreError else { return XCTFail("\(error)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0)
    }
}
