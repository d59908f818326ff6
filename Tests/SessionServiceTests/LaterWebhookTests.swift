import Crypto
import Dispatch
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
                "OUTBOX_PATH": folder.appendingPathComponent("o.sqlite").path, "MAX_SNAPSHOT_BYTES": "2048",
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
        try start(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true", "MAX_SNAPSHOT_BYTES": "2048"])
        let reference = try referenceApp()
        defer { _ = reference.stop() }
        let ours = try RawHTTPClient(port: port)
        let theirs = try RawHTTPClient(port: reference.server.port)
        // Small enough for the loop to read, too large once merged (MAX_SNAPSHOT_BYTES=2048).
        let big = String(repeating: "x", count: 2500)
        // (request, answered later?)
        let script: [(String, Bool)] = [
            (#"{"conversationId":"a","channel":"web","intent":"greet","slots":{"origin":"JFK"},"timestamp":1718409600,"eventId":"e1"}"#, false),  // nothing cached yet
            (#"{"conversationId":"a","channel":"web","intent":"book","slots":{"destination":"LHR"},"timestamp":1718409601,"eventId":"e2"}"#, true),
            (#"{"conversationId":"a","channel":"web","slots":{"date":"2024-06-15"},"timestamp":1718409602}"#, true),  // no eventId: derived
            (#"{"conversationId":"a","channel":"web","intent":"book","slots":{"destination":"LHR"},"timestamp":1718409601,"eventId":"e2"}"#, false),  // duplicate
            (#"{"conversationId":"a","channel":"whatsapp","intent":"status","timestamp":1718409603,"eventId":"e3"}"#, true),  // a switch, no Cognigy
            (#"{"conversationId":"a","channel":"whatsapp","slots":{"origin":null},"timestamp":1718409604,"eventId":"e4"}"#, true),  // slot removed
            (#"{"conversationId":"a","channel":"web","userId":"u1","timestamp":1718409605,"eventId":"e5"}"#, false),  // a user link, written
            (#"{"conversationId":"a","channel":"web","userId":"u1","slots":{"seat":"12A"},"timestamp":1718409606,"eventId":"e6"}"#, true),  // now known
            (#"{"conversationId":"a","channel":"web","userId":"u1","identities":{"phone":"+4915112345678"},"timestamp":1718409607,"eventId":"e7"}"#, false),  // a new link
            (#"{"conversationId":"a","channel":"web","userId":"u1","identities":{"phone":"+4915112345678"},"timestamp":1718409608,"eventId":"e8"}"#, true),
            (#"{"conversationId":"a","channel":"web","userId":"u2","timestamp":1718409609,"eventId":"e9"}"#, false),  // another user
            (#"{"conversationId":"a","channel":"web","slots":{"big":"\#(big)"},"timestamp":1718409607,"eventId":"e413"}"#, false),  // 413
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
            let requestId = "req-\(index)"
            ours.send(Self.request(body, extra: "X-Request-Id: \(requestId)\r\n"))
            theirs.send(Self.request(body, extra: "X-Request-Id: \(requestId)\r\n"))
            let mine = try ours.readResponse()
            let reference = try theirs.readResponse()
            XCTAssertEqual(mine.status, reference.status, "request \(index): \(body)")
            XCTAssertEqual(mine.text, reference.text, "request \(index): \(body)")
            for name in ["X-Request-Id", "Content-Type", "Content-Length", "Connection", "Retry-After"] {
                XCTAssertEqual(mine.header(name), reference.header(name), "\(name) of request \(index)")
            }
            XCTAssertEqual(mine.header("X-Request-Id"), requestId)
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
        for path in [
            "/sessions/a", "/sessions/a/versions", "/sessions/b", "/links?channel=web&userId=u1",
            "/links?kind=phone&value=%2B4915112345678",
        ] {
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
        try start(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true"])
        let other = try replica(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true", "SQLITE_PATH": directory.appendingPathComponent("sessions.sqlite").path])
        defer { _ = other.stop() }
        let apps: [ServiceApp] = [app, other]
        let clients = [try RawHTTPClient(port: port), try RawHTTPClient(port: other.server.port)]
        func conflicts() throws -> Int {
            try [port, other.server.port].map { port -> Int in
                let text = try RawHTTPClient.request(port: port, path: "/metrics").text
                let line = text.split(separator: "\n").first { $0.hasPrefix("cognigy_session_store_conflicts_total{") }
                return line.flatMap { $0.split(separator: " ").last }.flatMap { Int(Double($0) ?? 0) } ?? 0
            }.reduce(0, +)
        }
        let rounds = 12
        for i in 0..<rounds {
            let client = clients[i % 2]
            // Parked, so the loop reads it (after each one's first request, on a worker).
            if i >= 2 { XCTAssertTrue(eventually { apps[i % 2].server.idleConnections == 1 }, "parked before event \(i)") }
            client.send(Self.request(#"{"conversationId":"turns","channel":"web","slots":{"s\#(i)":"v"},"eventId":"t\#(i)"}"#))
            let r = try client.readResponse()
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(try json(r)["sessionVersion"], .number("\(i + 1)"), r.text)
        }
        let latest = try json(get("/sessions/turns"))
        XCTAssertEqual(latest["sessionVersion"], .number("\(rounds)"))
        for i in 0..<rounds { XCTAssertEqual(latest["slots"]?["s\(i)"], .string("v"), "slot s\(i)") }
        XCTAssertEqual(app.server.laterAnswerCount + other.server.laterAnswerCount, 0, "no stale write answered")
        XCTAssertGreaterThanOrEqual(try conflicts(), rounds - 2, "each fast-path write from a stale cache lost, then went on a worker")
    }

    /// With Cognigy configured, a channel switch may restore: the blocking path's work.
    func testChannelSwitchWithCognigy_notTakenByTheFastPath() throws {
        try start(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true", "COGNIGY_API_BASE_URL": "http://127.0.0.1:9", "COGNIGY_API_KEY": "k"])
        XCTAssertEqual(try post(#"{"conversationId":"s","channel":"web"}"#).status, 200)
        let stored = DispatchSemaphore(value: 0)
        func later(_ event: String) throws -> Bool {
            app.service.ingestLater(try DialogEvent(jsonBytes: Array(event.utf8), maxDepth: 32), answer: { $0.snapshot.sessionVersion }) {
                if case .stored(2) = $0 { stored.signal() }
            }
        }
        XCTAssertFalse(try later(#"{"conversationId":"s","channel":"whatsapp"}"#), "a switch")
        XCTAssertTrue(try later(#"{"conversationId":"s","channel":"web","eventId":"same"}"#), "no switch")
        XCTAssertEqual(stored.wait(timeout: .now() + 10), .success, "stored as version 2")
    }

    /// On, but every request logged: no effect, and a warning at start says why.
    func testOnWithEveryRequestLogged_noEffectAndAWarning() throws {
        try start(["WEBHOOK_FAST_PATH": "true", "ACCESS_LOG": "true"])
        XCTAssertTrue(app.server.answersLater, "warn level: no access line is written")
        _ = app.stop()
        app = nil
        let quiet = LogCapture()
        let config = try ServiceConfiguration.load(
            environment: [
                "HOST": "127.0.0.1", "PORT": "0", "SQLITE_PATH": directory.appendingPathComponent("info.sqlite").path,
                "OUTBOX_PATH": directory.appendingPathComponent("info-outbox.sqlite").path, "WEBHOOK_FAST_PATH": "true",
            ],
            configFile: directory.appendingPathComponent("config.json").path)
        let logged = try ServiceApp(configuration: config, logger: Logger(level: .info) { quiet.append($0) })
        try logged.start()
        defer { _ = logged.stop() }
        XCTAssertFalse(logged.server.answersLater)
        XCTAssertTrue(quiet.lines.contains { $0.contains("WEBHOOK_FAST_PATH is on but has no effect") }, "\(quiet.lines)")
    }

    /// Off by default: every webhook is a worker's, its connection kept by it as before.
    func testOffByDefault() throws {
        try start(["ACCESS_LOG": "false"])
        XCTAssertFalse(app.configuration.webhookFastPath)
        XCTAssertTrue(app.service.ingestsLater, "the store and cache would allow it")
        for i in 0..<3 { XCTAssertEqual(try post(#"{"conversationId":"d","channel":"web","intent":"i\#(i)"}"#).status, 200) }
        let client = try RawHTTPClient(port: port)
        for i in 0..<3 {
            client.send(Self.request(#"{"conversationId":"d","channel":"web","intent":"k\#(i)"}"#))
            XCTAssertEqual(try client.readResponse().status, 200)
        }
        XCTAssertEqual(app.server.laterAnswerCount, 0)
    }

    /// Neither the DynamoDB store (a write is a network call) nor a service without the
    /// snapshot cache takes the fast path: the route has none, so its connections stay on
    /// their workers as before.
    func testWithoutTheCache_noFastPath() throws {
        try start(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true", "SNAPSHOT_CACHE_ENTRIES": "0"])
        XCTAssertFalse(app.service.ingestsLater)
        for i in 0..<3 { XCTAssertEqual(try post(#"{"conversationId":"n","channel":"web","intent":"i\#(i)"}"#).status, 200) }
        XCTAssertEqual(app.server.laterAnswerCount, 0)
        XCTAssertEqual(app.server.idleConnections, 0)
    }

    /// A cached version that has expired is no state (SPEC "Expiry"): the worker's `ingest`
    /// starts afresh, as without the fast path.
    func testExpiredCachedVersion_goesToAWorker() throws {
        // 3 s: a version written just before a second turns expires 2 s later at the soonest.
        try start(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true", "SESSION_TTL_SECONDS": "3"])
        let client = try RawHTTPClient(port: port)
        client.send(Self.request(#"{"conversationId":"x","channel":"web","slots":{"old":"1"}}"#))
        XCTAssertEqual(try client.readResponse().status, 200)
        XCTAssertTrue(eventually { self.app.server.idleConnections == 1 })
        client.send(Self.request(#"{"conversationId":"x","channel":"web","slots":{"mid":"2"}}"#))
        XCTAssertEqual(try json(client.readResponse())["sessionVersion"], .number("2"))
        XCTAssertEqual(app.server.laterAnswerCount, 1)
        usleep(3_200_000)
        client.send(Self.request(#"{"conversationId":"x","channel":"web","slots":{"new":"3"}}"#))
        let r = try json(client.readResponse())
        XCTAssertEqual(r["sessionVersion"], .number("3"), "numbering goes on")
        XCTAssertEqual(r["context"]?["old"], nil, "an expired version is no state")
        XCTAssertEqual(r["context"]?["new"], .string("3"))
        XCTAssertEqual(app.server.laterAnswerCount, 1)
    }

    /// A conversation whose new version would encode to more than the fast path's bound is
    /// handed to a worker (which keeps the connection for the hand-off delay: its next
    /// events are as large).
    func testLargeConversation_handedToAWorkerThatKeepsTheConnection() throws {
        try start(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true"])
        XCTAssertEqual(app.service.limits.laterMaxSnapshotBytes, 16_384)
        let client = try RawHTTPClient(port: port)
        let chunk = String(repeating: "v", count: 3_500)
        var i = 0
        func send() throws -> RawHTTPClient.Response {
            defer { i += 1 }
            client.send(Self.request(#"{"conversationId":"big","channel":"web","slots":{"s\#(i)":"\#(chunk)"}}"#))
            return try client.readResponse()
        }
        XCTAssertEqual(try send().status, 200)
        // Versions 2…4 (up to about 14 KB) take the fast path.
        for _ in 0..<3 {
            XCTAssertTrue(eventually { self.app.server.idleConnections == 1 })
            XCTAssertEqual(try send().status, 200)
        }
        XCTAssertEqual(app.server.laterAnswerCount, 3)
        XCTAssertTrue(eventually { self.app.server.idleConnections == 1 })
        let fifth = try send()
        XCTAssertEqual(fifth.status, 200, fifth.text)
        XCTAssertEqual(try json(fifth)["sessionVersion"], .number("5"))
        XCTAssertEqual(app.server.laterAnswerCount, 3, "over 16 KiB: a worker's")
        // Whether that worker still holds the connection (for IDLE_HANDOFF_MS) or the loop
        // reads it again, the event is a worker's.
        XCTAssertEqual(try json(send())["sessionVersion"], .number("6"))
        XCTAssertEqual(app.server.laterAnswerCount, 3)
    }

    /// With ENCRYPTION_KEYS, what the fast path writes is sealed as `insert` seals it.
    func testEncryption_theFastPathWritesSealedValues() throws {
        let iban = "DE89370400440532013000"
        try start(["ACCESS_LOG": "false", "WEBHOOK_FAST_PATH": "true", "ENCRYPTION_KEYS": try generateKeyLine(id: "k1"), "ENCRYPTED_SLOTS": "*"])
        let client = try RawHTTPClient(port: port)
        for i in 0..<4 {
            if i > 0 { XCTAssertTrue(eventually { self.app.server.idleConnections == 1 }) }
            client.send(Self.request(#"{"conversationId":"e","channel":"web","slots":{"iban\#(i)":"\#(iban)"}}"#))
            let r = try client.readResponse()
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertTrue(r.text.contains(iban), "the answer sees plaintext")
        }
        XCTAssertEqual(app.server.laterAnswerCount, 3)
        var bytes = Data()
        for suffix in ["", "-wal"] {
            bytes.append(FileManager.default.contents(atPath: directory.appendingPathComponent("sessions.sqlite" + suffix).path) ?? Data())
        }
        XCTAssertNil(bytes.range(of: Data(iban.utf8)), "no plaintext in the files")
        XCTAssertNotNil(bytes.range(of: Data("enc:v1:k1:".utf8)))
        XCTAssertEqual(try json(get("/sessions/e"))["slots"]?["iban3"], .string(iban))
    }
}
