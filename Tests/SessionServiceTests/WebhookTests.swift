import CSQLite
import DialogWire
import Foundation
import SessionStore
import Primitives
import TestSupport
import HTTPServer
import XCTest
@testable import SessionService

/// The service as a user meets it: the real app on port 0, a temp SQLite file, raw HTTP.
/// Test classes of the service subclass it.
class ServiceTestCase: XCTestCase {
    var directory: URL!
    var app: ServiceApp!
    var port: Int { app.server.port }
    let logs = LogCapture()
    /// The level the app logs at: `debug` sends every webhook through a worker (a log line
    /// a request); `LaterWebhookTests` runs quieter, so the idle loop starts them.
    var logLevel: LogLevel { .debug }

    func start(_ env: [String: String] = [:]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("svc-\(UUID().uuidString)")
        var environment = env
        environment["HOST"] = "127.0.0.1"
        environment["PORT"] = "0"
        environment["SQLITE_PATH"] = environment["SQLITE_PATH"] ?? directory.appendingPathComponent("sessions.sqlite").path
        let empty = directory.appendingPathComponent("config.json")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "{}".write(to: empty, atomically: true, encoding: .utf8)
        let config = try ServiceConfiguration.load(environment: environment, configFile: empty.path)
        let logs = self.logs
        let logger = Logger(level: logLevel) { bytes in logs.append(bytes) }
        app = try ServiceApp(configuration: config, logger: logger)
        try app.start()
    }

    /// A second replica on the same store, beside `app` (logging errors only).
    func replica(_ env: [String: String]) throws -> ServiceApp {
        var environment = env
        environment["HOST"] = "127.0.0.1"
        environment["PORT"] = "0"
        environment["SQLITE_PATH"] = environment["SQLITE_PATH"] ?? directory.appendingPathComponent("sessions.sqlite").path
        let other = try ServiceApp(
            configuration: try ServiceConfiguration.load(environment: environment, configFile: directory.appendingPathComponent("config.json").path),
            logger: Logger(level: .error) { _ in })
        try other.start()
        return other
    }

