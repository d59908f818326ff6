import AWSCredentials
import Crypto
import DialogWire
import Foundation
import KMS
import SessionStore
import TestSupport
import XCTest
@testable import SessionService

/// `keyId:kms:<CiphertextBlob>` keys, unwrapped at start through KMS `Decrypt`, against
/// moto's KMS (scripts/test.sh starts moto; it serves KMS on the DynamoDB port).
final class KMSKeyTests: XCTestCase {
    var directory: URL!
    var app: ServiceApp?

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kms-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "{}".write(to: directory.appendingPathComponent("c.json"), atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        _ = app?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func endpoint() throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let e = env["MOTO_ENDPOINT"] { return e }
        if env["REQUIRE_DYNAMODB"] == "1" { XCTFail("REQUIRE_DYNAMODB=1 but MOTO_ENDPOINT is not set") }
        throw XCTSkip("needs moto (KMS): run scripts/test.sh or set MOTO_ENDPOINT")
    }

    /// A data key as an operator makes one: CreateKey, then GenerateDataKey (AES_256).
    func dataKey(_ kms: KMSClient) throws -> (plaintext: [UInt8], blob: [UInt8]) {
        let created = try kms.call("CreateKey", Array(#"{"Description":"cognigy-session test"}"#.utf8))
        guard case .string(let keyId)? = created["KeyMetadata"]?["KeyId"] else { throw XCTSkip("moto answered no KeyId") }
        let generated = try kms.call("GenerateDataKey", Array(#"{"KeyId":"\#(keyId)","KeySpec":"AES_256"}"#.utf8))
        guard case .string(let plain)? = generated["Plaintext"], case .string(let blob)? = generated["CiphertextBlob"],
            let p = Data(base64Encoded: plain), let b = Data(base64Encoded: blob)
        else { throw XCTSkip("moto answered no data key") }
        return (Array(p), Array(b))
    }

    /// scripts/test.sh also runs this suite through its SigV4-verifying proxy, with a session token.
    var sessionToken: String? { ProcessInfo.processInfo.environment["MOTO_SESSION_TOKEN"] }

    func config(_ keys: String, _ endpoint: String) throws -> ServiceConfiguration {
        var env = [
            "HOST": "127.0.0.1", "PORT": "0", "SQLITE_PATH": directory.appendingPathComponent("s.sqlite").path,
            "ENCRYPTION_KEYS": keys, "AWS_ENDPOINT_URL_KMS": endpoint, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "LOG_LEVEL": "error",
        ]
        if let sessionToken { env["AWS_SESSION_TOKEN"] = sessionToken }
        return try ServiceConfiguration.load(environment: env, configFile: directory.appendingPathComponent("c.json").path)
    }

    func testKMSKey_unwrappedAtStartAndUsed() throws {
        let endpoint = try endpoint()
        let kms = KMSClient(endpoint: endpoint, region: "us-east-1", credentials: StaticCredentialProvider(accessKeyId: "test", secretAccessKey: "test", sessionToken: sessionToken))
        let key = try dataKey(kms)
        XCTAssertEqual(key.plaintext.count, 32)
        XCTAssertEqual(try kms.decrypt(ciphertextBlob: key.blob), key.plaintext)

        let started = try ServiceApp(
            configuration: try config("k1:kms:\(Data(key.blob).base64EncodedString())", endpoint), logger: Logger(level: .error) { _ in })
        try started.start()
        app = started
        let r = try RawHTTPClient.request(
            port: started.server.port, method: "POST", path: "/webhook/dialog", headers: [("Content-Type", "application/json")],
            body: Array(#"{"conversationId":"c1","channel":"web","slots":{"iban":"DE89370400440532013000"}}"#.utf8))
        XCTAssertEqual(r.status, 200, r.text)
        let stored = try XCTUnwrap(FileManager.default.contents(atPath: directory.appendingPathComponent("s.sqlite").path))
            + (FileManager.default.contents(atPath: directory.appendingPathComponent("s.sqlite-wal").path) ?? Data())
        XCTAssertNil(stored.range(of: Data("DE89370400440532013000".utf8)))
        XCTAssertNotNil(stored.range(of: Data("enc:v1:k1:".utf8)))
        let read = try RawHTTPClient.request(port: started.server.port, method: "GET", path: "/sessions/c1")
        XCTAssertEqual(try JSONParser.parse(read.body)["slots"]?["iban"], .string("DE89370400440532013000"))
    }

    func testBadKMSBlob_stopsStartUpNamingTheVariable() throws {
        let endpoint = try endpoint()
        XCTAssertThrowsError(try ServiceApp(configuration: try config("k1:kms:AAAAAAAA", endpoint), logger: Logger(level: .error) { _ in })) {
            XCTAssertEqual(($0 as? ConfigError)?.variable, "ENCRYPTION_KEYS", "\($0)")
            XCTAssertTrue("\($0)".contains("k1"), "\($0)")
        }
    }
}

/// The DynamoDB item (`Snapshot` and `Slots`) holds no plaintext either: read raw from moto.
final class DynamoDBEncryptionTests: XCTestCase {
    func testDynamoDBItem_holdsNoPlaintext() throws {
        let env = ProcessInfo.processInfo.environment
        guard let endpoint = env["MOTO_ENDPOINT"] else {
            if env["REQUIRE_DYNAMODB"] == "1" { XCTFail("REQUIRE_DYNAMODB=1 but MOTO_ENDPOINT is not set") }
            throw XCTSkip("needs moto: run scripts/test.sh or set MOTO_ENDPOINT")
        }
        let client = DynamoDBClient(
            configuration: .init(endpoint: endpoint, region: "us-east-1", accessKeyId: "test", secretAccessKey: "test",
                                 sessionToken: env["MOTO_SESSION_TOKEN"]))
        let base = DynamoDBStore(client: client, table: "enc-\(UUID().uuidString.prefix(12))")
        try base.createTableIfMissing()
        let protector = try CipherProtector(
            keys: [.key(id: "k1", key: try SymmetricKey(bytes: [UInt8](repeating: 7, count: 32)))], slots: .all)
        let store = EncryptingStore(base, protector: protector)
        var s = SessionSnapshot()
        s.conversationId = "c1"
        s.sessionVersion = 1
        s.channel = "whatsapp"
        s.slots = ["iban": "DE89370400440532013000"]
        s.channels = ["whatsapp": ChannelState(userId: "+491701234567", sessionId: "wa-session-9", lastSeen: 1)]
        s.updatedAt = 1
        s.expiresAt = 4_000_000_000
        _ = try store.insert(s, after: nil)
        let raw = try client.call(
            "GetItem", Array(#"{"TableName":"\#(base.table)","Key":{"ConversationId":{"S":"c1"},"SessionVersion":{"N":"1"}}}"#.utf8))
        var w = JSONWriter()
        w.value(raw)
        let text = w.string
        guard case .string(let snapshotB64)? = raw["Item"]?["Snapshot"]?["B"], let snapshot = Data(base64Encoded: snapshotB64) else {
            return XCTFail("no Snapshot in \(text)")
        }
        for secret in ["DE89370400440532013000", "+491701234567", "wa-session-9"] {
            XCTAssertFalse(text.contains(secret), "\(secret) in the item's JSON")
            XCTAssertNil(snapshot.range(of: Data(secret.utf8)), "\(secret) in the Snapshot bytes")
        }
        XCTAssertTrue(text.contains("enc:v1:k1:"), "the Slots map holds the stored form")
        XCTAssertEqual(try store.latest("c1")?.snapshot.get(), s)
    }
}
