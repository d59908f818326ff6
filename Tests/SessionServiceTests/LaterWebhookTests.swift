import DialogWire
import Foundation
import Primitives
import SessionStore
import TestSupport
import XCTest
@testable import SessionService

/// The webhook's fast path (`DialogService.ingestLater`, `LaterRequests`): with no log line
/// a request, the idle loop starts an event and the commit thread answers it. Every answer
/// must be the one a worker gives, byte for byte, and whatever the fast path does not take
/// must still be served as always.
final class LaterWebhookTests: ServiceTestCase {
    override var logLevel: LogLevel { .warn }

    /// The same service, every request on a worker (a debug log line a request).
    private func referenceApp() throws -> ServiceApp {
        let folder = directory.appendingPathComponent("reference")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let config = try ServiceConfiguration.load(
            environment: [
                "HOST": "127.0.0.1", "PORT": "0", "SQLITE_PATH": folder.appendingPathComponent("s.sqlite").path,
                "OUTBOX_PATH": folder.appendingPathComponent("o.sqlite").path, "MAX_SNAPSHOT_BYTES": "4096",
            ],
            configFile: directory.appendingPathComponent("config.json").path)
        let other = try ServiceApp(configuration: config, logger: Logger(level: .debug) { _ in })
        try other.start()
        return other
    }

    private static func request(_ body: String, type: String = "application/json", extra: String = "") -> String {
        "POST /webhook/dialog HTTP/1.1\r\nHost: x\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
    }

