import XCTest
@testable import HTTPServer

/// Framing rules as byte-level fixtures, no sockets.
final class HTTPParserTests: XCTestCase {
    private var limits = HTTPServerConfiguration()

    private func parse(_ text: String) throws -> RequestHead {
        let bytes = Array(text.utf8)
        var scanner = HeadScanner()
        guard case .complete(let end, _) = try scanner.scan(bytes, limits: limits) else {
            throw HTTPParseError.malformedRequestLine
        }
        return try HTTPHeadParser.parse(bytes[scanner.headStart..<end], limits: limits)
    }

    private func assertFails(_ text: String, _ expected: HTTPParseError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: line) {
            XCTAssertEqual($0 as? HTTPParseError, expected, file: file, line: line)
        }
    }

    func testParse_simpleGet() throws {
        let head = try parse("GET /sessions/a%20b?limit=5 HTTP/1.1\r\nHost: x\r\nX-Thing:  v  \r\n\r\n")
        XCTAssertEqual(head.method, .GET)
        XCTAssertEqual(head.path, "/sessions/a%20b")
        XCTAssertEqual(head.query, "limit=5")
        XCTAssertEqual(head.headers["x-thing"], "v")
        XCTAssertEqual(head.framing, .none)
        XCTAssertTrue(head.keepAlive)
    }

    func testParse_toleratesLeadingEmptyLineAndBareLF() throws {
        let head = try parse("\r\nPOST /x HTTP/1.1\nHost: x\nContent-Length: 3\n\n")
        XCTAssertEqual(head.framing, .contentLength(3))
    }

    func testParse_connectionSemantics() throws {
        XCTAssertFalse(try parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keepAlive)
        XCTAssertFalse(try parse("GET / HTTP/1.0\r\n\r\n").keepAlive)
        XCTAssertTrue(try parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive)
    }

    func testParse_absoluteFormTarget() throws {
        XCTAssertEqual(try parse("GET http://h:1/health?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").path, "/health")
    }

    func testParse_rejectsContentLengthWithChunked() {
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", .conflictingFraming)
    }

    func testParse_transferCodings() throws {
        XCTAssertEqual(try parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n").framing, .chunked)
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", .unsupportedTransferEncoding)
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferEncoding)
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .malformedChunkedBody)
    }

    func testParse_contentLengthRules() throws {
        XCTAssertEqual(try parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n").framing, .contentLength(5))
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .invalidContentLength)
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", .invalidContentLength)
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", .invalidContentLength)
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", .invalidContentLength)
        limits.maxBodyBytes = 10
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", .bodyTooLarge)
        XCTAssertEqual(try parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n").framing, .contentLength(10))
    }

    func testParse_malformed() {
        assertFails("GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", .malformedRequestLine)
        assertFails("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", .malformedRequestLine)
        assertFails("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", .malformedRequestLine)
        assertFails("GET nopath HTTP/1.1\r\nHost: x\r\n\r\n", .malformedRequestLine)
        assertFails("GET / HTTP/2.0\r\nHost: x\r\n\r\n", .unsupportedVersion)
        assertFails("GET / FOO\r\nHost: x\r\n\r\n", .malformedRequestLine)
        assertFails("GET / HTTP/1.1\r\nHost : x\r\n\r\n", .malformedHeader)
        assertFails("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", .malformedHeader)
        assertFails("GET / HTTP/1.1\r\nHost: x\u{0}y\r\n\r\n", .malformedHeader)
        assertFails("GET / HTTP/1.1\r\nnocolon\r\n\r\n", .malformedHeader)
        assertFails("GET / HTTP/1.1\r\n\r\n", .missingHost)
        assertFails("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .duplicateHost)
        assertFails("POST / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n", .unsupportedExpectation)
    }

    func testLimits_requestLineHeaderBytesAndCount() {
        limits.maxRequestLineBytes = 32
        assertFails("GET /\(String(repeating: "a", count: 40)) HTTP/1.1\r\nHost: x\r\n\r\n", .requestLineTooLong)
        var scanner = HeadScanner()
        // Detected before the line ends, so a client cannot stream an endless request line.
        XCTAssertThrowsError(try scanner.scan(Array(String(repeating: "a", count: 33).utf8), limits: limits)) {
            XCTAssertEqual($0 as? HTTPParseError, .requestLineTooLong)
        }
        limits = HTTPServerConfiguration()
        limits.maxHeaderBytes = 64
        assertFails("GET / HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "b", count: 64))\r\n\r\n", .headersTooLarge)
        limits = HTTPServerConfiguration()
        limits.maxHeaderCount = 3
        XCTAssertNoThrow(try parse("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"))
        assertFails("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", .tooManyHeaders)
        XCTAssertEqual(HTTPParseError.tooManyHeaders.status.code, 431)
        XCTAssertEqual(HTTPParseError.requestLineTooLong.status.code, 431)
    }

    // MARK: chunked

    private func decodeChunked(_ text: String, pieces: Int = 1) throws -> (body: String, consumed: Int) {
        var decoder = ChunkedDecoder(limits: limits)
        let bytes = Array(text.utf8)
        var buffer: [UInt8] = []
        var position = 0
        // Feed in `pieces` parts to exercise state carried across reads.
        let step = max(1, bytes.count / pieces)
        var offset = 0
        while !decoder.isDone && offset < bytes.count {
            let next = min(bytes.count, offset + step)
            buffer.append(contentsOf: bytes[offset..<next])
            offset = next
            position += try decoder.feed(buffer, from: position)
        }
        XCTAssertTrue(decoder.isDone)
        return (String(decoding: decoder.body, as: UTF8.self), position)
    }

    func testChunked_decodesWithExtensionsAndTrailers() throws {
        let text = "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\nGET /next"
        for pieces in [1, 3, 17, text.utf8.count] {
            let (body, consumed) = try decodeChunked(text, pieces: pieces)
            XCTAssertEqual(body, "Wikipedia in\r\n\r\nchunks.")
            XCTAssertEqual(consumed, text.utf8.count - "GET /next".utf8.count, "pipelined bytes left alone")
        }
    }

    func testChunked_errors() {
        for bad in ["zz\r\n", "\r\n", "4\r\nWikiXX\r\n", "5 x\r\nhello\r\n0\r\n\r\n", "0\r\nbad trailer\r\n\r\n"] {
            XCTAssertThrowsError(try decodeChunked(bad)) { XCTAssertNotNil($0 as? HTTPParseError, bad) }
        }
        limits.maxBodyBytes = 8
        XCTAssertThrowsError(try decodeChunked("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")) {
            XCTAssertEqual($0 as? HTTPParseError, .bodyTooLarge)
        }
        XCTAssertThrowsError(try decodeChunked("fffffffffffffffffff\r\n")) {
            XCTAssertEqual($0 as? HTTPParseError, .bodyTooLarge)
        }
        limits = HTTPServerConfiguration()
        limits.maxChunkLineBytes = 10
        XCTAssertThrowsError(try decodeChunked("1;\(String(repeating: "e", count: 20))\r\na\r\n0\r\n\r\n")) {
            XCTAssertEqual($0 as? HTTPParseError, .malformedChunkedBody)
        }
    }

    func testQueryItems() {
        let r = HTTPRequest(method: .GET, path: "/", query: "limit=5&before=a+b%21&flag")
        XCTAssertEqual(r.queryItems?.map { "\($0.name)=\($0.value)" }, ["limit=5", "before=a b!", "flag="])
        XCTAssertNil(HTTPRequest(method: .GET, path: "/", query: "x=%G1").queryItems)
    }

    func testErrorResponseShape() {
        let r = HTTPResponse.error(.badRequest, code: "bad", message: "Say \"hi\".")
        XCTAssertEqual(String(decoding: r.body, as: UTF8.self), #"{"error":{"code":"bad","message":"Say \"hi\"."}}"#)
    }

    func testRouter() {
        var router = Router()
        router.add(.GET, "/sessions/:id") { _, p in HTTPResponse(status: .ok, body: Array(p["id"]!.utf8)) }
        router.add(.DELETE, "/sessions/:id") { _, _ in HTTPResponse(status: .noContent) }
        router.add(.GET, "/sessions/:id/versions/:n") { _, p in HTTPResponse(status: .ok, body: Array((p["id"]! + p["n"]!).utf8)) }
        XCTAssertEqual(router.handle(HTTPRequest(method: .GET, path: "/sessions/a%2Fb")).body, Array("a/b".utf8))
        XCTAssertEqual(router.handle(HTTPRequest(method: .HEAD, path: "/sessions/x")).status, .ok)
        XCTAssertEqual(router.handle(HTTPRequest(method: .GET, path: "/sessions/x/versions/3")).body, Array("x3".utf8))
        let notAllowed = router.handle(HTTPRequest(method: .POST, path: "/sessions/x"))
        XCTAssertEqual(notAllowed.status.code, 405)
        XCTAssertEqual(notAllowed.headers.first(where: { $0.0 == "Allow" })?.1, "GET, DELETE, HEAD")
        XCTAssertEqual(router.handle(HTTPRequest(method: .GET, path: "/sessions/")).status.code, 404)
        XCTAssertEqual(router.handle(HTTPRequest(method: .GET, path: "/sessions/x/")).status.code, 404)
        XCTAssertEqual(router.handle(HTTPRequest(method: .GET, path: "/sessions/%zz")).status.code, 400)
    }
}
