import DialogWire
import Foundation
import HTTPServer
import Cognigy
import SessionStore
import TestSupport
import XCTest
@testable import SessionService

/// Channel switches restored into a fake Cognigy, through the real app and outbox.
final class RestoreTests: XCTestCase {
    var directory: URL!
    var fake: FakeCognigy!
    var app: ServiceApp?
    var port: Int { app!.server.port }

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("restore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "{}".write(to: directory.appendingPathComponent("c.json"), atomically: true, encoding: .utf8)
        fake = try FakeCognigy()
    }

    override func tearDownWithError() throws {
        _ = app?.stop()
        fake.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func start(_ env: [String: String] = [:]) throws {
        var environment: [String: String] = [
            "HOST": "127.0.0.1", "PORT": "0", "SQLITE_PATH": directory.appendingPathComponent("s.sqlite").path,
            "OUTBOX_PATH": directory.appendingPathComponent("outbox.sqlite").path, "COGNIGY_API_BASE_URL": fake.baseURL,
            "COGNIGY_API_KEY": "key-1", "RESTORE_INLINE_TIMEOUT_MS": "600",
        ]
        for (k, v) in env { environment[k] = v }
        let config = try ServiceConfiguration.load(environment: environment, configFile: directory.appendingPathComponent("c.json").path)
        let started = try ServiceApp(configuration: config, logger: Logger(level: .error) { _ in })
        try started.start()
        app = started
    }

    func post(_ body: String) throws -> JSONValue {
        let r = try RawHTTPClient.request(
            port: port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", "application/json")], body: Array(body.utf8))
        XCTAssertEqual(r.status, 200, r.text)
        return try JSONParser.parse(r.body)
    }

    let web = #"{"conversationId":"c1","channel":"web-chat","intent":"book_flight","slots":{"origin":"JFK","destination":"LHR"}}"#
    let whatsapp = #"{"conversationId":"c1","channel":"whatsapp","userId":"u-9","sessionId":"wa-1","slots":{"seat":"1A"}}"#

    func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    func testChannelSwitch_contextSentInline() throws {
        try start()
        XCTAssertEqual(try post(web)["restore"], .string("none"))
        let r = try post(whatsapp)
        XCTAssertEqual(r["channelSwitched"], .bool(true))
        XCTAssertEqual(r["restore"], .string("sent"))
        XCTAssertEqual(r["context"]?["origin"], .string("JFK"))
        let sent = try XCTUnwrap(fake.injects.first)
        XCTAssertEqual(sent.sessionId, "wa-1")
        XCTAssertEqual(sent.apiKey, "key-1")
        XCTAssertEqual(
            sent.body,
            #"{"userId":"u-9","context":{"destination":"LHR","origin":"JFK","seat":"1A","intent":"book_flight","sessionVersion":2,"restoredFrom":"web-chat"}}"#)
        XCTAssertEqual(app!.service.restorer!.counts.sent, 1)
        XCTAssertEqual(try app!.service.restorer!.outbox.stats(nowMs: 0).depth, 0)
    }

    func testContextKeyNesting() throws {
        try start(["COGNIGY_CONTEXT_KEY": "restored"])
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("sent"))
        XCTAssertTrue(try XCTUnwrap(fake.injects.first).body.hasPrefix(#"{"userId":"u-9","context":{"restored":{"destination":"LHR""#))
    }

    func testNoUserOrSessionId_skipped() throws {
        try start()
        _ = try post(web)
        XCTAssertEqual(try post(#"{"conversationId":"c1","channel":"voice"}"#)["restore"], .string("skipped"))
        XCTAssertEqual(fake.attempts, 0)
    }

    func testNotConfigured_skipped() throws {
        try start(["COGNIGY_API_BASE_URL": ""])
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("skipped"))
    }

    func testCognigyDown_queuedThenDeliveredWhenItRecovers() throws {
        try start()
        fake.set(.down)
        _ = try post(web)
        let started = Date()
        XCTAssertEqual(try post(whatsapp)["restore"], .string("queued"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.5, "the webhook waits at most the inline timeout")
        XCTAssertEqual(try app!.service.restorer!.outbox.stats(nowMs: DialogService.wallClockMs()).depth, 1)
        fake.set(.ok)
        XCTAssertTrue(waitUntil(10) { self.fake.injects.count == 1 }, "delivered by the background worker")
        XCTAssertEqual(fake.injects.first?.sessionId, "wa-1")
        XCTAssertTrue(waitUntil(2) { (try? self.app!.service.restorer!.outbox.stats(nowMs: 0).depth) == 0 })
    }

    func testQueuedRestoreSurvivesRestart() throws {
        try start()
        fake.set(.down)
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("queued"))
        XCTAssertTrue(app!.stop())
        app = nil
        fake.set(.ok)
        XCTAssertEqual(fake.injects.count, 0)
        try start()
        XCTAssertTrue(waitUntil(10) { self.fake.injects.count == 1 }, "a restart loses nothing queued")
    }

    func testDeleteSession_dropsQueuedRestore() throws {
        try start()
        fake.set(.down)
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("queued"))
        XCTAssertEqual(try RawHTTPClient.request(port: port, method: "DELETE", path: "/sessions/c1").status, 204)
        fake.set(.ok)
        usleep(3_000_000)
        XCTAssertEqual(fake.injects.count, 0, "nothing delivered for a deleted session")
    }

    func testNewerRestoreReplacesQueuedOne() throws {
        try start()
        fake.set(.down)
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("queued"))
        _ = try post(#"{"conversationId":"c1","channel":"voice","userId":"u-9","sessionId":"vo-1"}"#)
        _ = try post(#"{"conversationId":"c1","channel":"whatsapp","userId":"u-9","sessionId":"wa-1","slots":{"seat":"2B"}}"#)
        fake.set(.ok)
        XCTAssertTrue(waitUntil(10) { self.fake.injects.count == 2 })
        usleep(500_000)
        let wa = fake.injects.filter { $0.sessionId == "wa-1" }
        XCTAssertEqual(wa.count, 1, "only the newest pending restore per (conversation, session)")
        XCTAssertTrue(wa[0].body.contains(#""seat":"2B""#))
    }

    func testExplicitRestoreRoute() throws {
        try start()
        _ = try post(web)
        let r = try RawHTTPClient.request(
            port: port, method: "POST", path: "/sessions/c1/restore", headers: [("Content-Type", "application/json")],
            body: Array(#"{"channel":"voice","userId":"u-1","sessionId":"v-7"}"#.utf8))
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(try JSONParser.parse(r.body)["restore"], .string("sent"))
        XCTAssertTrue(try XCTUnwrap(fake.injects.first).body.contains(#""restoredFrom":"web-chat""#))
        let missing = try RawHTTPClient.request(
            port: port, method: "POST", path: "/sessions/none/restore", headers: [("Content-Type", "application/json")],
            body: Array(#"{"userId":"u","sessionId":"s"}"#.utf8))
        XCTAssertEqual(missing.status, 404)
        let bad = try RawHTTPClient.request(
            port: port, method: "POST", path: "/sessions/c1/restore", headers: [("Content-Type", "application/json")],
            body: Array(#"{"userId":"u"}"#.utf8))
        XCTAssertEqual(bad.status, 400)
        // Each field the body names is checked: a wrong type or an over-long id is a 400, and
        // nothing is sent.
        let sentBefore = fake.injects.count
        for body in [
            #"{"channel":5,"userId":"u","sessionId":"s"}"#, #"["userId","sessionId"]"#,
            #"{"userId":"u","sessionId":"\#(String(repeating: "s", count: 513))"}"#,
        ] {
            let r = try RawHTTPClient.request(
                port: port, method: "POST", path: "/sessions/c1/restore", headers: [("Content-Type", "application/json")],
                body: Array(body.utf8))
            XCTAssertEqual(r.status, 400, body)
            XCTAssertEqual(try JSONParser.parse(r.body)["error"]?["code"], .string("invalid_body"), body)
        }
        XCTAssertEqual(fake.injects.count, sentBefore)
    }

    func testOAuthRestore_usesBearerToken() throws {
        try start(["COGNIGY_API_KEY": "", "COGNIGY_TOKEN_URL": fake.tokenURL, "COGNIGY_CLIENT_ID": "id", "COGNIGY_CLIENT_SECRET": "sec"])
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("sent"))
        XCTAssertEqual(fake.injects.first?.authorization, "Bearer tok-1")
        XCTAssertNil(fake.injects.first?.apiKey)
    }

    func testExpiredQueuedRestore_droppedAndCounted() throws {
        fake.set(.down)
        let outbox = try RestoreOutbox(path: directory.appendingPathComponent("o2.sqlite").path)
        let restorer = Restorer(
            client: CognigyClient(configuration: .init(baseURL: fake.baseURL, apiKey: "k", oauth: nil)), outbox: outbox,
            contextKey: nil, inlineTimeoutMs: 200, ttlSeconds: 0, logger: Logger(level: .error) { _ in })
        var snapshot = SessionSnapshot()
        snapshot.conversationId = "old"
        snapshot.sessionVersion = 3
        XCTAssertEqual(restorer.restore(snapshot, restoredFrom: "web", userId: "u", sessionId: "s"), .queued)
        fake.set(.ok)
        usleep(1_100_000)  // past its expiry (TTL 0) and its next attempt
        XCTAssertEqual(try restorer.deliverDue(), 1)
        XCTAssertEqual(restorer.counts.dropped, 1)
        XCTAssertEqual(fake.injects.count, 0, "an expired restore is not delivered")
        XCTAssertEqual(try outbox.stats(nowMs: 0).depth, 0)
    }
}
