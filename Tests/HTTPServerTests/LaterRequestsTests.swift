#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Primitives
import TestSupport
import XCTest
@testable import HTTPServer

/// POSTs under `/later` are answered later, from a thread of the handler's own (as the
/// webhook is answered by the store's commit thread): `/later/back` is handed back,
/// `/later/error` answered by a worker (`fromWorker`), `/later/declined` refused at the
/// start, `/later/hold` held until the test releases it. `handle` (a worker) answers
/// `WORKER …`; a later answer reads `LATER …`.
private final class LaterHandler: HTTPHandler, @unchecked Sendable {
    let answerer = DispatchQueue(label: "later-answerer")
    let held = Locked<[@Sendable (LaterAnswer) -> Void]>([])
    let handled = Locked<[String]>([])
    let built = Locked<[pthread_t]>([])

    var answersLater: Bool { true }
    func servesLater(_ head: RequestHead) -> Bool { head.path.hasPrefix("/later") }

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        handled.withLock { $0.append("worker \(request.path)") }
        return Self.answer("WORKER", request)
    }

    func handleLater(_ request: HTTPRequest, done: @escaping @Sendable (LaterAnswer) -> Void) -> Bool {
        guard request.path != "/later/declined" else { return false }
        handled.withLock { $0.append("later \(request.path)") }
        switch request.path {
        case "/later/hold":
            held.withLock { $0.append(done) }
        case "/later/back":
            answerer.async { done(.handBack) }
        case "/later/error":
            let built = self.built
            answerer.async {
                done(.fromWorker {
                    built.withLock { $0.append(pthread_self()) }
                    return HTTPResponse(status: .serviceUnavailable, headers: [("Retry-After", "1")], body: Array("BUILT".utf8))
                })
            }
        default:
            answerer.async { done(.response(Self.answer("LATER", request))) }
        }
        return true
    }

    /// Answers every held request (from the answerer's thread).
    func release() {
        let waiting = held.withLock { h -> [@Sendable (LaterAnswer) -> Void] in
            defer { h.removeAll() }
            return h
        }
        for done in waiting {
            answerer.async {
                done(.response(HTTPResponse(status: .ok, headers: [], body: Array("LATER /later/hold".utf8))))
            }
        }
    }

    /// The thread the answerer queue runs on.
    func answererThread() -> pthread_t? {
        answerer.sync { pthread_self() }
    }

    static func answer(_ who: String, _ request: HTTPRequest) -> HTTPResponse {
        var body = Array("\(who) \(request.path) ".utf8)
        body.append(contentsOf: request.body)
        return HTTPResponse(status: .ok, headers: [("Content-Type", "text/plain")], body: body)
    }
}

/// Requests the idle loop starts and another thread answers, on real sockets.
final class LaterRequestsTests: XCTestCase {
    private var server: HTTPServer!
    private let handler = LaterHandler()

    private func start(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> Int {
        server = try HTTPServer.startedForIdleLoop(handler: handler, configure)
        return server.port
    }

    override func tearDown() {
        handler.release()
        server?.shutdown()
        server = nil
    }

    private static func post(_ path: String, _ body: String, headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\(headers)\r\n\(body)"
    }

    /// A client whose first request a worker served; its connection is now parked.
    private func parkedClient(port: Int? = nil) throws -> RawHTTPClient {
        let client = try RawHTTPClient(port: try port ?? start())
        let parked = server.idleConnections
        client.send(Self.post("/later/first", "0"))
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/first 0", "a new connection's request is a worker's")
        XCTAssertTrue(eventually(3) { self.server.idleConnections == parked + 1 }, "parked at once, not after the hand-off delay")
        return client
    }

    func testLaterRoute_startedByTheLoopAnsweredByAnotherThread() throws {
        let client = try parkedClient()
        for i in 1...5 {
            client.send(Self.post("/later/\(i)", "body \(i)"))
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "LATER /later/\(i) body \(i)")
            XCTAssertNotNil(response.header("Date"))
            XCTAssertNil(response.header("Connection"), "kept alive")
            XCTAssertTrue(eventually { self.server.idleConnections == 1 }, "parked again after request \(i)")
        }
        XCTAssertEqual(server.laterAnswerCount, 5)
        XCTAssertEqual(server.activeConnections, 1)
        XCTAssertEqual(server.bufferedBodyByteCount, 0, "every body's budget given back")
    }

