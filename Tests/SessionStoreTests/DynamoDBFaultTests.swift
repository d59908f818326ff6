import Backoff
import HTTPClient
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

/// In front of moto: forwards every request, and lets a test break chosen ones, before or
/// after forwarding (a lost answer to a write DynamoDB applied).
final class InterferingProxy: HTTPHandler {
    enum Action { case forward, forwardThenFail, failWithoutForwarding }
    let endpoint: String
    let decide: @Sendable (_ operation: String, _ count: Int) -> Action
    private let counts = Locked<[String: Int]>([:])
    private let http = CurlHTTPClient()

    init(endpoint: String, decide: @escaping @Sendable (_ operation: String, _ count: Int) -> Action) {
        self.endpoint = endpoint
        self.decide = decide
    }

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        let operation = request.headers["x-amz-target"]?.split(separator: ".").last.map(String.init) ?? ""
        let n = counts.withLock { c -> Int in c[operation, default: 0] += 1; return c[operation]! }
        let failure = HTTPResponse(
            status: .internalServerError, headers: [("Content-Type", "application/x-amz-json-1.0")],
            body: Array(#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected"}"#.utf8))
        let action = decide(operation, n)
        if action == .failWithoutForwarding { return failure }
        // moto picks the service from the SigV4 Authorization header: forward it and the rest.
        let hopByHop: Set<String> = ["host", "content-length", "connection", "expect", "transfer-encoding"]
        let headers = request.headers.fields.filter { !hopByHop.contains($0.name) }.map { ($0.name, $0.value) }
        guard let answer = try? http.send(HTTPClientRequest(method: "POST", url: endpoint + "/", headers: headers, body: request.body))
        else { return failure }
        if action == .forwardThenFail { return failure }
        return HTTPResponse(status: HTTPStatus(answer.status, "Forwarded"), headers: [("Content-Type", "application/x-amz-json-1.0")], body: answer.body)
    }
}

final class DynamoDBAmbiguityTests: XCTestCase {
    private var server: HTTPServer?
    override func tearDown() { server?.shutdown() }

    private func proxied(_ table: String, _ decide: @escaping @Sendable (String, Int) -> InterferingProxy.Action) throws -> DynamoDBStore {
        let endpoint = try Moto.requireEndpoint()
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.drainTimeoutMs = 100
        let server = try HTTPServer(configuration: config, handler: InterferingProxy(endpoint: endpoint, decide: decide))
        try server.start()
        self.server = server
        var client = DynamoDBClient.Configuration(
            endpoint: "http://127.0.0.1:\(server.port)", region: "us-east-1", accessKeyId: "k", secretAccessKey: "s")
        client.backoff = Backoff(baseMs: 1, capMs: 5)
        return DynamoDBStore(client: DynamoDBClient(configuration: client), table: table)
    }

    /// SPEC "Ambiguous DynamoDB writes": the write was applied, its answer lost (a 500), the
    /// retry meets our own item: that is this request's success, not a conflict.
    func testLostAnswerToAppliedWrite_isOurSuccess() throws {
        let direct = try Moto.freshStore(try Moto.requireEndpoint())
        let store = try proxied(direct.table) { op, n in
            (op == "PutItem" || op == "TransactWriteItems") && n == 1 ? .forwardThenFail : .forward
        }
        let first = SessionStoreContractTests.snapshot("c", 1, slots: ["a": "1"])
        XCTAssertNoThrow(try store.insert(first, after: nil))
        let basis = try XCTUnwrap(direct.latest("c")).basis
        let proxiedTx = try proxied(direct.table) { op, n in op == "TransactWriteItems" && n == 1 ? .forwardThenFail : .forward }
        let second = SessionStoreContractTests.snapshot("c", 2, slots: ["a": "1", "b": "2"])
        XCTAssertNoThrow(try proxiedTx.insert(second, after: basis))
        XCTAssertEqual(try direct.latest("c")?.snapshot.get(), second)
        // Someone else's item at that version is still a conflict.
        let other = try proxied(direct.table) { op, n in op == "TransactWriteItems" && n == 1 ? .failWithoutForwarding : .forward }
        var mine = SessionStoreContractTests.snapshot("c", 3, slots: ["mine": "1"])
        try direct.insert(SessionStoreContractTests.snapshot("c", 3, slots: ["theirs": "1"]), after: try XCTUnwrap(direct.latest("c")).basis)
        mine.updatedAt += 1
        XCTAssertThrowsError(try other.insert(mine, after: try XCTUnwrap(direct.version("c", 2)).basis)) {
            XCTAssertEqual($0 as? StoreError, .versionConflict(conversationId: "c", version: 3))
        }
    }

    /// A DELETE cut short after its first batch must leave the newest version as the latest
    /// (oldest first), never an older one.
    func testPartialDelete_neverLeavesAnOlderVersionAsLatest() throws {
        let direct = try Moto.freshStore(try Moto.requireEndpoint())
        for v in 1...30 {
            try direct.insertOnTop(SessionStoreContractTests.snapshot("c", Int64(v), slots: ["v": "\(v)"]))
        }
        let store = try proxied(direct.table) { op, n in op == "BatchWriteItem" && n > 1 ? .failWithoutForwarding : .forward }
        XCTAssertThrowsError(try store.deleteConversation("c"))
        XCTAssertEqual(try direct.latest("c")?.version, 30, "the newest version is deleted last")
        XCTAssertEqual(try direct.versions("c", limit: 100, before: nil).count, 5, "versions 1-25 went first")
    }
}
