import DialogWire
import Foundation
import Primitives
import HTTPServer
import Cognigy
import SessionStore
import TestSupport
import XCTest
@testable import SessionService

/// Channel switches restored into a fake Cognigy, through the real app and outbox (here
/// SQLite; DynamoDBRestoreTests runs every test again with the store and outbox on DynamoDB).
class RestoreTests: XCTestCase {
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

    /// Where the app keeps sessions and queued restores; the same for every start of one test.
    func storeEnvironment() throws -> [String: String] {
        ["SQLITE_PATH": directory.appendingPathComponent("s.sqlite").path, "OUTBOX_PATH": directory.appendingPathComponent("outbox.sqlite").path]
    }

    /// A queue of its own for `makeRestorer`; the same `name` within a test is the same queue.
    func makeQueue(_ name: String) throws -> any RestoreQueue {
        try RestoreOutbox(path: directory.appendingPathComponent(name).path)
    }

    func start(_ env: [String: String] = [:]) throws {
        var environment: [String: String] = [
            "HOST": "127.0.0.1", "PORT": "0", "COGNIGY_API_BASE_URL": fake.baseURL, "COGNIGY_API_KEY": "key-1",
            "RESTORE_INLINE_TIMEOUT_MS": "600",
        ]
        for (k, v) in try storeEnvironment() { environment[k] = v }
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
        XCTAssertEqual(try app!.service.restorer!.queue.stats(nowMs: 0).depth, 0)
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
        XCTAssertEqual(try app!.service.restorer!.queue.stats(nowMs: DialogService.wallClockMs()).depth, 1)
        fake.set(.ok)
        XCTAssertTrue(waitUntil(10) { self.fake.injects.count == 1 }, "delivered by the background worker")
        XCTAssertEqual(fake.injects.first?.sessionId, "wa-1")
        XCTAssertTrue(waitUntil(2) { (try? self.app!.service.restorer!.queue.stats(nowMs: 0).depth) == 0 })
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

    /// A restorer on its own store and queue, with a clock the test moves.
    func makeRestorer(ttlSeconds: Int64 = 3600, clock: Locked<Int64>, queuePath: String = "q.sqlite") throws
        -> (Restorer, SQLiteStore, any RestoreQueue)
    {
        let store = try SQLiteStore(configuration: .init(path: directory.appendingPathComponent("r.sqlite").path))
        var snapshot = SessionSnapshot()
        snapshot.conversationId = "old"
        snapshot.sessionVersion = 1
        snapshot.channel = "whatsapp"
        snapshot.previousChannel = "web"
        snapshot.slots = ["x": "1"]
        snapshot.updatedAt = 1
        snapshot.expiresAt = 4_000_000_000
        try? store.insert(snapshot, after: nil)
        let queue = try makeQueue(queuePath)
        let restorer = Restorer(
            client: CognigyClient(configuration: .init(baseURL: fake.baseURL, apiKey: "k", oauth: nil)), queue: queue, store: store,
            contextKey: nil, inlineTimeoutMs: 200, ttlSeconds: ttlSeconds, logger: Logger(level: .error) { _ in },
            clockMs: { clock.withLock { $0 } })
        return (restorer, store, queue)
    }

    let target = RestoreTarget(conversationId: "old", sessionId: "s", userId: "u", restoredFrom: "web")

    func testExpiredQueuedRestore_droppedAndCounted() throws {
        fake.set(.down)
        let clock = Locked<Int64>(DialogService.wallClockMs())
        let (restorer, _, queue) = try makeRestorer(ttlSeconds: 1, clock: clock)
        XCTAssertEqual(restorer.restore(target, version: 1), .queued)
        fake.set(.ok)
        clock.withLock { $0 += 1_100 }  // past its expiry (1 s) and its next attempt
        XCTAssertEqual(restorer.deliverDue(), 0)
        XCTAssertEqual(restorer.counts.dropped, 1)
        XCTAssertEqual(fake.injects.count, 0, "an expired restore is not delivered")
        XCTAssertEqual(try queue.stats(nowMs: 0).depth, 0)
    }

    /// The crash loop of issue 10: `Retry-After: 99999999999999999999` trapped converting to
    /// Int64, and since the restore was already queued every restart trapped again.
    func testHugeRetryAfter_clampedNeverTraps() throws {
        let clock = Locked<Int64>(DialogService.wallClockMs())
        let (restorer, _, queue) = try makeRestorer(clock: clock)
        for hint in ["99999999999999999999", "-5", "garbage", "1e400"] {
            fake.set(.tooManyRequests(retryAfter: hint, times: 1000))
            XCTAssertEqual(restorer.restore(target, version: 1), .queued, hint)
            // Background: whatever was said, the next try is at most 300 s away.
            clock.withLock { $0 += 300_001 }
            XCTAssertEqual(restorer.deliverDue(), 0, hint)
            XCTAssertEqual(try queue.stats(nowMs: 0).depth, 1, hint)
        }
        fake.set(.ok)
        clock.withLock { $0 += 300_001 }
        XCTAssertEqual(restorer.deliverDue(), 1)
        XCTAssertEqual(try queue.stats(nowMs: 0).depth, 0)
    }

    func testUnauthorized_keptQueuedAndCounted() throws {
        let clock = Locked<Int64>(DialogService.wallClockMs())
        let (restorer, _, queue) = try makeRestorer(clock: clock)
        fake.set(.problem(status: 401))
        XCTAssertEqual(restorer.restore(target, version: 1), .queued, "a key rotation in progress is not a reason to drop")
        XCTAssertEqual(restorer.counts.unauthorized, 1)
        fake.set(.problem(status: 403))
        clock.withLock { $0 += 2_000 }
        XCTAssertEqual(restorer.deliverDue(), 0)
        XCTAssertEqual(restorer.counts.unauthorized, 2)
        XCTAssertEqual(try queue.stats(nowMs: 0).depth, 1)
        fake.set(.ok)
        clock.withLock { $0 += 10_000 }
        XCTAssertEqual(restorer.deliverDue(), 1)
    }

    /// Two processes sharing one queue file: a due restore is leased by one of them only.
    func testSharedQueue_eachRestoreSentOnce() throws {
        let clock = Locked<Int64>(DialogService.wallClockMs())
        let (a, _, _) = try makeRestorer(clock: clock)
        let (b, _, _) = try makeRestorer(clock: clock)
        fake.set(.down)
        for i in 0..<6 {
            XCTAssertEqual(
                a.restore(RestoreTarget(conversationId: "old", sessionId: "s\(i)", userId: "u", restoredFrom: "web"), version: 1),
                .queued)
        }
        fake.set(.ok)
        clock.withLock { $0 += 5_000 }
        DispatchQueue.concurrentPerform(iterations: 2) { i in _ = (i == 0 ? a : b).deliverDue() }
        XCTAssertEqual(fake.injects.count, 6)
        XCTAssertEqual(Set(fake.injects.map(\.sessionId)).count, 6, "no session got two injects")
    }

    /// SPEC: delivery sends the latest version at delivery time, never an older one.
    func testQueuedRestore_deliversLatestVersion() throws {
        try start()
        fake.set(.down)
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("queued"))
        let third = try post(#"{"conversationId":"c1","channel":"whatsapp","userId":"u-9","sessionId":"wa-1","slots":{"meal":"veg"}}"#)
        XCTAssertEqual(third["sessionVersion"], .number("3"))
        fake.set(.ok)
        XCTAssertTrue(waitUntil(10) { self.fake.injects.count >= 1 })
        let body = try JSONParser.parse(Array(fake.injects[0].body.utf8))
        XCTAssertEqual(body["context"]?["sessionVersion"], .number("3"))
        XCTAssertEqual(body["context"]?["meal"], .string("veg"))
        XCTAssertEqual(body["context"]?["restoredFrom"], .string("web-chat"))
    }

    /// A crash between the snapshot write and the outbox write: the re-delivered switch
    /// event is a duplicate, and queues its restore again.
    func testDuplicateOfSwitchEvent_requeuesRestore() throws {
        try start()
        fake.set(.down)
        _ = try post(web)
        let switchEvent = #"{"conversationId":"c1","channel":"whatsapp","userId":"u-9","sessionId":"wa-1","eventId":"in-2"}"#
        XCTAssertEqual(try post(switchEvent)["restore"], .string("queued"))
        try app!.service.restorer!.queue.removeConversation("c1")  // as if the process died before queueing it
        fake.set(.ok)
        let again = try post(switchEvent)
        XCTAssertEqual(again["status"], .string("duplicate"))
        XCTAssertEqual(again["restore"], .string("sent"))
        XCTAssertEqual(fake.injects.count, 1)
    }

    /// The worker sleeps when a pass delivers nothing: a failing Cognigy sees a handful of
    /// attempts, not a tight loop.
    func testWorker_doesNotSpinWhileCognigyIsDown() throws {
        try start()
        fake.set(.down)
        _ = try post(web)
        XCTAssertEqual(try post(whatsapp)["restore"], .string("queued"))
        let before = fake.attempts
        usleep(2_000_000)
        XCTAssertLessThanOrEqual(fake.attempts - before, 4)
    }
}