    override func tearDownWithError() throws {
        _ = app?.stop()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    @discardableResult
    func post(_ body: String, type: String = "application/json", headers: [(String, String)] = []) throws -> RawHTTPClient.Response {
        try post(Array(body.utf8), type: type, headers: headers)
    }

    func post(_ body: [UInt8], type: String, headers: [(String, String)] = []) throws -> RawHTTPClient.Response {
        try RawHTTPClient.request(
            port: port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", type)] + headers, body: body)
    }

    func get(_ path: String, headers: [(String, String)] = []) throws -> RawHTTPClient.Response {
        try RawHTTPClient.request(port: port, path: path, headers: headers)
    }

    func json(_ r: RawHTTPClient.Response) throws -> JSONValue { try JSONParser.parse(r.body) }

    /// For use from concurrent closures (no `self`).
    static func postJSON(port: Int, _ body: String) throws -> RawHTTPClient.Response {
        try RawHTTPClient.request(
            port: port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", "application/json")],
            body: Array(body.utf8))
    }

}

final class WebhookTests: ServiceTestCase {
    static let example = """
        {"conversationId":"conv-88a2c1f9","channel":"web-chat","intent":"book_flight",
         "slots":{"origin":"JFK","destination":"LHR","date":"2024-06-15"},"timestamp":1718409600}
        """

    func testExampleEvent_asIs() throws {
        try start()
        let r = try post(Self.example)
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(
            r.text,
            #"{"status":"processed","conversationId":"conv-88a2c1f9","sessionVersion":1,"channelSwitched":false,"restore":"none","linkedBy":"conversationId","linkConflicts":[],"context":{"date":"2024-06-15","destination":"LHR","origin":"JFK","intent":"book_flight","sessionVersion":1}}"#
        )
        let stored = try json(get("/sessions/conv-88a2c1f9"))
        XCTAssertEqual(stored["sessionVersion"], .number("1"))
        XCTAssertEqual(stored["eventTimestamp"], .number("1718409600"))
        XCTAssertEqual(stored["slots"]?["destination"], .string("LHR"))
    }

    func testChannelSwitch_versionsAndMerge_acrossAllThreeBodyFormats() throws {
        try start()
        XCTAssertEqual(try post(Self.example).status, 200)
        let form = "conversationId=conv-88a2c1f9&channel=whatsapp&slots=%7B%22seat%22%3A%2212A%22%7D&timestamp=2024-06-15T01%3A00%3A00Z"
        let second = try json(post(form, type: "application/x-www-form-urlencoded"))
        XCTAssertEqual(second["sessionVersion"], .number("2"))
        XCTAssertEqual(second["channelSwitched"], .bool(true))
        XCTAssertEqual(second["restore"], .string("skipped"), "Cognigy is not configured")
        XCTAssertEqual(second["context"]?["origin"], .string("JFK"), "what was said on web chat is known on WhatsApp")
        let proto = DialogEvent(conversationId: "conv-88a2c1f9", channel: "voice", intent: "confirm", slots: ["pax": "2"], eventId: "in-3")
        let third = try post(proto.serializedBytes(), type: "application/x-protobuf")
        XCTAssertEqual(third.status, 200, third.text)
        let latest = try json(get("/sessions/conv-88a2c1f9"))
        XCTAssertEqual(latest["sessionVersion"], .number("3"))
        XCTAssertEqual(latest["channel"], .string("voice"))
        XCTAssertEqual(latest["previousChannel"], .string("whatsapp"))
        XCTAssertEqual(latest["intent"], .string("confirm"))
        guard case .object(let slots)? = latest["slots"] else { return XCTFail() }
        XCTAssertEqual(slots.map(\.key), ["date", "destination", "origin", "pax", "seat"])
        guard case .object(let channels)? = latest["channels"] else { return XCTFail() }
        XCTAssertEqual(channels.map(\.key), ["voice", "web-chat", "whatsapp"])
    }

    func testDuplicateEventId_answeredDuplicate_nothingWritten() throws {
        try start()
        let body = #"{"conversationId":"c","channel":"web","eventId":"input-1","slots":{"a":"1"}}"#
        XCTAssertEqual(try json(post(body))["status"], .string("processed"))
        let again = try json(post(body))
        XCTAssertEqual(again["status"], .string("duplicate"))
        XCTAssertEqual(again["sessionVersion"], .number("1"))
        XCTAssertEqual(try json(get("/sessions/c/versions"))["versions"].map { v -> Int in
            if case .array(let a) = v { return a.count } else { return -1 }
        }, 1)
    }

    /// A snapshot written before event ids were kept as digests holds them as text: a
    /// re-delivery of one is still a duplicate, and the next version keeps digests only.
    func testDuplicateOfAnIdAnOlderVersionStoredAsText() throws {
        try start()
        var old = SessionSnapshot()
        old.conversationId = "legacy"
        old.sessionVersion = 1
        old.channel = "web"
        old.slots = ["a": "1"]
        old.updatedAt = 1_718_409_600_000
        old.expiresAt = 4_000_000_000
        old.recentEventIds = ["in-1", "in-2"]
        _ = try app.service.store.insert(old, after: nil)
        for id in ["in-1", "in-2"] {
            let r = try json(post(#"{"conversationId":"legacy","channel":"web","eventId":"\#(id)","slots":{"a":"2"}}"#))
            XCTAssertEqual(r["status"], .string("duplicate"), id)
        }
        let r = try json(post(#"{"conversationId":"legacy","channel":"web","eventId":"in-3","slots":{"a":"3"}}"#))
        XCTAssertEqual(r["status"], .string("processed"))
        let latest = try XCTUnwrap(app.service.store.latest("legacy")).snapshot.get()
        XCTAssertEqual(latest.recentEventIds, [])
        XCTAssertEqual(latest.recentEventDigests, ["in-1", "in-2", "in-3"].map(SessionMerge.eventDigest))
        XCTAssertEqual(try json(post(#"{"conversationId":"legacy","channel":"web","eventId":"in-1"}"#))["status"], .string("duplicate"))
    }

    func testDuplicateWithoutEventId_sameBytesDeduplicated() throws {
        try start()
        let body = #"{"conversationId":"c","channel":"web","slots":{"a":"1"},"timestamp":5}"#
        XCTAssertEqual(try json(post(body))["status"], .string("processed"))
        XCTAssertEqual(try json(post(body))["status"], .string("duplicate"))
        XCTAssertEqual(try json(post(body.replacingOccurrences(of: ":5", with: ":6")))["status"], .string("processed"))
    }

    func testConcurrentDuplicates_exactlyOneVersion() throws {
        try start()
        let body = #"{"conversationId":"dup","channel":"web","eventId":"same"}"#
        let statuses = Locked<[String]>([])
        let port = self.port
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            if let r = try? Self.postJSON(port: port, body), case .string(let s)? = try? JSONParser.parse(r.body)["status"] {
                statuses.withLock { $0.append(s) }
            }
        }
        let all = statuses.withLock { $0 }
        XCTAssertEqual(all.count, 16)
        XCTAssertEqual(all.filter { $0 == "processed" }.count, 1)
        XCTAssertEqual(try app.service.store.latest("dup")?.version, 1)
    }

    func testConcurrentEvents_contiguousVersionsNoSlotLost() throws {
        try start()
        let codes = Locked<[Int]>([])
        let contention = Locked(0)
        let port = self.port
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in 0..<15 {
                let body = #"{"conversationId":"hot","channel":"ch\#(worker % 3)","eventId":"w\#(worker)-\#(i)","slots":{"k\#(worker)_\#(i)":"v"}}"#
                // Eight writers on one conversation can use up a request's conflict budget:
                // SPEC answers 503 + Retry-After and the caller retries, as done here.
                var r = try? Self.postJSON(port: port, body)
                for _ in 0..<10 where r?.status == 503 {
                    XCTAssertEqual(r?.header("Retry-After"), "1")
                    XCTAssertTrue(r?.text.contains("write_contention") ?? false, r?.text ?? "")
                    contention.withLock { $0 += 1 }
                    r = try? Self.postJSON(port: port, body)
                }
                codes.withLock { $0.append(r?.status ?? -1) }
            }
        }
        let all = codes.withLock { $0 }
        XCTAssertEqual(all.filter { $0 == 200 }.count, 120, "non-200 answers: \(all.filter { $0 != 200 })")
        print("concurrent webhook events: 120 acknowledged, \(contention.withLock { $0 }) contention 503s retried")
        let versions = try app.service.store.versions("hot", limit: 1000, before: nil)
        XCTAssertEqual(versions.map(\.version), Array((1...120).reversed()))
        XCTAssertEqual(try versions[0].snapshot.get().slots.count, 120)
    }

    func testBadPayloads_400WithJSONError() throws {
        try start()
        for (body, code) in [
            ("{", "invalid_body"), (#"{"channel":"x"}"#, "invalid_event"), (#"{"conversationId":"c"}"#, "invalid_event"),
            (#"{"conversationId":"","channel":"x"}"#, "invalid_event"), (#"{"conversationId":1,"channel":"x"}"#, "invalid_body"),
            (#"{"conversationId":"c","channel":"x","timestamp":"yesterday"}"#, "invalid_body"),
            (#"{"conversationId":"c","channel":"x","slots":"no"}"#, "invalid_body"),
            ("[]", "invalid_body"), (String(repeating: "[", count: 40) + String(repeating: "]", count: 40), "invalid_body"),
            (#"{"conversationId":"\#(String(repeating: "x", count: 600))","channel":"x"}"#, "invalid_event"),
        ] {
            let r = try post(body)
            XCTAssertEqual(r.status, 400, body)
            XCTAssertEqual(try json(r)["error"]?["code"], .string(code), body)
            guard case .string(let message)? = try json(r)["error"]?["message"] else { return XCTFail() }
            XCTAssertFalse(message.isEmpty)
        }
        XCTAssertEqual(try post([0x0F], type: "application/x-protobuf").status, 400)
        XCTAssertEqual(try post([0x12, 0x02, 0xC3, 0x28], type: "application/x-protobuf").status, 400, "bad UTF-8")
    }

    func testStatusCodes_415_405_404_413() throws {
        try start(["MAX_BODY_BYTES": "2048"])
        XCTAssertEqual(try post("x", type: "text/plain").status, 415)
        XCTAssertEqual(try post("x", type: "").status, 415)
        XCTAssertEqual(try get("/webhook/dialog").status, 405)
        XCTAssertEqual(try get("/nothing").status, 404)
        let big = #"{"conversationId":"c","channel":"x","slots":{"a":"\#(String(repeating: "x", count: 3000))"}}"#
        let r = try post(big)
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(try json(r)["error"]?["code"], .string("body_too_large"))
        XCTAssertEqual(try post(#"{"conversationId":"c","channel":"x"}"#, type: "application/json; charset=utf-8").status, 200)
    }

    func testSnapshotSizeLimit_413() throws {
        try start(["MAX_SNAPSHOT_BYTES": "2048"])
        let slot = String(repeating: "x", count: 900)
        XCTAssertEqual(try post(#"{"conversationId":"c","channel":"x","slots":{"a":"\#(slot)"}}"#).status, 200)
        let r = try post(#"{"conversationId":"c","channel":"x","slots":{"b":"\#(slot)","c":"\#(slot)"}}"#)
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(try json(r)["error"]?["code"], .string("snapshot_too_large"))
        XCTAssertEqual(try app.service.store.latest("c")?.version, 1, "nothing half-written")
    }

    /// MAX_ID_LENGTH counts characters, as the OpenAPI document's `maxLength` does: 16
    /// four-byte characters pass where 17 ASCII ones do not.
    func testIdLengthLimit_countsCharacters_400() throws {
        try start(["MAX_ID_LENGTH": "16"])
        let wide = String(repeating: "😀", count: 16)  // 64 UTF-8 bytes
        XCTAssertEqual(try post(#"{"conversationId":"\#(wide)","channel":"web"}"#).status, 200)
        for field in ["conversationId", "channel", "intent", "userId", "sessionId", "eventId"] {
            var fields = ["conversationId": "c", "channel": "web"]
            fields[field] = String(repeating: "a", count: 17)
            let body = "{" + fields.map { #""\#($0.key)":"\#($0.value)""# }.joined(separator: ",") + "}"
            let r = try post(body)
            XCTAssertEqual(r.status, 400, field)
            XCTAssertEqual(try json(r)["error"]?["code"], .string("invalid_event"), field)
            XCTAssertEqual(
                try json(r)["error"]?["message"], .string("Field '\(field)' is longer than 16 characters."), field)
        }
        XCTAssertNil(try app.service.store.latest(String(repeating: "a", count: 17)))
        // The sessions API refuses such an id before it reaches the store.
        let long = String(repeating: "a", count: 17)
        for (method, path) in [
            ("GET", "/sessions/\(long)"), ("DELETE", "/sessions/\(long)"), ("GET", "/sessions/\(long)/versions"),
            ("GET", "/sessions/\(long)/versions/1"),
        ] {
            let r = try RawHTTPClient.request(port: port, method: method, path: path)
            XCTAssertEqual(r.status, 400, path)
            XCTAssertEqual(try json(r)["error"]?["code"], .string("invalid_path"), path)
        }
        let encoded = wide.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)!
        XCTAssertEqual(try get("/sessions/\(encoded)").status, 200)
    }

    /// On DynamoDB a state that fits MAX_SNAPSHOT_BYTES can still be over the 400 KB item
    /// limit (slots are stored twice): a 413, not DynamoDB's ValidationException as a 500.
    /// A slot named "" is stored and read back too.
    func testDynamoDB_itemOverLimit413_emptySlotName200() throws {
        let env = ProcessInfo.processInfo.environment
        guard let endpoint = env["MOTO_ENDPOINT"] else {
            if env["REQUIRE_DYNAMODB"] == "1" { XCTFail("REQUIRE_DYNAMODB=1 but MOTO_ENDPOINT is not set") }
            throw XCTSkip("needs a DynamoDB-compatible server: run scripts/test.sh (it starts moto) or set MOTO_ENDPOINT")
        }
        try start([
            "SESSION_STORE": "dynamodb", "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "DYNAMODB_TABLE": "w-\(UUID().uuidString.prefix(12))",
            "DYNAMODB_CREATE_TABLE": "true",
        ])
        let slot = String(repeating: "x", count: 210_000)
        let r = try post(#"{"conversationId":"big","channel":"web","slots":{"a":"\#(slot)"}}"#)
        XCTAssertEqual(r.status, 413, r.text)
        XCTAssertEqual(try json(r)["error"]?["code"], .string("snapshot_too_large"))
        XCTAssertEqual(try get("/sessions/big").status, 404, "nothing written")
        XCTAssertEqual(try post(#"{"conversationId":"e","channel":"web","slots":{"":"x"}}"#).status, 200)
        XCTAssertEqual(try json(get("/sessions/e/versions/1"))["slots"]?[""], .string("x"))
    }

    func testWebhookAPIKey() throws {
        try start(["WEBHOOK_API_KEY": "k-123"])
        let body = #"{"conversationId":"c","channel":"x"}"#
        XCTAssertEqual(try post(body).status, 401)
        XCTAssertEqual(try post(body, headers: [("X-API-Key", "k-12")]).status, 401)
        XCTAssertEqual(try post(body, headers: [("Authorization", "Bearer wrong")]).status, 401)
        XCTAssertEqual(try post(body, headers: [("X-API-Key", "k-123")]).status, 200)
        XCTAssertEqual(try post(body, headers: [("Authorization", "bearer k-123")]).status, 200)
        // The other forms Cognigy's HTTP Request node sends.
        XCTAssertEqual(try post(body, headers: [("Authorization", "ApiKey k-123")]).status, 200)
        XCTAssertEqual(try post(body, headers: [("Authorization", "ApiKey k-12")]).status, 401)
        let basic = Data("cognigy:k-123".utf8).base64EncodedString()
        XCTAssertEqual(try post(body, headers: [("Authorization", "Basic \(basic)")]).status, 200)
        let wrongBasic = Data("cognigy:nope".utf8).base64EncodedString()
        XCTAssertEqual(try post(body, headers: [("Authorization", "Basic \(wrongBasic)")]).status, 401)
        XCTAssertEqual(try get("/health").status, 200, "health needs no key")
    }

    /// SPEC: a request whose head decides the answer is answered without reading its body.
    func testMissingKey_401BeforeTheBodyArrives() throws {
        try start(["WEBHOOK_API_KEY": "k-123"])
        let client = try RawHTTPClient(port: port)
        client.send("POST /webhook/dialog HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n")
        let t = Date()
        let r = try client.readResponse(timeout: 3)
        XCTAssertEqual(r.status, 401)
        XCTAssertLessThan(Date().timeIntervalSince(t), 1)
        XCTAssertNotNil(r.header("X-Request-Id"))
    }

    /// SPEC: ids with control characters (U+0000–U+001F, U+007F) → 400, in every body form.
    func testControlCharactersInIds_400() throws {
        try start()
        for body in [
            #"{"conversationId":"a\u0000b","channel":"web"}"#, #"{"conversationId":"c","channel":"we\nb"}"#,
            #"{"conversationId":"c","channel":"web","userId":"u\u007f"}"#, #"{"conversationId":"c","channel":"web","sessionId":"s\t"}"#,
            #"{"conversationId":"c","channel":"web","eventId":"e\r"}"#, #"{"conversationId":"c","channel":"web","intent":"i\u001f"}"#,
        ] {
            let r = try post(body)
            XCTAssertEqual(r.status, 400, body)
            XCTAssertEqual(try json(r)["error"]?["code"], .string("invalid_event"), body)
        }
        XCTAssertEqual(try post("conversationId=a%00b&channel=web", type: "application/x-www-form-urlencoded").status, 400)
        var event = DialogEvent(conversationId: "a\u{0}b", channel: "web")
        XCTAssertEqual(try post(event.serializedBytes(), type: "application/x-protobuf").status, 400)
        event.conversationId = "ok"
        XCTAssertEqual(try post(event.serializedBytes(), type: "application/x-protobuf").status, 200)
        XCTAssertEqual(try get("/sessions/a%00b").status, 400)
        XCTAssertEqual(try get("/sessions/a%0Ab/versions").status, 400)
    }

    /// SPEC "Expiry": a latest version past expiresAt is no state at all, before any sweep.
    func testExpiredLatest_readsAs404AndNextEventStartsEmpty() throws {
        try start(["SESSION_TTL_SECONDS": "1", "SWEEP_INTERVAL_SECONDS": "3600"])
        try post(#"{"conversationId":"x","channel":"web","slots":{"a":"1"}}"#)
        XCTAssertEqual(try get("/sessions/x").status, 200)
        usleep(2_100_000)
        XCTAssertEqual(try get("/sessions/x").status, 404)
        XCTAssertEqual(try get("/sessions/x/versions").status, 404)
        XCTAssertEqual(try get("/sessions/x/versions/1").status, 404)
        let next = try json(post(#"{"conversationId":"x","channel":"whatsapp","slots":{"b":"2"}}"#))
        XCTAssertEqual(next["context"]?["a"], nil, "expired slots are gone")
        XCTAssertEqual(next["context"]?["b"], .string("2"))
        XCTAssertEqual(next["channelSwitched"], .bool(false), "nothing to switch from")
        XCTAssertEqual(next["sessionVersion"], .number("2"), "numbering continues after the old version")
    }

    /// SPEC: without ADMIN_TOKEN the admin routes answer loopback clients only.
    func testNoAdminToken_adminRoutesAnswerLoopbackOnly() throws {
        try start()
        try post(#"{"conversationId":"c","channel":"x"}"#)
        XCTAssertEqual(try get("/sessions/c").status, 200, "this test client is on loopback")
        let router = Routes(service: app.service, config: app.configuration, logger: Logger(level: .error) { _ in }).router()
        let remote = router.handle(HTTPRequest(method: .GET, path: "/sessions/c", peerIsLoopback: false))
        XCTAssertEqual(remote.status.code, 403)
        XCTAssertEqual(try JSONParser.parse(remote.body)["error"]?["code"], .string("admin_token_required"))
        XCTAssertEqual(router.handle(HTTPRequest(method: .GET, path: "/sessions/c", peerIsLoopback: true)).status.code, 200)
        // The webhook and health are not admin routes.
        XCTAssertEqual(router.handle(HTTPRequest(method: .GET, path: "/health", peerIsLoopback: false)).status.code, 200)
    }

    /// /health is the one route the server's idle loop may answer itself, and only while no
    /// log line is written per request (a write to stderr may block; the loop must not).
    func testHealth_isInlineUnlessEveryRequestIsLogged() throws {
        try start()
        func head(_ method: HTTPMethod, _ path: String, framing: BodyFraming = .none) throws -> RequestHead {
            var text = "\(method.rawValue) \(path) HTTP/1.1\r\nHost: x"
            if case .contentLength(let n) = framing { text += "\r\nContent-Length: \(n)" }
            var head = try HTTPHeadParser.parse(Array(text.utf8)[...], limits: HTTPServerConfiguration())
            head.peerIsLoopback = true
            return head
        }
        let router = Routes(service: app.service, config: app.configuration, logger: Logger(level: .error) { _ in }).router()
        XCTAssertTrue(router.servesInline(try head(.GET, "/health")))
        XCTAssertTrue(router.servesInline(try head(.HEAD, "/health")))
        XCTAssertFalse(router.servesInline(try head(.GET, "/ready")), "reads the store")
        XCTAssertFalse(router.servesInline(try head(.GET, "/metrics")))
        XCTAssertFalse(router.servesInline(try head(.POST, "/webhook/dialog", framing: .contentLength(2))))
        XCTAssertFalse(router.servesInline(try head(.GET, "/sessions/c")))
        let metrics = Metrics()
        func handler(_ level: LogLevel, accessLog: Bool) -> InstrumentedHandler {
            InstrumentedHandler(router: router, metrics: metrics, logger: Logger(level: level) { _ in }, accessLog: accessLog)
        }
        XCTAssertTrue(handler(.warn, accessLog: true).servesInline(try head(.GET, "/health")), "access lines are info")
        XCTAssertTrue(handler(.info, accessLog: false).servesInline(try head(.GET, "/health")))
        XCTAssertFalse(handler(.info, accessLog: true).servesInline(try head(.GET, "/health")), "the default: a line a request")
        XCTAssertFalse(handler(.debug, accessLog: false).servesInline(try head(.GET, "/health")), "debug logs every request")
        // The webhook may be started by the loop and answered by the commit thread, by the
        // same rule: never where a log line a request would be written there.
        let webhook = try head(.POST, "/webhook/dialog", framing: .contentLength(2))
        XCTAssertFalse(router.servesLater(webhook), "WEBHOOK_FAST_PATH is off by default")
        var fast = app.configuration
        fast.webhookFastPath = true
        let fastRouter = Routes(service: app.service, config: fast, logger: Logger(level: .error) { _ in }).router()
        XCTAssertTrue(fastRouter.servesLater(webhook))
        XCTAssertFalse(fastRouter.servesLater(try head(.GET, "/health")))
        XCTAssertFalse(fastRouter.servesLater(try head(.POST, "/sessions/c/rollback", framing: .contentLength(2))))
        func fastHandler(_ level: LogLevel, accessLog: Bool) -> InstrumentedHandler {
            InstrumentedHandler(router: fastRouter, metrics: metrics, logger: Logger(level: level) { _ in }, accessLog: accessLog)
        }
        XCTAssertTrue(fastHandler(.warn, accessLog: true).servesLater(webhook))
        XCTAssertFalse(fastHandler(.info, accessLog: true).servesLater(webhook), "the default: a line a request")
        XCTAssertFalse(fastHandler(.debug, accessLog: false).servesLater(webhook))
    }

    func testAdminToken() throws {
        try start(["ADMIN_TOKEN": "adm"])
        try post(#"{"conversationId":"c","channel":"x"}"#)
        XCTAssertEqual(try get("/sessions/c").status, 401)
        XCTAssertEqual(try get("/sessions/c", headers: [("Authorization", "Bearer nope")]).status, 401)
        XCTAssertEqual(try get("/sessions/c", headers: [("Authorization", "Bearer adm")]).status, 200)
    }

    func testSessionsAPI_versionsPagingOneVersion404s() throws {
        try start()
        for i in 1...5 { try post(#"{"conversationId":"p q","channel":"x","slots":{"n":"\#(i)"}}"#) }
        let page1 = try json(get("/sessions/p%20q/versions?limit=2"))
        guard case .array(let v1)? = page1["versions"] else { return XCTFail() }
        XCTAssertEqual(v1.map { $0["sessionVersion"] }, [.number("5"), .number("4")])
        XCTAssertEqual(page1["nextBefore"], .number("4"))
        let page3 = try json(get("/sessions/p%20q/versions?limit=2&before=2"))
        guard case .array(let v3)? = page3["versions"] else { return XCTFail() }
        XCTAssertEqual(v3.map { $0["sessionVersion"] }, [.number("1")])
        XCTAssertEqual(page3["nextBefore"], .null)
        // Past the end of a stored conversation: an empty page, not a 404.
        let past = try get("/sessions/p%20q/versions?before=1")
        XCTAssertEqual(past.status, 200)
        XCTAssertEqual(try json(past)["versions"], .array([]))
        XCTAssertEqual(try json(get("/sessions/p%20q/versions/3"))["slots"]?["n"], .string("3"))
        XCTAssertEqual(try get("/sessions/p%20q/versions/9").status, 404)
        XCTAssertEqual(try get("/sessions/p%20q/versions/zero").status, 400)
        XCTAssertEqual(try get("/sessions/p%20q/versions?limit=0").status, 400)
        XCTAssertEqual(try get("/sessions/p%20q/versions?limit=101").status, 400)
        XCTAssertEqual(try get("/sessions/p%20q/versions?before=x").status, 400)
        XCTAssertEqual(try get("/sessions/missing").status, 404)
        XCTAssertEqual(try json(get("/sessions/missing"))["error"]?["code"], .string("session_not_found"))
        XCTAssertEqual(try get("/sessions/missing/versions").status, 404)
    }

    func testRollbackAndDelete() throws {
        try start()
        try post(#"{"conversationId":"r","channel":"x","eventId":"a","slots":{"k":"1"}}"#)
        try post(#"{"conversationId":"r","channel":"y","eventId":"b","slots":{"k":"2"}}"#)
        let rolled = try RawHTTPClient.request(
            port: port, method: "POST", path: "/sessions/r/rollback", headers: [("Content-Type", "application/json")],
            body: Array(#"{"toVersion":1}"#.utf8))
        XCTAssertEqual(rolled.status, 200, rolled.text)
        XCTAssertEqual(try json(rolled)["sessionVersion"], .number("3"))
        XCTAssertEqual(try json(rolled)["slots"]?["k"], .string("1"))
        XCTAssertEqual(try json(get("/sessions/r/versions/2"))["slots"]?["k"], .string("2"), "history is not rewritten")
        XCTAssertEqual(try json(post(#"{"conversationId":"r","channel":"y","eventId":"b"}"#))["status"], .string("duplicate"))
        func rollback(_ body: String) throws -> RawHTTPClient.Response {
            try RawHTTPClient.request(
                port: port, method: "POST", path: "/sessions/r/rollback", headers: [("Content-Type", "application/json")],
                body: Array(body.utf8))
        }
        XCTAssertEqual(try rollback(#"{"toVersion":9}"#).status, 404)
        XCTAssertEqual(try rollback(#"{"toVersion":"1"}"#).status, 400)
        XCTAssertEqual(try rollback(#"{"toVersion":1.5}"#).status, 400)
        // An integral number in any notation is an integer (proto3 JSON, JSON Schema).
        let integral = try rollback(#"{"toVersion":2.0}"#)
        XCTAssertEqual(integral.status, 200, integral.text)
        XCTAssertEqual(try json(integral)["slots"]?["k"], .string("2"))

        XCTAssertEqual(try RawHTTPClient.request(port: port, method: "DELETE", path: "/sessions/r").status, 204)
        XCTAssertEqual(try get("/sessions/r").status, 404)
        // A deleted conversation is gone from every read, paged or not.
        XCTAssertEqual(try get("/sessions/r/versions").status, 404)
        XCTAssertEqual(try get("/sessions/r/versions?before=3").status, 404)
        XCTAssertEqual(try get("/sessions/r/versions/1").status, 404)
        XCTAssertEqual(try json(post(#"{"conversationId":"r","channel":"x","eventId":"a"}"#))["sessionVersion"], .number("1"))
    }

    func testStoreLocked_503WithRetryAfter_thenRecovers() throws {
        try start(["SQLITE_BUSY_TIMEOUT_MS": "100"])
        let path = directory.appendingPathComponent("sessions.sqlite").path
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &db), SQLITE_OK)
        defer { sqlite3_close(db) }
        XCTAssertEqual(sqlite3_exec(db, "BEGIN EXCLUSIVE", nil, nil, nil), SQLITE_OK)
        let started = Date()
        let r = try post(#"{"conversationId":"c","channel":"x"}"#)
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.header("Retry-After"), "1")
        XCTAssertEqual(try json(r)["error"]?["code"], .string("store_unavailable"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
        XCTAssertEqual(try get("/health").status, 200)
        // WAL: a writer holding the lock does not stop readers, so the store still answers.
        XCTAssertEqual(try get("/ready").status, 200)
        sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
        XCTAssertEqual(try get("/ready").status, 200)
        XCTAssertEqual(try post(#"{"conversationId":"c","channel":"x"}"#).status, 200)
    }

    func testCorruptLatestSnapshot_nextVersionFromEmpty_andLogged() throws {
        try start()
        try post(#"{"conversationId":"bad","channel":"x","slots":{"old":"1"}}"#)
        let path = directory.appendingPathComponent("sessions.sqlite").path
        var db: OpaquePointer?
        sqlite3_open(path, &db)
        sqlite3_exec(db, "UPDATE snapshots SET snapshot = x'FFFF' WHERE conversation_id = 'bad'", nil, nil, nil)
        sqlite3_close(db)
        let r = try json(post(#"{"conversationId":"bad","channel":"x","slots":{"new":"2"}}"#))
        XCTAssertEqual(r["sessionVersion"], .number("2"))
        XCTAssertEqual(r["context"]?["old"], nil)
        XCTAssertEqual(r["context"]?["new"], .string("2"))
        XCTAssertEqual(try get("/sessions/bad/versions/1").status, 500, "left untouched, reported")
        let logged = logs.lines.filter { $0.contains("corrupt stored snapshot") }
        XCTAssertFalse(logged.isEmpty)
        XCTAssertTrue(logged[0].contains(#""conversation_id":"bad""#) && logged[0].contains(#""version":1"#))
    }

    func testRestartKeepsVersions() throws {
        try start()
        let path = directory.appendingPathComponent("sessions.sqlite").path
        try post(#"{"conversationId":"c","channel":"x"}"#)
        XCTAssertTrue(app.stop())
        app = nil
        try start(["SQLITE_PATH": path])
        XCTAssertEqual(try json(post(#"{"conversationId":"c","channel":"y"}"#))["sessionVersion"], .number("2"))
    }

    func testHeadHealthAndReady() throws {
        try start()
        XCTAssertEqual(try get("/health").text, #"{"status":"ok"}"#)
        XCTAssertEqual(try RawHTTPClient.request(port: port, method: "HEAD", path: "/health").status, 200)
        XCTAssertEqual(try json(get("/ready"))["status"], .string("ready"))
    }
}

/// Collects log lines written by the service under test.
final class LogCapture: Sendable {
    private let storage = Locked<[String]>([])
    func append(_ bytes: [UInt8]) { storage.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
    var lines: [String] { storage.withLock { $0 } }
}

/// The webhook on a DynamoDB endpoint that only throttles: a clean, quick 503.
final class WebhookDynamoDBFaultTests: XCTestCase {
    func testThrottledStore_503WithRetryAfterWithinDeadline() throws {
        struct Throttle: HTTPHandler {
            func handle(_ request: HTTPRequest) -> HTTPResponse {
                HTTPResponse(
                    status: .badRequest, headers: [("Content-Type", "application/x-amz-json-1.0")],
                    body: Array(#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#.utf8))
            }
        }
        var stubConfig = HTTPServerConfiguration()
        stubConfig.host = "127.0.0.1"
        stubConfig.port = 0
        let stub = try HTTPServer(configuration: stubConfig, handler: Throttle())
        try stub.start()
        defer { stub.shutdown() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "{}".write(to: dir.appendingPathComponent("c.json"), atomically: true, encoding: .utf8)
        let config = try ServiceConfiguration.load(
            environment: [
                "HOST": "127.0.0.1", "PORT": "0", "SESSION_STORE": "dynamodb", "AWS_ENDPOINT_URL": "http://127.0.0.1:\(stub.port)",
                "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "DYNAMODB_DEADLINE_MS": "600",
            ], configFile: dir.appendingPathComponent("c.json").path)
        let app = try ServiceApp(configuration: config, logger: Logger(level: .error) { _ in })
        try app.start()
        defer { _ = app.stop() }
        let started = Date()
        let r = try RawHTTPClient.request(
            port: app.server.port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", "application/json")],
            body: Array(#"{"conversationId":"c","channel":"x"}"#.utf8))
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.header("Retry-After"), "1")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.5)
        XCTAssertEqual(try RawHTTPClient.request(port: app.server.port, path: "/ready").status, 503)
        XCTAssertEqual(try RawHTTPClient.request(port: app.server.port, path: "/health").status, 200)
        // The operator sees the retries that were spent, by store and operation.
        let metrics = try RawHTTPClient.request(port: app.server.port, path: "/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix(#"cognigy_session_store_retries_total{store="dynamodb",operation="Query"}"#) }
        XCTAssertGreaterThan(Double(line?.split(separator: " ").last ?? "") ?? 0, 0, metrics)
        XCTAssertTrue(metrics.contains("# TYPE cognigy_session_store_retries_total counter"))
    }
}

/// The webhook when DynamoDB refuses the service's credentials: 500 store_auth_failed (not
/// a retryable 503), an error log line, /ready 503, and recovery by itself once the
/// credential source hands out credentials DynamoDB accepts. No static keys: the
/// credentials come from a container endpoint, as on ECS.
final class WebhookStoreAuthTests: XCTestCase {
    /// DynamoDB accepting only the access key ids in `accepted`.
    final class KeyChecking: HTTPHandler {
        let accepted = Locked<Set<String>>([])
        func handle(_ request: HTTPRequest) -> HTTPResponse {
            let auth = request.headers["authorization"] ?? ""
            let key = auth.components(separatedBy: "Credential=").dropFirst().first?.split(separator: "/").first.map(String.init) ?? ""
            let json = [("Content-Type", "application/x-amz-json-1.0")]
            guard accepted.withLock({ $0.contains(key) }) else {
                return HTTPResponse(
                    status: .badRequest, headers: json,
                    body: Array(#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#.utf8))
            }
            if request.headers["x-amz-target"] == "DynamoDB_20120810.DescribeTable" {
                return HTTPResponse(status: .ok, headers: json, body: Array(#"{"Table":{"TableStatus":"ACTIVE"}}"#.utf8))
            }
            return HTTPResponse(status: .ok, headers: json, body: Array(#"{"Items":[],"Count":0}"#.utf8))
        }
    }

    /// A container credential endpoint handing out "K<generation>".
    final class Container: HTTPHandler {
        let generation = Locked(1)
        func handle(_ request: HTTPRequest) -> HTTPResponse {
            guard request.headers["authorization"] == "container-token" else { return HTTPResponse(status: .unauthorized) }
            let n = generation.withLock { $0 }
            let f = ISO8601DateFormatter()
            let expiration = f.string(from: Date().addingTimeInterval(3600))
            return HTTPResponse(
                status: .ok, headers: [("Content-Type", "application/json")],
                body: Array(#"{"AccessKeyId":"K\#(n)","SecretAccessKey":"s\#(n)","Token":"t\#(n)","Expiration":"\#(expiration)"}"#.utf8))
        }
    }

    private func serve(_ handler: any HTTPHandler) throws -> HTTPServer {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.drainTimeoutMs = 100
        let server = try HTTPServer(configuration: config, handler: handler)
        try server.start()
        return server
    }

    func testRefusedCredentials_500StoreAuthFailed_ready503_thenRecovers() throws {
        let dynamo = KeyChecking()
        dynamo.accepted.withLock { $0 = ["K2"] }
        let container = Container()
        let dynamoServer = try serve(dynamo)
        defer { dynamoServer.shutdown() }
        let containerServer = try serve(container)
        defer { containerServer.shutdown() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "{}".write(to: dir.appendingPathComponent("c.json"), atomically: true, encoding: .utf8)
        let config = try ServiceConfiguration.load(
            environment: [
                "HOST": "127.0.0.1", "PORT": "0", "SESSION_STORE": "dynamodb", "AWS_ENDPOINT_URL": "http://127.0.0.1:\(dynamoServer.port)",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:\(containerServer.port)/creds",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-token", "AWS_EC2_METADATA_DISABLED": "true", "DYNAMODB_DEADLINE_MS": "1000",
            ], configFile: dir.appendingPathComponent("c.json").path)
        XCTAssertNil(config.awsAccessKeyId)
        let logs = LogCapture()
        let app = try ServiceApp(configuration: config, logger: Logger(level: .info) { logs.append($0) })
        try app.start()
        defer { _ = app.stop() }
        let port = app.server.port
        func post() throws -> RawHTTPClient.Response {
            try RawHTTPClient.request(
                port: port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", "application/json")],
                body: Array(#"{"conversationId":"c","channel":"x"}"#.utf8))
        }

        let refused = try post()
        XCTAssertEqual(refused.status, 500, refused.text)
        XCTAssertNil(refused.header("Retry-After"), "retrying in a second does not help")
        XCTAssertEqual(try JSONParser.parse(refused.body)["error"]?["code"], .string("store_auth_failed"))
        XCTAssertFalse(refused.text.contains("K1"), "no credential detail in the answer")
        let errorLine = logs.lines.first { $0.contains(#""level":"error""#) && $0.contains("store authentication failed") }
        XCTAssertNotNil(errorLine, logs.lines.joined())
        XCTAssertTrue(errorLine?.contains("ExpiredTokenException") ?? false, errorLine ?? "")
        XCTAssertFalse(logs.lines.joined().contains("s1"), "the secret is never logged")

        let notReady = try RawHTTPClient.request(port: port, path: "/ready")
        XCTAssertEqual(notReady.status, 503)
        XCTAssertEqual(try JSONParser.parse(notReady.body)["error"]?["code"], .string("store_auth_failed"))
        let metrics = try RawHTTPClient.request(port: port, path: "/metrics").text
        XCTAssertTrue(metrics.contains(#"cognigy_session_store_errors_total{store="dynamodb",operation="latest",kind="auth"} 1"#), metrics)

        // The role's credentials are renewed at the source: no restart, no operator.
        container.generation.withLock { $0 = 2 }
        let recovered = try post()
        XCTAssertEqual(recovered.status, 200, recovered.text)
        XCTAssertEqual(try RawHTTPClient.request(port: port, path: "/ready").status, 200)
    }
}
