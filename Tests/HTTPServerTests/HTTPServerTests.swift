#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Primitives
import TestSupport
import XCTest
@testable import HTTPServer

/// A handler for tests: echoes the body, `/slow` sleeps, `/crashy`-free.
struct EchoHandler: HTTPHandler {
    func handle(_ request: HTTPRequest) -> HTTPResponse {
        if request.path == "/slow" { usleep(400_000) }
        var body = Array("\(request.method) \(request.path) ".utf8)
        body.append(contentsOf: request.body)
        return HTTPResponse(status: .ok, headers: [("Content-Type", "text/plain")], body: body)
    }
}

/// Refuses `/guarded` from its head alone, as the service does for bad credentials.
struct GuardedHandler: HTTPHandler {
    func handle(_ request: HTTPRequest) -> HTTPResponse { EchoHandler().handle(request) }
    func preflight(_ head: RequestHead) -> HTTPResponse? {
        head.path == "/guarded" ? .error(.unauthorized, code: "unauthorized", message: "No.") : nil
    }
}

/// Real sockets on port 0: limits, status codes, keep-alive, pipelining, timeouts, shutdown.
final class HTTPServerTests: XCTestCase {
    private var server: HTTPServer!

    private func start(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> Int {
        try start(handler: EchoHandler(), accept: nil, configure: configure)
    }

    private func start(
        handler: any HTTPHandler, accept: (@Sendable (Int32) -> Int32)?,
        configure: (inout HTTPServerConfiguration) -> Void = { _ in }
    ) throws -> Int {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        configure(&config)
        if let accept {
            server = try HTTPServer(configuration: config, handler: handler, accept: accept)
        } else {
            server = try HTTPServer(configuration: config, handler: handler)
        }
        try server.start()
        return server.port
    }

    override func tearDown() {
        server?.shutdown()
        server = nil
    }

    func testKeepAlive_severalRequestsOnOneConnection() throws {
        let port = try start()
        let client = try RawHTTPClient(port: port)
        for i in 0..<5 {
            client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n\(i)")
            let r = try client.readResponse()
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.text, "POST /echo \(i)")
            XCTAssertNil(r.header("Connection"))
            XCTAssertNotNil(r.header("Date"))
        }
    }

    func testPipelining_answersInOrder() throws {
        let port = try start()
        let client = try RawHTTPClient(port: port)
        client.send(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
                + "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nokGET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /a ")
        XCTAssertEqual(try client.readResponse().text, "POST /b xyz")
        XCTAssertEqual(try client.readResponse().text, "POST /c ok")
        let last = try client.readResponse()
        XCTAssertEqual(last.text, "GET /d ")
        XCTAssertEqual(last.header("Connection"), "close")
        XCTAssertTrue(client.isClosedByServer())
    }