    /// Events of every kind on one keep-alive connection to each service: the same status
    /// and body from both; only the fast path's cases were answered later.
    func testEveryAnswer_isTheWorkersAnswer() throws {
        try start(["ACCESS_LOG": "false", "MAX_SNAPSHOT_BYTES": "4096"])
        let reference = try referenceApp()
        defer { _ = reference.stop() }
        let ours = try RawHTTPClient(port: port)
        let theirs = try RawHTTPClient(port: reference.server.port)
        let big = String(repeating: "x", count: 5000)
        // (request, answered later?)
        let script: [(String, Bool)] = [
            (#"{"conversationId":"a","channel":"web","intent":"greet","slots":{"origin":"JFK"},"timestamp":1718409600,"eventId":"e1"}"#, false),  // nothing cached yet
            (#"{"conversationId":"a","channel":"web","intent":"book","slots":{"destination":"LHR"},"timestamp":1718409601,"eventId":"e2"}"#, true),
            (#"{"conversationId":"a","channel":"web","slots":{"date":"2024-06-15"},"timestamp":1718409602}"#, true),  // no eventId: derived
            (#"{"conversationId":"a","channel":"web","intent":"book","slots":{"destination":"LHR"},"timestamp":1718409601,"eventId":"e2"}"#, false),  // duplicate
            (#"{"conversationId":"a","channel":"whatsapp","intent":"status","timestamp":1718409603,"eventId":"e3"}"#, true),  // a switch, no Cognigy
            (#"{"conversationId":"a","channel":"whatsapp","slots":{"origin":null},"timestamp":1718409604,"eventId":"e4"}"#, true),  // slot removed
            (#"{"conversationId":"a","channel":"web","userId":"u1","timestamp":1718409605,"eventId":"e5"}"#, false),  // a user link
            (#"{"conversationId":"a","channel":"web","slots":{"big":"\#(big)"},"timestamp":1718409607,"eventId":"e7"}"#, false),  // 413
            (#"{"conversationId":"a","timestamp":1718409608}"#, false),  // 400: no channel
            (#"{"conversationId":"a","channel":"web","#, false),  // 400: not JSON
            (#"{"conversationId":"b","channel":"web","timestamp":1718409609,"eventId":"b1"}"#, false),  // a new conversation
            (#"{"conversationId":"b","channel":"web","intent":"bye","timestamp":1718409610,"eventId":"b2"}"#, true),
        ]
        var expectedLater = 0
        var ok = 0
        for (index, (body, later)) in script.enumerated() {
            let before = app.server.laterAnswerCount
            // Wait until each connection is parked, so the loop (not the previous worker) reads.
            if index > 0 {
                XCTAssertTrue(eventually { self.app.server.idleConnections == 1 }, "parked before request \(index)")
            }
            ours.send(Self.request(body))
            theirs.send(Self.request(body))
            let mine = try ours.readResponse()
            let reference = try theirs.readResponse()
            XCTAssertEqual(mine.status, reference.status, "request \(index): \(body)")
            XCTAssertEqual(mine.text, reference.text, "request \(index): \(body)")
            XCTAssertNotNil(mine.header("X-Request-Id"))
            if later { expectedLater += 1 }
            if mine.status == 200 { ok += 1 }
            XCTAssertEqual(app.server.laterAnswerCount - before, later ? 1 : 0, "request \(index) answered later: \(body)")
        }
        XCTAssertEqual(app.server.laterAnswerCount, expectedLater)
        XCTAssertEqual(reference.server.laterAnswerCount, 0, "at debug every request is a worker's")
        // What was stored is the same too, but for the times of the writes.
        func stored(_ text: String) -> String {
            text.replacingOccurrences(of: #""(updatedAt|expiresAt)":[0-9]+"#, with: "", options: .regularExpression)
        }
        for path in ["/sessions/a", "/sessions/a/versions", "/sessions/b"] {
            XCTAssertEqual(stored(try get(path).text), stored(try RawHTTPClient.request(port: reference.server.port, path: path).text), path)
        }
        let metrics = try get("/metrics").text
        XCTAssertTrue(metrics.contains("cognigy_session_http_answered_later_total \(expectedLater)"), metrics)
        XCTAssertTrue(
            metrics.contains(#"cognigy_session_http_requests_total{route="/webhook/dialog",method="POST",code="200"} \#(ok)"#), metrics)
    }

    /// Two replicas on one file take turns on a conversation: each one's cached version is
    /// always stale, so every fast-path write loses, and a worker applies the event afresh.
    /// Nothing is lost, nothing answered twice.
    func testLostWrites_appliedAfreshByAWorker() throws {
        try start(["ACCESS_LOG": "false"])
        let other = try replica(["ACCESS_LOG": "false", "SQLITE_PATH": directory.appendingPathComponent("sessions.sqlite").path])
        defer { _ = other.stop() }
        let clients = [try RawHTTPClient(port: port), try RawHTTPClient(port: other.server.port)]
        let rounds = 12
        for i in 0..<rounds {
            let client = clients[i % 2]
            client.send(Self.request(#"{"conversationId":"turns","channel":"web","slots":{"s\#(i)":"v"},"eventId":"t\#(i)"}"#))
            let r = try client.readResponse()
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(try json(r)["sessionVersion"], .number("\(i + 1)"), r.text)
        }
        let latest = try json(get("/sessions/turns"))
        XCTAssertEqual(latest["sessionVersion"], .number("\(rounds)"))
        for i in 0..<rounds { XCTAssertEqual(latest["slots"]?["s\(i)"], .string("v"), "slot s\(i)") }
        XCTAssertEqual(app.server.laterAnswerCount + other.server.laterAnswerCount, 0, "every fast-path write lost")
    }

    /// With Cognigy configured, a channel switch may restore: the blocking path's work.
    func testChannelSwitchWithCognigy_notTakenByTheFastPath() throws {
        try start(["ACCESS_LOG": "false", "COGNIGY_API_BASE_URL": "http://127.0.0.1:9", "COGNIGY_API_KEY": "k"])
        XCTAssertEqual(try post(#"{"conversationId":"s","channel":"web"}"#).status, 200)
        func later(_ event: String) throws -> Bool {
            app.service.ingestLater(try DialogEvent(jsonBytes: Array(event.utf8), maxDepth: 32)) { _ in }
        }
        XCTAssertFalse(try later(#"{"conversationId":"s","channel":"whatsapp"}"#), "a switch")
        XCTAssertTrue(try later(#"{"conversationId":"s","channel":"web","eventId":"same"}"#), "no switch")
    }

}
