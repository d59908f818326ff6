import Crypto
import DialogWire
import Foundation
import TestSupport
import XCTest
@testable import SessionService

/// SPEC "PII encryption at rest", through the real app on SQLite.
final class EncryptionTests: XCTestCase {
    var directory: URL!
    var app: ServiceApp?
    var port: Int { app!.server.port }
    let iban = "DE89370400440532013000"

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("enc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "{}".write(to: directory.appendingPathComponent("c.json"), atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        _ = app?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func start(keys: String, slots: String = "*", extra: [String: String] = [:]) throws {
        _ = app?.stop()
        var env = [
            "HOST": "127.0.0.1", "PORT": "0", "SQLITE_PATH": directory.appendingPathComponent("data/s.sqlite").path,
            "OUTBOX_PATH": directory.appendingPathComponent("data/o.sqlite").path,
            "ENCRYPTION_KEYS": keys, "ENCRYPTED_SLOTS": slots, "LOG_LEVEL": "error",
        ]
        for (k, v) in extra { env[k] = v }
        let config = try ServiceConfiguration.load(environment: env, configFile: directory.appendingPathComponent("c.json").path)
        let started = try ServiceApp(configuration: config, logger: Logger(level: .error) { _ in })
        try started.start()
        app = started
    }

    @discardableResult
    func post(_ body: String) throws -> RawHTTPClient.Response {
        try RawHTTPClient.request(
            port: port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", "application/json")], body: Array(body.utf8))
    }

    func get(_ path: String) throws -> RawHTTPClient.Response { try RawHTTPClient.request(port: port, method: "GET", path: path) }

    /// Every byte of the SQLite files, WAL and shared memory included.
    func storedBytes(_ file: String = "data/s.sqlite") throws -> Data {
        var all = Data()
        for suffix in ["", "-wal", "-shm"] {
            let path = directory.appendingPathComponent(file + suffix).path
            if let d = FileManager.default.contents(atPath: path) { all.append(d) }
        }
        return all
    }

    func testNoPlaintextReachesTheFiles_readsSeePlaintext() throws {
        let k1 = try generateKeyLine(id: "k1")
        try start(keys: k1)
        let event = #"{"conversationId":"c1","channel":"whatsapp","userId":"+491701234567","sessionId":"wa-session-9","slots":{"iban":"\#(iban)","seat":"12A"}}"#
        let r = try post(event)
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertTrue(r.text.contains(iban), "the webhook answer sees plaintext")
        let read = try get("/sessions/c1")
        XCTAssertEqual(read.status, 200)
        let json = try JSONParser.parse(read.body)
        XCTAssertEqual(json["slots"]?["iban"], .string(iban))
        XCTAssertEqual(json["channels"]?["whatsapp"]?["userId"], .string("+491701234567"))
        let bytes = try storedBytes()
        XCTAssertFalse(bytes.isEmpty)
        for secret in [iban, "+491701234567", "wa-session-9", "12A"] {
            XCTAssertNil(bytes.range(of: Data(secret.utf8)), "\(secret) is stored in plain text")
        }
        XCTAssertNotNil(bytes.range(of: Data("enc:v1:k1:".utf8)))
        // Files only the service's user can read.
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("data/s.sqlite").path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let folder = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("data").path)
        XCTAssertEqual((folder[.posixPermissions] as? NSNumber)?.intValue, 0o700)
    }