    func testChunkedBody_splitAcrossWrites() throws {
        let port = try start()
        let client = try RawHTTPClient(port: port)
        client.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        usleep(50_000)
        client.send("lo\r\n6\r\n world\r\n0\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "POST /c hello world")
    }

    func testHead_hasLengthButNoBody() throws {
        let port = try start()
        let client = try RawHTTPClient(port: port)
        client.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try client.readResponse(headRequest: true)
        XCTAssertEqual(head.header("Content-Length"), "8", "the length GET would have: \"HEAD /h \"")
        XCTAssertEqual(try client.readResponse().text, "GET /g ", "the GET after HEAD is framed right")
    }

    func testMalformedRequest_400JSONThenClose() throws {
        let port = try start()
        let client = try RawHTTPClient(port: port)
        client.send("GARBAGE\r\n\r\n")
        let r = try client.readResponse()
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.header("Content-Type"), "application/json")
        XCTAssertTrue(r.text.contains(#""code":"malformed_request_line""#))
        XCTAssertEqual(r.header("Connection"), "close")
        XCTAssertTrue(client.isClosedByServer())
    }

    func testBothContentLengthAndChunked_400() throws {
        let port = try start()
        let client = try RawHTTPClient(port: port)
        client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 400)
        XCTAssertTrue(client.isClosedByServer())
    }

    func testLimits_statusCodes() throws {
        let port = try start {
            $0.maxHeaderBytes = 1024
            $0.maxHeaderCount = 10
            $0.maxRequestLineBytes = 256
            $0.maxBodyBytes = 100
        }
        func status(_ raw: String) throws -> Int {
            let c = try RawHTTPClient(port: port)
            c.send(raw)
            return try c.readResponse().status
        }
        XCTAssertEqual(try status("GET /\(String(repeating: "a", count: 300)) HTTP/1.1\r\nHost: x\r\n\r\n"), 431)
        XCTAssertEqual(try status("GET / HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "a", count: 1100))\r\n\r\n"), 431)
        XCTAssertEqual(try status("GET / HTTP/1.1\r\nHost: x\r\n" + (0..<11).map { "H\($0): v\r\n" }.joined() + "\r\n"), 431)
        XCTAssertEqual(try status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n"), 413)
        XCTAssertEqual(try status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + String(repeating: "a", count: 101)), 413)
        XCTAssertEqual(try status("GET / HTTP/3.0\r\nHost: x\r\n\r\n"), 505)
        XCTAssertEqual(try status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), 501)
        XCTAssertEqual(try status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + String(repeating: "a", count: 100)), 200)
    }

    func testBodyTooLarge_answerSurvivesWhileClientKeepsSending() throws {
        let port = try start { $0.maxBodyBytes = 1000 }
        let client = try RawHTTPClient(port: port)
        client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + String(repeating: "a", count: 100_000))
        XCTAssertEqual(try client.readResponse().status, 413)
    }

    func testExpectContinue() throws {
        let port = try start { $0.maxBodyBytes = 10 }
        let client = try RawHTTPClient(port: port)
        client.send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 100)
        client.send("abc")
        XCTAssertEqual(try client.readResponse().text, "POST /e abc")
        // Too large: 413 straight away, no 100 Continue, body never sent.
        let big = try RawHTTPClient(port: port)
        big.send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        XCTAssertEqual(try big.readResponse().status, 413)
    }

    func testHTTP10_closesByDefault() throws {
        let port = try start()
        let client = try RawHTTPClient(port: port)
        client.send("GET /old HTTP/1.0\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 200)
        XCTAssertTrue(client.isClosedByServer())
    }

    func testStalledClient_timesOutWhileOthersAreServed() throws {
        let port = try start { $0.headerTimeoutMs = 300 }
        let stalled = try RawHTTPClient(port: port)
        stalled.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Le")
        let started = Date()
        // Others are served meanwhile, promptly.
        for _ in 0..<3 {
            XCTAssertEqual(try RawHTTPClient.request(port: port, path: "/ok").status, 200)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.25)
        let r = try stalled.readResponse(timeout: 3)
        XCTAssertEqual(r.status, 408)
        XCTAssertTrue(stalled.isClosedByServer())
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testStalledBody_timesOut() throws {
        let port = try start { $0.bodyTimeoutMs = 300 }
        let client = try RawHTTPClient(port: port)
        client.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        XCTAssertEqual(try client.readResponse(timeout: 3).status, 408)
    }

    func testSilentConnection_closedAfterHeaderTimeout() throws {
        let port = try start { $0.headerTimeoutMs = 200 }
        let client = try RawHTTPClient(port: port)
        XCTAssertTrue(client.isClosedByServer(timeout: 3))
    }

    func testIdleKeepAlive_closedAfterIdleTimeout() throws {
        let port = try start { $0.idleTimeoutMs = 200 }
        let client = try RawHTTPClient(port: port)
        client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 200)
        let t = Date()
        XCTAssertTrue(client.isClosedByServer(timeout: 3))
        XCTAssertGreaterThan(Date().timeIntervalSince(t), 0.15)
    }

    func testMaxConnections_503() throws {
        let port = try start { $0.maxConnections = 2 }
        let a = try RawHTTPClient(port: port)
        let b = try RawHTTPClient(port: port)
        a.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        b.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try a.readResponse().status, 200)
        XCTAssertEqual(try b.readResponse().status, 200)
        let c = try RawHTTPClient(port: port)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.header("Retry-After"), "1")
        XCTAssertEqual(server.rejectedConnectionCount, 1)
    }

    func testGracefulShutdown_finishesInFlightRequests() throws {
        let port = try start { $0.drainTimeoutMs = 5000 }
        let idle = try RawHTTPClient(port: port)
        idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try idle.readResponse()
        let results = Locked<[Int]>([])
        let group = DispatchGroup()
        // Connected and sent before shutdown begins: these are in flight.
        let clients = try (0..<4).map { _ in try RawHTTPClient(port: port) }
        for c in clients { c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") }
        for c in clients {
            group.enter()
            Thread.detachNewThread { [c] in
                if let r = try? c.readResponse() {
                    results.withLock { $0.append(r.status) }
                    XCTAssertEqual(r.header("Connection"), "close")
                }
                group.leave()
            }
        }
        usleep(100_000)  // all four are in the handler now
        let t = Date()
        XCTAssertTrue(server.shutdown())
        XCTAssertLessThan(Date().timeIntervalSince(t), 2)
        group.wait()
        XCTAssertEqual(results.withLock { $0 }, [200, 200, 200, 200])
        XCTAssertTrue(idle.isClosedByServer(timeout: 1), "idle keep-alive connections are closed")
        XCTAssertThrowsError(try RawHTTPClient(port: port), "no longer accepting")
        server = nil
    }

    /// SPEC: a request whose head decides the answer is answered without reading its body.
    func testPreflightRefusal_answeredBeforeTheBody() throws {
        let port = try start(handler: GuardedHandler(), accept: nil) { $0.bodyTimeoutMs = 10_000 }
        let client = try RawHTTPClient(port: port)
        client.send("POST /guarded HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
        let t = Date()
        let r = try client.readResponse(timeout: 3)
        XCTAssertEqual(r.status, 401)
        XCTAssertEqual(r.header("Connection"), "close")
        XCTAssertLessThan(Date().timeIntervalSince(t), 1, "not after the body timeout")
        // An allowed path still reads its body.
        let ok = try RawHTTPClient(port: port)
        ok.send("POST /open HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        XCTAssertEqual(try ok.readResponse().text, "POST /open hi")
    }

    func testBodyBudget_503RetryAfterWhenBuffersAreFull() throws {
        let port = try start {
            $0.maxBufferedBodyBytes = 1000
            $0.bodyTimeoutMs = 5000
        }
        let holder = try RawHTTPClient(port: port)
        holder.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\nxx")  // holds 800 bytes of budget
        usleep(100_000)
        XCTAssertEqual(server.bufferedBodyByteCount, 800)
        let second = try RawHTTPClient(port: port)
        second.send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n" + String(repeating: "y", count: 800))
        let busy = try second.readResponse()
        XCTAssertEqual(busy.status, 503)
        XCTAssertEqual(busy.header("Retry-After"), "1")
        holder.send(String(repeating: "x", count: 798))
        XCTAssertEqual(try holder.readResponse().status, 200)
        XCTAssertEqual(server.bufferedBodyByteCount, 0, "released after the handler")
        let third = try RawHTTPClient(port: port)
        third.send("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n" + String(repeating: "z", count: 800))
        XCTAssertEqual(try third.readResponse().status, 200)
    }

    /// accept(2) errors other than shutdown never end the accept loop.
    func testAcceptErrors_loggedBackedOffNeverFatal() throws {
        let failures = Locked(3)
        let port = try start(handler: EchoHandler(), accept: { fd in
            let fail = failures.withLock { n -> Bool in
                guard n > 0 else { return false }
                n -= 1
                return true
            }
            if fail {
                errno = EPROTO
                return -1
            }
            return Glibc.accept(fd, nil, nil)
        })
        let r = try RawHTTPClient.request(port: port, method: "GET", path: "/after-errors")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(server.acceptErrorCount, 3)
    }

    /// Draining: a new connection is still answered (with Connection: close) while an
    /// in-flight request finishes.
    func testDraining_newConnectionsAnsweredWithClose() throws {
        let port = try start { $0.drainTimeoutMs = 5000 }
        let slow = try RawHTTPClient(port: port)
        slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(50_000)
        let drained = Locked<Bool?>(nil)
        Thread.detachNewThread { [server] in drained.withLock { $0 = server!.shutdown() } }
        usleep(50_000)
        XCTAssertTrue(server.isStopping)
        let late = try RawHTTPClient.request(port: port, method: "GET", path: "/ready")
        XCTAssertEqual(late.status, 200)
        XCTAssertEqual(late.header("Connection"), "close")
        XCTAssertEqual(try slow.readResponse().status, 200)
        let deadline = Date().addingTimeInterval(3)
        while drained.withLock({ $0 }) == nil && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(drained.withLock { $0 }, true)
        server = nil
    }

    // MARK: Idle connections in the epoll loop

    func testConfiguration_idleLoopDefaults() {
        let config = HTTPServerConfiguration()
        XCTAssertEqual(config.idleHandoffDelayMs, 20)
        XCTAssertEqual(config.maxIdleWorkers, 64)
        XCTAssertLessThan(config.idleHandoffDelayMs, config.idleTimeoutMs, "idle connections leave their thread")
    }

    func testIdleKeepAlive_parkedThenServedAgain() throws {
        let port = try start { $0.idleHandoffDelayMs = 10 }
        let client = try RawHTTPClient(port: port)
        client.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /first ")
        XCTAssertTrue(eventually { self.server.idleConnections == 1 }, "parked in the idle loop")
        XCTAssertEqual(server.activeConnections, 1, "still counted as open")
        client.send("POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        XCTAssertEqual(try client.readResponse().text, "POST /second hi")
        XCTAssertTrue(eventually { self.server.idleConnections == 1 }, "parked again")
        // A request split across the park: the rest of the head arrives on the worker.
        client.send("GET /third HTTP/1.1\r\nHo")
        usleep(50_000)
        client.send("st: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "GET /third ")
        XCTAssertTrue(eventually { self.server.idleWorkerThreads >= 1 }, "the worker went back to the pool")
    }

    func testIdleKeepAlive_zeroHandoffDelay_pipelinedAndSequential() throws {
        let port = try start { $0.idleHandoffDelayMs = 0 }
        let client = try RawHTTPClient(port: port)
        for i in 0..<20 {
            client.send("GET /a\(i) HTTP/1.1\r\nHost: x\r\n\r\nGET /b\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try client.readResponse().text, "GET /a\(i) ")
            XCTAssertEqual(try client.readResponse().text, "GET /b\(i) ")
        }
        client.send("GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(try client.readResponse().header("Connection"), "close")
        XCTAssertTrue(client.isClosedByServer())
        XCTAssertTrue(eventually { self.server.activeConnections == 0 })
    }

    func testIdleKeepAlive_parkedConnectionClosedAfterIdleTimeout() throws {
        let port = try start {
            $0.idleHandoffDelayMs = 10
            $0.idleTimeoutMs = 300
        }
        let client = try RawHTTPClient(port: port)
        let t = Date()
        client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 200)
        XCTAssertTrue(eventually { self.server.idleConnections == 1 })
        XCTAssertTrue(client.isClosedByServer(timeout: 3))
        let elapsed = Date().timeIntervalSince(t)
        XCTAssertGreaterThan(elapsed, 0.25)
        XCTAssertLessThan(elapsed, 1.5)
        XCTAssertTrue(eventually { self.server.activeConnections == 0 && self.server.idleConnections == 0 })
    }

    func testIdleKeepAlive_peerCloseFreesTheSlot() throws {
        let port = try start { $0.idleHandoffDelayMs = 10 }
        var client: RawHTTPClient? = try RawHTTPClient(port: port)
        client!.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client!.readResponse().status, 200)
        XCTAssertTrue(eventually { self.server.idleConnections == 1 })
        client = nil  // closes the socket
        XCTAssertTrue(eventually { self.server.activeConnections == 0 && self.server.idleConnections == 0 })
    }

    func testShutdown_closesParkedConnectionsAtOnce() throws {
        let port = try start {
            $0.idleHandoffDelayMs = 10
            $0.drainTimeoutMs = 5000
        }
        let clients = try (0..<3).map { _ in try RawHTTPClient(port: port) }
        for c in clients {
            c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try c.readResponse().status, 200)
        }
        XCTAssertTrue(eventually { self.server.idleConnections == 3 })
        let t = Date()
        XCTAssertTrue(server.shutdown())
        XCTAssertLessThan(Date().timeIntervalSince(t), 1, "parked connections do not wait for the drain timeout")
        for c in clients { XCTAssertTrue(c.isClosedByServer(timeout: 1)) }
        XCTAssertEqual(server.activeConnections, 0)
        server = nil
    }

    func testMaxConnections_countsParkedConnections() throws {
        let port = try start {
            $0.maxConnections = 2
            $0.idleHandoffDelayMs = 10
        }
        let a = try RawHTTPClient(port: port)
        let b = try RawHTTPClient(port: port)
        for c in [a, b] {
            c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(try c.readResponse().status, 200)
        }
        XCTAssertTrue(eventually { self.server.idleConnections == 2 })
        let c = try RawHTTPClient(port: port)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.header("Retry-After"), "1")
        // The parked ones are still served.
        a.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try a.readResponse().text, "GET /again ")
    }

    func testWorkerPool_keepsAtMostMaxIdleWorkers() throws {
        let port = try start {
            $0.maxIdleWorkers = 2
            $0.idleHandoffDelayMs = 10
        }
        let clients = try (0..<5).map { _ in try RawHTTPClient(port: port) }
        for c in clients { c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") }
        for c in clients { XCTAssertEqual(try c.readResponse().status, 200) }
        XCTAssertTrue(eventually { self.server.idleConnections == 5 })
        XCTAssertTrue(eventually { self.server.idleWorkerThreads == 2 })
        usleep(50_000)
        XCTAssertEqual(server.idleWorkerThreads, 2, "the other workers exited")
    }

    func testLargeRequestBuffer_isGivenBack() {
        var big = [UInt8](repeating: 1, count: 10)
        big.reserveCapacity(1 << 20)
        let small = Connection.compacted(big)
        XCTAssertEqual(small, big)
        XCTAssertLessThanOrEqual(small.capacity, 64 * 1024)
    }

    /// Loopback classification from raw sockaddr bytes (byte fixtures).
    func testLoopbackClassification() {
        func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> [UInt8] { [2, 0, 0x1F, 0x90, a, b, c, d] + [UInt8](repeating: 0, count: 8) }
        func v6(_ addr: [UInt8]) -> [UInt8] { [10, 0, 0x1F, 0x90, 0, 0, 0, 0] + addr + [0, 0, 0, 0] }
        XCTAssertTrue(Sockets.isLoopback(family: AF_INET, address: v4(127, 0, 0, 1)))
        XCTAssertTrue(Sockets.isLoopback(family: AF_INET, address: v4(127, 9, 8, 7)))
        XCTAssertFalse(Sockets.isLoopback(family: AF_INET, address: v4(10, 0, 0, 1)))
        XCTAssertFalse(Sockets.isLoopback(family: AF_INET, address: v4(192, 168, 1, 127)))
        XCTAssertTrue(Sockets.isLoopback(family: AF_INET6, address: v6([UInt8](repeating: 0, count: 15) + [1])))
        XCTAssertTrue(Sockets.isLoopback(family: AF_INET6, address: v6([UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 127, 0, 0, 1])))
        XCTAssertFalse(Sockets.isLoopback(family: AF_INET6, address: v6([UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 10, 0, 0, 1])))
        XCTAssertFalse(Sockets.isLoopback(family: AF_INET6, address: v6([0xFE, 0x80] + [UInt8](repeating: 0, count: 13) + [1])))
        XCTAssertFalse(Sockets.isLoopback(family: AF_INET, address: [2, 0]), "truncated")
        XCTAssertFalse(Sockets.isLoopback(family: AF_UNIX, address: v4(127, 0, 0, 1)))
    }

    func testRealLoopbackClient_isMarkedLoopback() throws {
        struct PeerHandler: HTTPHandler {
            func handle(_ request: HTTPRequest) -> HTTPResponse {
                HTTPResponse(status: .ok, body: Array("\(request.peerIsLoopback)".utf8))
            }
        }
        let port = try start(handler: PeerHandler(), accept: nil)
        XCTAssertEqual(try RawHTTPClient.request(port: port, method: "GET", path: "/").text, "true")
    }
}
