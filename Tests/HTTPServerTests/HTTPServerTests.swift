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

/// Real sockets on port 0: limits, status codes, keep-alive, pipelining, timeouts, shutdown.
final class HTTPServerTests: XCTestCase {
    private var server: HTTPServer!

    private func start(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> Int {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        configure(&config)
        server = try HTTPServer(configuration: config, handler: EchoHandler())
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
}
