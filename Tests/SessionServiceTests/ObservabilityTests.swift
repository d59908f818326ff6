import DialogWire
import Foundation
import TestSupport
import XCTest
@testable import SessionService

/// /metrics after real traffic, and the JSON log lines of one request.
final class ObservabilityTests: XCTestCase {
    var directory: URL!
    var app: ServiceApp!
    let logs = LogCapture()

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("obs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "{}".write(to: directory.appendingPathComponent("c.json"), atomically: true, encoding: .utf8)
        let config = try ServiceConfiguration.load(
            environment: ["HOST": "127.0.0.1", "PORT": "0", "SQLITE_PATH": directory.appendingPathComponent("s.sqlite").path, "LOG_LEVEL": "debug"],
            configFile: directory.appendingPathComponent("c.json").path)
        let logs = self.logs
        app = try ServiceApp(configuration: config, logger: Logger(level: .debug) { logs.append($0) })
        try app.start()
    }

    override func tearDownWithError() throws {
        _ = app.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func post(_ body: String, headers: [(String, String)] = []) throws -> RawHTTPClient.Response {
        try RawHTTPClient.request(
            port: app.server.port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", "application/json")] + headers,
            body: Array(body.utf8))
    }

    /// name{labels} -> value
    func scrape() throws -> [String: Double] {
        let r = try RawHTTPClient.request(port: app.server.port, path: "/metrics")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        var out: [String: Double] = [:]
        for line in r.text.split(separator: "\n") where !line.hasPrefix("#") {
            let space = line.lastIndex(of: " ")!
            out[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        return out
    }

    func testMetrics_countersMoveHistogramsConsistentNoConversationIds() throws {
        for i in 0..<5 { XCTAssertEqual(try post(#"{"conversationId":"conv-private-\#(i)","channel":"web"}"#).status, 200) }
        XCTAssertEqual(try post("{").status, 400)
        XCTAssertEqual(try RawHTTPClient.request(port: app.server.port, path: "/sessions/conv-private-1").status, 200)
        let m = try scrape()
        XCTAssertEqual(m[#"cognigy_session_http_requests_total{route="/webhook/dialog",method="POST",code="200"}"#], 5)
        XCTAssertEqual(m[#"cognigy_session_http_requests_total{route="/webhook/dialog",method="POST",code="400"}"#], 1)
        XCTAssertEqual(m[#"cognigy_session_http_requests_total{route="/sessions/:id",method="GET",code="200"}"#], 1)
        XCTAssertEqual(m[#"cognigy_session_store_operation_duration_seconds_count{store="sqlite",operation="insert"}"#], 5)
        // Buckets are cumulative, end at +Inf = _count.
        let name = "cognigy_session_http_request_duration_seconds"
        let route = #"route="/webhook/dialog""#
        var previous = 0.0
        for bound in Metrics.buckets.map(Metrics.format) + ["+Inf"] {
            let v = try XCTUnwrap(m["\(name)_bucket{\(route),le=\"\(bound)\"}"], bound)
            XCTAssertGreaterThanOrEqual(v, previous)
            previous = v
        }
        XCTAssertEqual(previous, m["\(name)_count{\(route)}"])
        XCTAssertEqual(previous, 6)
        XCTAssertGreaterThan(try XCTUnwrap(m["\(name)_sum{\(route)}"]), 0)
        XCTAssertFalse(m.keys.contains { $0.contains("conv-private") }, "no conversation id in any label")
        XCTAssertNotNil(m["cognigy_session_open_connections"])
    }

    func testLogs_jsonWithRequestId_noSlotValues() throws {
        let r = try post(#"{"conversationId":"c-log","channel":"web","slots":{"card":"4111-SECRET"}}"#, headers: [("X-Request-Id", "rid-42")])
        XCTAssertEqual(r.header("X-Request-Id"), "rid-42")
        let generated = try post(#"{"conversationId":"c-log","channel":"web","eventId":"x"}"#)
        XCTAssertEqual(generated.header("X-Request-Id")?.count, 24, "generated when absent")
        usleep(50_000)
        let lines = logs.lines.filter { $0.contains("rid-42") }
        XCTAssertGreaterThanOrEqual(lines.count, 2)
        for line in logs.lines {
            let json = try JSONParser.parse(Array(line.utf8.dropLast()))  // one object per line
            for key in ["ts", "level", "msg"] { XCTAssertNotNil(json[key], "\(key) in \(line)") }
            XCTAssertFalse(line.contains("4111-SECRET"), "slot values never logged: \(line)")
        }
        for line in lines { XCTAssertEqual(try JSONParser.parse(Array(line.utf8.dropLast()))["request_id"], .string("rid-42")) }
        // An unusable X-Request-Id (spaces, too long) is replaced.
        let bad = try post(#"{"conversationId":"c-log","channel":"web","eventId":"y"}"#, headers: [("X-Request-Id", String(repeating: "z", count: 200))])
        XCTAssertEqual(bad.header("X-Request-Id")?.count, 24)
    }

    /// ACCESS_LOG: one info line per request: method, route pattern, status, duration,
    /// request id and bytes; never the conversation id of the path.
    func testAccessLog_oneLinePerRequestWithoutIds() throws {
        _ = try post(#"{"conversationId":"c-acc-secret","channel":"web"}"#, headers: [("X-Request-Id", "rid-acc")])
        _ = try RawHTTPClient.request(port: app.server.port, method: "GET", path: "/sessions/c-acc-secret", headers: [("X-Request-Id", "rid-acc2")])
        usleep(50_000)
        let access = logs.lines.filter { $0.contains(#""msg":"access""#) }
        let first = try XCTUnwrap(access.first { $0.contains("rid-acc\"") })
        let json = try JSONParser.parse(Array(first.utf8.dropLast()))
        XCTAssertEqual(json["route"], .string("/webhook/dialog"))
        XCTAssertEqual(json["method"], .string("POST"))
        XCTAssertEqual(json["status"], .number("200"))
        XCTAssertEqual(json["level"], .string("info"))
        XCTAssertNotNil(json["duration_us"])
        XCTAssertNotNil(json["bytes_in"])
        XCTAssertNotNil(json["bytes_out"])
        let second = try XCTUnwrap(access.first { $0.contains("rid-acc2") })
        XCTAssertTrue(second.contains(#""route":"/sessions/:id""#), second)
        for line in access { XCTAssertFalse(line.contains("c-acc-secret"), line) }
    }
}
