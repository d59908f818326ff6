#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Primitives
import TestSupport
import XCTest
@testable import HTTPServer

/// Routes under `/inline` are inline (GET and HEAD, no body); `/big` is inline with an 8 MB
/// answer; everything else echoes like `EchoHandler`. Records the thread of every call.
private final class InlineHandler: HTTPHandler, @unchecked Sendable {
    let threads = Locked<[pthread_t]>([])

    func servesInline(_ head: RequestHead) -> Bool {
        head.framing == .none && (head.method == .GET || head.method == .HEAD)
            && (head.path.hasPrefix("/inline") || head.path == "/big")
    }

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        threads.withLock { $0.append(pthread_self()) }
        if request.path == "/big" {
            return HTTPResponse(status: .ok, headers: [], body: [UInt8](repeating: UInt8(ascii: "b"), count: 8 << 20))
        }
        return EchoHandler().handle(request)
    }
}

/// Requests the idle loop answers itself, on real sockets: it answers what it can finish at
/// once and hands everything else, with the bytes already read, to a worker.
final class InlineRequestsTests: XCTestCase {
    private var server: HTTPServer!
    private let handler = InlineHandler()

    private func start(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> Int {
        server = try HTTPServer.startedForIdleLoop(handler: handler, configure)
        return server.port
    }

    override func tearDown() {
        server?.shutdown()
        server = nil
    }

    /// The idle loop's thread, learnt by `parkedClient`.
    private var loopThread: pthread_t?

    /// A client whose connection the loop holds, after one inline request on a worker and
    /// one answered by the loop (which tells the loop's thread).
    private func parkedClient(port: Int? = nil) throws -> RawHTTPClient {
        let client = try RawHTTPClient(port: try port ?? start())
        client.send("GET /inline/0 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/0 ")
        XCTAssertTrue(eventually(1) { self.server.idleConnections >= 1 }, "parked at once, not after the hand-off delay")
        let worker = handler.threads.withLock { $0.last! }
        client.send("GET /inline/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/1 ")
        let loop = handler.threads.withLock { $0.last! }
        XCTAssertEqual(pthread_equal(worker, loop), 0, "the second answer came from another thread, the loop's")
        loopThread = loopThread ?? loop
        XCTAssertTrue(eventually { self.server.idleConnections >= 1 })
        return client
    }

    /// Whether the last request handled was handled on the loop's thread.
    private var lastAnsweredByTheLoop: Bool {
        guard let loopThread, let last = handler.threads.withLock({ $0.last }) else { return false }
        return pthread_equal(last, loopThread) != 0
    }

    func testInlineRoute_parkedAtOnceThenAnsweredByTheLoop() throws {
        let client = try parkedClient()
        for i in 2...6 {
            client.send("GET /inline/\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "GET /inline/\(i) ")
            XCTAssertNotNil(response.header("Date"))
            XCTAssertTrue(lastAnsweredByTheLoop, "request \(i)")
            XCTAssertTrue(eventually { self.server.idleConnections == 1 }, "parked again after request \(i)")
        }
        XCTAssertEqual(handler.threads.withLock { $0.count }, 7)
        XCTAssertEqual(server.activeConnections, 1)
    }

    func testHead_answeredInlineWithoutBody() throws {
        let client = try parkedClient()
        client.send("HEAD /inline/h HTTP/1.1\r\nHost: x\r\n\r\n")
        let response = try client.readResponse(headRequest: true)
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Content-Length"), "\("HEAD /inline/h ".utf8.count)")
        XCTAssertTrue(response.body.isEmpty)
        XCTAssertTrue(lastAnsweredByTheLoop)
        client.send("GET /inline/after HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/after ", "the connection carries on")
    }

    /// Sends `raw` on a connection the loop holds and returns the answer, which must come
    /// from a worker; then one inline request (on that worker, if it still holds the
    /// connection) parks it again.
    private func handedOff(_ client: RawHTTPClient, _ raw: String) throws -> RawHTTPClient.Response {
        XCTAssertTrue(eventually { self.server.idleConnections == 1 }, "parked before: \(raw)")
        client.send(raw)
        let response = try client.readResponse()
        XCTAssertFalse(lastAnsweredByTheLoop, "a worker answered \(raw)")
        client.send("GET /inline/again HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/again ")
        return response
    }

    func testWhatTheLoopCannotFinish_goesToAWorkerWithTheBytesRead() throws {
        let client = try parkedClient()
        XCTAssertEqual(
            try handedOff(client, "POST /inline/p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").text, "POST /inline/p hello")
        XCTAssertEqual(try handedOff(client, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").text, "GET /other ")
        XCTAssertEqual(try handedOff(client, "\r\nGET /inline/crlf HTTP/1.1\r\nHost: x\r\n\r\n").text, "GET /inline/crlf ")
        XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 })
        // A head split across two sends: the loop reads the first part, a worker the rest.
        client.send("GET /inline/split HTTP/1.1\r\nHo")
        usleep(50_000)
        client.send("st: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/split ")
        XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 })
        // Two requests in one send: answered in order.
        client.send("GET /inline/a HTTP/1.1\r\nHost: x\r\n\r\nGET /inline/b HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/a ")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/b ")
        XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 })
        // A malformed head: the worker's 400, counted, then close.
        client.send("GET /inline/x HTTP/1.1\r\nBad Header\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 400)
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertEqual(server.protocolErrorCount, 1)
        XCTAssertTrue(eventually { self.server.activeConnections == 0 })
    }

    func testConnectionClose_answeredThenClosed() throws {
        let client = try parkedClient()
        client.send("GET /inline/bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.text, "GET /inline/bye ")
        XCTAssertEqual(response.header("Connection"), "close")
        XCTAssertTrue(lastAnsweredByTheLoop)
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertTrue(eventually { self.server.activeConnections == 0 && self.server.idleConnections == 0 })
    }

    func testHTTP10_closesByDefaultKeepsAliveWhenAsked() throws {
        let client = try parkedClient()
        client.send("GET /inline/k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let kept = try client.readResponse()
        XCTAssertEqual(kept.text, "GET /inline/k ")
        XCTAssertEqual(kept.header("Connection"), "keep-alive")
        XCTAssertTrue(lastAnsweredByTheLoop)
        XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 })
        client.send("GET /inline/c HTTP/1.0\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/c ")
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertTrue(eventually { self.server.activeConnections == 0 })
    }

    func testNoIdleLoopConfigured_inlineRoutesStayOnTheirWorker() throws {
        let port = try start {
            $0.idleTimeoutMs = 2000
            $0.idleHandoffDelayMs = 2000
        }
        let client = try RawHTTPClient(port: port)
        for i in 0..<3 {
            client.send("GET /inline/\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try client.readResponse().text, "GET /inline/\(i) ")
        }
        usleep(100_000)
        XCTAssertEqual(server.idleConnections, 0, "idleHandoffDelayMs >= idleTimeoutMs keeps connections on their thread")
        let threads = handler.threads.withLock { $0 }
        XCTAssertTrue(threads.allSatisfy { pthread_equal($0, threads[0]) != 0 }, "one worker answered them all")
    }

    func testAnswerLargerThanTheSocketTakes_finishedByAWorker() throws {
        let client = try parkedClient()
        client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        let big = try client.readResponse(timeout: 10)
        XCTAssertEqual(big.status, 200)
        XCTAssertEqual(big.body.count, 8 << 20)
        XCTAssertTrue(big.body.allSatisfy { $0 == UInt8(ascii: "b") })
        client.send("GET /inline/next HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /inline/next ", "served on after the rest was sent")
    }

    func testPeerGone_whileParkedAfterAnInlineAnswer_freesTheSlot() throws {
        // Closed when the client goes away at the end of this scope.
        do { _ = try parkedClient() }
        XCTAssertTrue(eventually { self.server.activeConnections == 0 && self.server.idleConnections == 0 })
    }

    func testAClientThatDoesNotRead_neverHoldsUpTheLoop() throws {
        let port = try start { $0.writeTimeoutMs = 3000 }
        let stuck = try parkedClient(port: port)
        stuck.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  // 8 MB it will not read for now
        let other = try RawHTTPClient(port: port)
        let started = Date()
        for i in 0..<5 {
            other.send("GET /inline/o\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try other.readResponse(timeout: 2).text, "GET /inline/o\(i) ")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.5, "answered while the other answer waits to be sent")
        XCTAssertTrue(lastAnsweredByTheLoop, "the loop, not a worker, answered the last one")
        let big = try stuck.readResponse(timeout: 10)
        XCTAssertEqual(big.body.count, 8 << 20, "and the stuck answer is still delivered whole")
    }

    func testShutdown_closesConnectionsTheLoopServes() throws {
        let client = try parkedClient()
        XCTAssertTrue(server.shutdown())
        XCTAssertTrue(client.isClosedByServer())
        server = nil
    }

    func testManyClients_allAnswered() throws {
        let port = try start()
        let clients = try (0..<16).map { _ in try RawHTTPClient(port: port) }
        for round in 0..<20 {
            for (i, c) in clients.enumerated() { c.send("GET /inline/\(i)-\(round) HTTP/1.1\r\nHost: x\r\n\r\n") }
            for (i, c) in clients.enumerated() { XCTAssertEqual(try c.readResponse().text, "GET /inline/\(i)-\(round) ") }
        }
        XCTAssertTrue(eventually { self.server.idleConnections == 16 })
    }
}
