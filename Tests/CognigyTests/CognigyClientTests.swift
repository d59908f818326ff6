import Foundation
import Primitives
import TestSupport
import XCTest
@testable import Cognigy

final class RetryAfterTests: XCTestCase {
    func testSecondsAndHTTPDates() {
        XCTAssertEqual(RetryAfter.delayMs("1", nowEpochSeconds: 0), 1000)
        XCTAssertEqual(RetryAfter.delayMs(" 120 ", nowEpochSeconds: 0), 120_000)
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        XCTAssertEqual(RetryAfter.delayMs("Sun, 06 Nov 1994 08:49:37 GMT", nowEpochSeconds: 784_111_770), 7000)
        XCTAssertEqual(RetryAfter.delayMs("Sunday, 06-Nov-94 08:49:37 GMT", nowEpochSeconds: 784_111_777), 0)
        XCTAssertEqual(RetryAfter.delayMs("Sun Nov  6 08:49:37 1994", nowEpochSeconds: 784_111_767), 10_000)
        XCTAssertEqual(RetryAfter.delayMs("Sun, 06 Nov 1994 08:49:37 GMT", nowEpochSeconds: 784_200_000), 0, "past → now")
        XCTAssertNil(RetryAfter.delayMs("soon", nowEpochSeconds: 0))
        XCTAssertNil(RetryAfter.delayMs("-1", nowEpochSeconds: 0))
        XCTAssertNil(RetryAfter.delayMs("", nowEpochSeconds: 0))
    }

    func testFormEncodingForBasicAuth() {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Base64.
        XCTAssertEqual(TokenCache.formEncode("my id:1/é"), "my+id%3A1%2F%C3%A9")
    }
}

final class CognigyClientTests: XCTestCase {
    var fake: FakeCognigy!

    override func setUpWithError() throws { fake = try FakeCognigy() }
    override func tearDown() { fake.stop() }

    func client(apiKey: String? = nil, oauth: Bool = false) -> CognigyClient {
        CognigyClient(
            configuration: .init(
                baseURL: fake.baseURL + "/", apiKey: apiKey,
                oauth: oauth ? TokenCache.Configuration(tokenURL: fake.tokenURL, clientId: "my id", clientSecret: "s:cr/t", scope: "inject") : nil))
    }