    /// Rotation: the new key first; old values still read; new versions use the new key.
    /// Without the old key, every read and every write building on it answers 500.
    func testRotation_thenMissingKey500NothingWritten() throws {
        let k1 = try generateKeyLine(id: "k1"), k2 = try generateKeyLine(id: "k2")
        try start(keys: k1)
        XCTAssertEqual(try post(#"{"conversationId":"c1","channel":"web","slots":{"iban":"\#(iban)"}}"#).status, 200)
        try start(keys: "\(k2),\(k1)")
        XCTAssertEqual(try JSONParser.parse(get("/sessions/c1").body)["slots"]?["iban"], .string(iban))
        XCTAssertEqual(try post(#"{"conversationId":"c2","channel":"web","slots":{"card":"4111"}}"#).status, 200)
        XCTAssertNotNil(try storedBytes().range(of: Data("enc:v1:k2:".utf8)))
        try start(keys: k2)
        let read = try get("/sessions/c1")
        XCTAssertEqual(read.status, 500)
        XCTAssertEqual(try JSONParser.parse(read.body)["error"]?["code"], .string("encryption_key_unavailable"))
        let write = try post(#"{"conversationId":"c1","channel":"web","slots":{"x":"1"}}"#)
        XCTAssertEqual(write.status, 500)
        XCTAssertEqual(try JSONParser.parse(write.body)["error"]?["code"], .string("encryption_key_unavailable"))
        try start(keys: "\(k2),\(k1)")
        XCTAssertEqual(try JSONParser.parse(get("/sessions/c1").body)["sessionVersion"], .number("1"), "nothing was written")
        XCTAssertEqual(try JSONParser.parse(get("/sessions/c2").body)["slots"]?["card"], .string("4111"))
    }

    func testEncryptedSlotsPattern_leavesOthersPlain() throws {
        try start(keys: try generateKeyLine(id: "k1"), slots: "iban,card*")
        XCTAssertEqual(try post(#"{"conversationId":"c1","channel":"web","slots":{"iban":"\#(iban)","cardNumber":"4111","seat":"12A"}}"#).status, 200)
        let bytes = try storedBytes()
        XCTAssertNil(bytes.range(of: Data(iban.utf8)))
        XCTAssertNil(bytes.range(of: Data("4111".utf8)))
        XCTAssertNotNil(bytes.range(of: Data("12A".utf8)), "not listed in ENCRYPTED_SLOTS")
    }

    func testBadKeys_stopStartUpNamingTheVariable() throws {
        let file = directory.appendingPathComponent("c.json").path
        for bad in ["k1:c2hvcnQ=", "k1", "k1:kms:", ":AAAA"] {
            XCTAssertThrowsError(try ServiceConfiguration.load(environment: ["ENCRYPTION_KEYS": bad], configFile: file), bad) {
                XCTAssertEqual(($0 as? ConfigError)?.variable, "ENCRYPTION_KEYS", bad)
            }
        }
        XCTAssertThrowsError(try ServiceConfiguration.load(environment: ["ENCRYPTED_SLOTS": "a*b"], configFile: file)) {
            XCTAssertEqual(($0 as? ConfigError)?.variable, "ENCRYPTED_SLOTS")
        }
    }

    /// The outbox at rest holds the restore target's ids sealed too; delivery sees them plain.
    func testQueuedRestore_targetsSealedAtRest() throws {
        let fake = try FakeCognigy()
        defer { fake.stop() }
        fake.set(.down)
        try start(keys: try generateKeyLine(id: "k1"), extra: [
            "COGNIGY_API_BASE_URL": fake.baseURL, "COGNIGY_API_KEY": "key", "RESTORE_INLINE_TIMEOUT_MS": "300",
        ])
        XCTAssertEqual(try post(#"{"conversationId":"c1","channel":"web","slots":{"iban":"\#(iban)"}}"#).status, 200)
        let r = try post(#"{"conversationId":"c1","channel":"whatsapp","userId":"+491701234567","sessionId":"wa-session-9"}"#)
        XCTAssertEqual(try JSONParser.parse(r.body)["restore"], .string("queued"))
        let outbox = try storedBytes("data/o.sqlite")
        XCTAssertFalse(outbox.isEmpty)
        for secret in ["+491701234567", "wa-session-9", iban] {
            XCTAssertNil(outbox.range(of: Data(secret.utf8)), "\(secret) is in the outbox in plain text")
        }
        fake.set(.ok)
        let deadline = Date().addingTimeInterval(10)
        while fake.injects.isEmpty && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(fake.injects.first?.sessionId, "wa-session-9")
        XCTAssertTrue(fake.injects.first?.body.contains("+491701234567") ?? false)
        XCTAssertTrue(fake.injects.first?.body.contains(iban) ?? false)
    }
}