    /// Declined at the start: a worker serves it from its bytes, then parks the connection
    /// at once, so the loop tries the next request again.
    func testDeclined_aWorkerServesTheRequestThenTheLoopTriesTheNext() throws {
        let client = try parkedClient()
        client.send(Self.post("/later/declined", "no"))
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/declined no")
        XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 })
        client.send(Self.post("/later/ok", "yes"))
        XCTAssertEqual(try client.readResponse().text, "LATER /later/ok yes", "and the connection goes on")
        XCTAssertEqual(server.laterAnswerCount, 1)
        XCTAssertEqual(
            handler.handled.withLock { $0 }, ["worker /later/first", "worker /later/declined", "later /later/ok"])
    }

    /// Handed back after it started: a worker serves it from its bytes (it is not answered
    /// twice) and keeps the connection for the hand-off delay, as for any route.
    func testHandedBack_aWorkerServesTheRequestAndKeepsTheConnection() throws {
        let client = try parkedClient()
        client.send(Self.post("/later/back", "again"))
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/back again")
        usleep(100_000)
        XCTAssertEqual(server.idleConnections, 0, "held by its worker")
        client.send(Self.post("/later/ok", "yes"))
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/ok yes", "served by that worker")
        XCTAssertEqual(server.laterAnswerCount, 0)
        XCTAssertEqual(
            handler.handled.withLock { $0 }, ["worker /later/first", "later /later/back", "worker /later/back", "worker /later/ok"])
    }

    /// An answer built by a worker (an error's, which may log): sent from there, not handled
    /// again, and the connection goes on.
    func testAnswerFromAWorker_builtAndSentThereOnce() throws {
        let client = try parkedClient()
        client.send(Self.post("/later/error", "e"))
        let refused = try client.readResponse()
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.text, "BUILT")
        XCTAssertEqual(refused.header("Retry-After"), "1")
        let builder = try XCTUnwrap(handler.built.withLock { $0.first })
        XCTAssertEqual(pthread_equal(builder, try XCTUnwrap(handler.answererThread())), 0, "not on the answering thread")
        // The worker that sent it serves on.
        client.send(Self.post("/later/after", "a"))
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/after a")
        XCTAssertEqual(
            handler.handled.withLock { $0 }, ["worker /later/first", "later /later/error", "worker /later/after"],
            "the request was not handled again")
    }

    /// Only a request the loop holds whole, alone, in one read is started there.
    func testWhatTheLoopCannotTakeWhole_goesToAWorker() throws {
        let client = try parkedClient()
        func next(_ raw: String, _ expected: String, _ why: String) throws {
            XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 }, "parked before: \(why)")
            client.send(raw)
            XCTAssertEqual(try client.readResponse().text, expected, why)
        }
        try next(
            "POST /later/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "WORKER /later/c abc",
            "a chunked body")
        try next(Self.post("/later/e", "ex", headers: "Expect: 100-continue\r\n"), "WORKER /later/e ex", "Expect: 100-continue")
        let big = String(repeating: "b", count: HTTPServer.inlineReadBytes)
        try next(Self.post("/later/big", big), "WORKER /later/big " + big, "more than the loop reads at once")
        // Two requests in one send: a worker answers both, in order.
        XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 })
        client.send(Self.post("/later/a", "1") + Self.post("/later/b", "2"))
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/a 1")
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/b 2")
        XCTAssertEqual(server.laterAnswerCount, 0)
        // A body in two sends is read whole by whoever reads it (the loop, if it is slower
        // than the 50 ms between the sends on a busy machine).
        XCTAssertTrue(eventually(1) { self.server.idleConnections == 1 })
        client.send("POST /later/split HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        usleep(50_000)
        client.send("world")
        XCTAssertTrue(try client.readResponse().text.hasSuffix(" /later/split helloworld"))
        try next(Self.post("/later/z", "z"), "LATER /later/z z", "and then the loop again")
        // A route without a later answer: a worker, which keeps the connection for the
        // hand-off delay, as for any route.
        try next(Self.post("/other", "x"), "WORKER /other x", "a route that does not answer later")
        client.send(Self.post("/later/y", "y"))
        XCTAssertEqual(try client.readResponse().text, "WORKER /later/y y", "still on that worker")
    }

    func testConnectionClose_answeredThenClosed() throws {
        let client = try parkedClient()
        client.send(Self.post("/later/bye", "b", headers: "Connection: close\r\n"))
        let response = try client.readResponse()
        XCTAssertEqual(response.text, "LATER /later/bye b")
        XCTAssertEqual(response.header("Connection"), "close")
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertTrue(eventually { self.server.activeConnections == 0 })
    }

    /// Shutdown waits for a request being answered later; its answer says `Connection:
    /// close`, and the server then counts as drained.
    func testShutdownWhileAnAnswerIsPending_answeredThenDrained() throws {
        let client = try parkedClient()
        client.send(Self.post("/later/hold", "h"))
        XCTAssertTrue(eventually { self.handler.held.withLock { $0.count } == 1 })
        let drained = Locked<Bool?>(nil)
        let stopped = DispatchSemaphore(value: 0)
        spawnThread(name: "test") { [server] in
            drained.withLock { $0 = server!.shutdown() }
            stopped.signal()
        }
        XCTAssertEqual(stopped.wait(timeout: .now() + 0.3), .timedOut, "shutdown waits for the pending answer")
        handler.release()
        let response = try client.readResponse()
        XCTAssertEqual(response.text, "LATER /later/hold")
        XCTAssertEqual(response.header("Connection"), "close")
        XCTAssertEqual(stopped.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(drained.withLock { $0 }, true)
        XCTAssertTrue(client.isClosedByServer())
        server = nil
    }

    func testPeerGoneBeforeTheAnswer_slotAndBudgetFreed() throws {
        var client: RawHTTPClient? = try parkedClient()
        client?.send(Self.post("/later/hold", "gone"))
        XCTAssertTrue(eventually { self.handler.held.withLock { $0.count } == 1 })
        XCTAssertEqual(server.bufferedBodyByteCount, 4, "the held body counts against the budget")
        client = nil
        handler.release()
        XCTAssertTrue(eventually { self.server.activeConnections == 0 && self.server.idleConnections == 0 })
        XCTAssertEqual(server.bufferedBodyByteCount, 0)
    }

    /// A request held for a later answer keeps its body within MAX_BUFFERED_BODY_BYTES: a
    /// body that does not fit beside it goes to a worker, which answers 503 as always.
    func testHeldBodiesCountAgainstTheBodyBudget() throws {
        let port = try start { $0.maxBufferedBodyBytes = 30 }
        let holder = try parkedClient(port: port)
        holder.send(Self.post("/later/hold", String(repeating: "h", count: 20)))
        XCTAssertTrue(eventually { self.handler.held.withLock { $0.count } == 1 })
        let other = try parkedClient(port: port)
        other.send(Self.post("/later/over", String(repeating: "o", count: 20)))
        let refused = try other.readResponse()
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.header("Retry-After"), "1")
        handler.release()
        XCTAssertEqual(try holder.readResponse().text, "LATER /later/hold")
        XCTAssertTrue(eventually { self.server.bufferedBodyByteCount == 0 })
    }

    func testManyClients_allAnswered() throws {
        let port = try start()
        let clients = try (0..<16).map { _ in try parkedClient(port: port) }
        XCTAssertTrue(eventually { self.server.idleConnections == 16 })
        for round in 0..<20 {
            for (i, c) in clients.enumerated() { c.send(Self.post("/later/\(i)", "\(round)")) }
            for (i, c) in clients.enumerated() { XCTAssertEqual(try c.readResponse().text, "LATER /later/\(i) \(round)") }
        }
        XCTAssertTrue(eventually { self.server.idleConnections == 16 })
        XCTAssertEqual(server.laterAnswerCount, 16 * 20)
    }
}