    let body = CognigyClient.body(userId: "u1", contextJSON: Array(#"{"origin":"JFK"}"#.utf8), contextKey: nil)

    func testBody_contextKeyNesting() {
        XCTAssertEqual(String(decoding: body, as: UTF8.self), #"{"userId":"u1","context":{"origin":"JFK"}}"#)
        let nested = CognigyClient.body(userId: "u", contextJSON: Array("{}".utf8), contextKey: "restored")
        XCTAssertEqual(String(decoding: nested, as: UTF8.self), #"{"userId":"u","context":{"restored":{}}}"#)
    }

    func testAPIKey_delivered() throws {
        XCTAssertEqual(client(apiKey: "k1").inject(sessionId: "s 1/x", body: body, deadlineMs: 2000), .delivered(attempts: 1))
        let sent = try XCTUnwrap(fake.injects.first)
        XCTAssertEqual(sent.sessionId, "s 1/x", "session id is percent-encoded in the path")
        XCTAssertEqual(sent.apiKey, "k1")
        XCTAssertNil(sent.authorization)
        XCTAssertEqual(sent.body, #"{"userId":"u1","context":{"origin":"JFK"}}"#)
    }

    func test429WithRetryAfter1_waitedOutThenDelivered() {
        fake.set(.tooManyRequests(retryAfter: "1", times: 1))
        let started = Date()
        XCTAssertEqual(client(apiKey: "k").inject(sessionId: "s", body: body, deadlineMs: 3000), .delivered(attempts: 2))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.95, "Retry-After honoured")
        XCTAssertEqual(fake.attempts, 2)
    }

    func test429BeyondDeadline_retryLaterWithHint() {
        fake.set(.tooManyRequests(retryAfter: "30", times: 1))
        XCTAssertEqual(
            client(apiKey: "k").inject(sessionId: "s", body: body, deadlineMs: 1000),
            .retryLater(reason: "429 Too Many Requests", retryAfterMs: 30_000))
    }

    func test503_retriedUntilDeadline() {
        fake.set(.down)
        let started = Date()
        guard case .retryLater = client(apiKey: "k").inject(sessionId: "s", body: body, deadlineMs: 1200) else { return XCTFail() }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.5)
        XCTAssertGreaterThanOrEqual(fake.attempts, 2)
    }

    func testMaxAttempts_oneSendThenRetryLater() {
        fake.set(.down)
        guard case .retryLater = client(apiKey: "k").inject(sessionId: "s", body: body, deadlineMs: 5000, maxAttempts: 1) else {
            return XCTFail()
        }
        XCTAssertEqual(fake.attempts, 1, "the caller reschedules; no hidden retry loop")
    }

    func testOther4xx_notRetried_detailAndTraceId() {
        fake.set(.problem(status: 404))
        XCTAssertEqual(
            client(apiKey: "k").inject(sessionId: "s", body: body, deadlineMs: 2000),
            .rejected(status: 404, detail: "Session unknown", traceId: "trace-123"))
        XCTAssertEqual(fake.attempts, 1)
    }

    func testConnectionRefused_retryLater() {
        let c = CognigyClient(configuration: .init(baseURL: "http://127.0.0.1:1", apiKey: "k", oauth: nil))
        guard case .retryLater = c.inject(sessionId: "s", body: body, deadlineMs: 500) else { return XCTFail() }
    }

    func testOAuth_tokenRequestShape() throws {
        XCTAssertEqual(client(oauth: true).inject(sessionId: "s", body: body, deadlineMs: 2000), .delivered(attempts: 1))
        XCTAssertEqual(fake.tokenBodies, ["grant_type=client_credentials&scope=inject"])
        let basic = try XCTUnwrap(fake.tokenAuthorizations.first)
        XCTAssertTrue(basic.hasPrefix("Basic "))
        let decoded = String(decoding: Data(base64Encoded: String(basic.dropFirst(6)))!, as: UTF8.self)
        XCTAssertEqual(decoded, "my+id:s%3Acr%2Ft")
        XCTAssertEqual(fake.injects.first?.authorization, "Bearer tok-1")
    }

    func test50ConcurrentRestores_oneTokenRequest() {
        fake.tokenDelay(ms: 200)  // all 50 arrive while the first refresh is in flight
        let c = client(oauth: true)
        let outcomes = Locked<[InjectOutcome]>([])
        let body = self.body
        DispatchQueue.concurrentPerform(iterations: 50) { i in
            let o = c.inject(sessionId: "s\(i)", body: body, deadlineMs: 5000)
            outcomes.withLock { $0.append(o) }
        }
        XCTAssertEqual(fake.tokenRequests, 1)
        XCTAssertEqual(outcomes.withLock { $0 }.filter { $0 == .delivered(attempts: 1) }.count, 50)
        XCTAssertTrue(fake.injects.allSatisfy { $0.authorization == "Bearer tok-1" })
    }

    func test401_refreshesOnceAndRetries() {
        let c = client(oauth: true)
        XCTAssertEqual(c.inject(sessionId: "a", body: body, deadlineMs: 2000), .delivered(attempts: 1))
        fake.set(.rejectToken("tok-1"))
        XCTAssertEqual(c.inject(sessionId: "b", body: body, deadlineMs: 2000), .delivered(attempts: 2))
        XCTAssertEqual(fake.tokenRequests, 2)
        XCTAssertEqual(fake.injects.last?.authorization, "Bearer tok-2")
    }

    func testFailedTokenRequest_clearErrorThenRecovers() throws {
        let c = client(oauth: true)
        fake.failTokenRequests(1)
        guard case .retryLater(let reason, _) = c.inject(sessionId: "s", body: body, deadlineMs: 2000) else { return XCTFail() }
        XCTAssertTrue(reason.contains("invalid_client") && reason.contains("Client authentication failed"), reason)
        XCTAssertFalse(reason.contains("s:cr/t"), "no secret in errors")
        XCTAssertEqual(c.inject(sessionId: "s", body: body, deadlineMs: 2000), .delivered(attempts: 1), "not poisoned")
        XCTAssertEqual(fake.tokenRequests, 2)
    }

    func testTokenReusedUntilNearExpiry() throws {
        let clock = Locked(1000.0)
        let cache = TokenCache(
            configuration: .init(tokenURL: fake.tokenURL, clientId: "i", clientSecret: "s", scope: nil),
            http: .init(), clock: { clock.withLock { $0 } })
        XCTAssertEqual(try cache.token(), "tok-1")
        clock.withLock { $0 += 3500 }
        XCTAssertEqual(try cache.token(), "tok-1", "still 100 s left (> 30 s margin)")
        clock.withLock { $0 += 80 }
        XCTAssertEqual(try cache.token(), "tok-2", "renewed within the margin")
    }

    /// `.` and `..` are encoded: a session id can never move the request to another path.
    func testSessionIdPathSegment_isFullyEncoded() {
        XCTAssertEqual(CognigyClient.pathSegment(".."), "%2E%2E")
        XCTAssertEqual(CognigyClient.pathSegment("a/b?c#d"), "a%2Fb%3Fc%23d")
        XCTAssertEqual(CognigyClient.pathSegment("wa-1_x~"), "wa-1_x~")
        let client = CognigyClient(configuration: .init(baseURL: "https://api.example.com", apiKey: "k", oauth: nil))
        XCTAssertEqual(client.url(sessionId: ".."), "https://api.example.com/new/v2.0/sessions/%2E%2E/context/inject")
    }

    /// Any Retry-After is clamped: huge → 300 s, negative or garbage → ignored.
    func testRetryAfter_clamped() {
        XCTAssertEqual(RetryAfter.delayMs("99999999999999999999", nowEpochSeconds: 0), 300_000)
        XCTAssertEqual(RetryAfter.delayMs("7", nowEpochSeconds: 0), 7000)
        XCTAssertEqual(RetryAfter.delayMs("7", nowEpochSeconds: 0, maxMs: 500), 500)
        XCTAssertNil(RetryAfter.delayMs("-5", nowEpochSeconds: 0))
        XCTAssertNil(RetryAfter.delayMs("garbage", nowEpochSeconds: 0))
        XCTAssertNil(RetryAfter.delayMs("1e400", nowEpochSeconds: 0))
        XCTAssertEqual(RetryAfter.delayMs("Sun, 06 Nov 2994 08:49:37 GMT", nowEpochSeconds: 0), 300_000)
    }
}
