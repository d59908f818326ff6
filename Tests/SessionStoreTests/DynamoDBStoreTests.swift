import DialogWire
import Foundation
import HTTPClient
import TestSupport
import XCTest
@testable import SessionStore

/// Where the DynamoDB-compatible server is (scripts/test.sh starts moto and sets it).
enum Moto {
    static var endpoint: String? { ProcessInfo.processInfo.environment["MOTO_ENDPOINT"] }

    /// Skips cleanly under plain `swift test`; fails when scripts/test.sh promised a server.
    static func requireEndpoint() throws -> String {
        if let endpoint { return endpoint }
        if ProcessInfo.processInfo.environment["REQUIRE_DYNAMODB"] == "1" {
            XCTFail("REQUIRE_DYNAMODB=1 but MOTO_ENDPOINT is not set")
        }
        throw XCTSkip("DynamoDB tests need a DynamoDB-compatible server: run scripts/test.sh (it starts moto) or set MOTO_ENDPOINT")
    }

    /// MOTO_SESSION_TOKEN: sign as temporary credentials (scripts/test.sh runs this suite
    /// through scripts/sigv4_proxy.py with and without one).
    static func client(_ endpoint: String) -> DynamoDBClient {
        DynamoDBClient(
            configuration: .init(
                endpoint: endpoint, region: "us-east-1", accessKeyId: "test", secretAccessKey: "test",
                sessionToken: ProcessInfo.processInfo.environment["MOTO_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }))
    }

    /// A new table with TTL on, so every test starts empty.
    static func freshStore(_ endpoint: String) throws -> DynamoDBStore {
        let store = DynamoDBStore(client: client(endpoint), table: "t-\(UUID().uuidString.prefix(12))")
        try store.createTableIfMissing()
        return store
    }
}

/// The whole store contract again, on DynamoDB (moto): one suite, two stores.
final class DynamoDBStoreTests: SessionStoreContractTests {
    private var table: String?

    override func makeStore() throws -> any SessionStore {
        let endpoint = try Moto.requireEndpoint()
        // Two makeStore() calls in one test share the table (the concurrency test needs that).
        if let table {
            return DynamoDBStore(client: Moto.client(endpoint), table: table)
        }
        let store = try Moto.freshStore(endpoint)
        table = store.table
        return store
    }

    func testSweepIsLeftToDynamoDBTTL() throws {
        let store = try makeStore() as! DynamoDBStore
        XCTAssertEqual(try store.sweepExpired(now: Int64.max), 0)
        let ttl = try store.client.call("DescribeTimeToLive", Array(#"{"TableName":"\#(store.table)"}"#.utf8))
        XCTAssertEqual(ttl["TimeToLiveDescription"]?["AttributeName"], .string("ExpiresAt"))
        XCTAssertEqual(ttl["TimeToLiveDescription"]?["TimeToLiveStatus"], .string("ENABLED"))
    }

    override func testSweepExpired() throws {
        // Expiry is DynamoDB's job (TTL on ExpiresAt); see testSweepIsLeftToDynamoDBTTL.
        _ = try makeStore()
    }

    func testQueryPageItems_longListingsPageInSmallRequests() throws {
        let shared = try makeStore() as! DynamoDBStore
        let store = DynamoDBStore(client: shared.client, table: shared.table, queryPageItems: 2)
        for v in 1...5 { try store.insertOnTop(Self.snapshot("paged", Int64(v))) }
        var before = store.client.requestCounts
        XCTAssertEqual(try store.versions("paged", limit: 5, before: nil).map(\.version), [5, 4, 3, 2, 1])
        XCTAssertEqual(store.client.requestCounts, before.merging(["Query": 3]) { $0 + $1 }, "2 + 2 + 1 items")
        before = store.client.requestCounts
        XCTAssertEqual(try store.versions("paged", limit: 3, before: 5).map(\.version), [4, 3, 2])
        XCTAssertEqual(store.client.requestCounts, before.merging(["Query": 2]) { $0 + $1 })
        // Erasure reads keys only, in pages of its own size: one Query finds all five.
        before = store.client.requestCounts
        XCTAssertEqual(try store.deleteConversation("paged"), 5)
        XCTAssertEqual(store.client.requestCounts["Query"], before["Query", default: 0] + 2, "the keys, then nothing left")
    }

    func testCreateTableIsIdempotent() throws {
        let store = try makeStore() as! DynamoDBStore
        XCTAssertNoThrow(try store.createTableIfMissing())
    }

    func testMissingTable_isUnavailableNamingTheTable() throws {
        let endpoint = try Moto.requireEndpoint()
        let store = DynamoDBStore(client: Moto.client(endpoint), table: "no-such-table")
        XCTAssertThrowsError(try store.latest("c")) { error in
            guard case .unavailable(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("no-such-table"), why)
        }
        XCTAssertThrowsError(try store.checkReady())
    }

    func testOneEventCostsOneQueryAndOnePut() throws {
        let store = try makeStore() as! DynamoDBStore
        let before = store.client.requestCounts
        _ = try store.latest("c")
        try store.insertOnTop(Self.snapshot("c", 1))
        let after = store.client.requestCounts
        XCTAssertEqual((after["Query"] ?? 0) - (before["Query"] ?? 0), 1)
        XCTAssertEqual((after["PutItem"] ?? 0) - (before["PutItem"] ?? 0), 1)
    }

    /// A slot named "" cannot be a DynamoDB map key (attribute names are at least one
    /// character; moto even mangles the map). It is kept in Snapshot and read back whole,
    /// by Query and by GetItem.
    func testEmptySlotName_roundTripsThroughSnapshot() throws {
        let store = try makeStore()
        try store.insertOnTop(Self.snapshot("e", 1, slots: ["": "x", "a": "1"]))
        for stored in [try store.latest("e"), try store.version("e", 1), try store.versions("e", limit: 5, before: nil).first] {
            XCTAssertEqual(try XCTUnwrap(stored).snapshot.get().slots, ["": "x", "a": "1"])
        }
    }

    /// Slots are stored twice (Snapshot and the Slots map), so an item can pass DynamoDB's
    /// 400 KB while the snapshot is under MAX_SNAPSHOT_BYTES: refused before sending, as
    /// `.tooLarge`, never as a ValidationException.
    func testItemOverFourHundredKB_tooLargeBeforeSending() throws {
        let store = try makeStore() as! DynamoDBStore
        let big = Self.snapshot("big", 1, slots: ["a": String(repeating: "x", count: 210_000)])
        let sent = store.client.requestCounts["PutItem"] ?? 0
        XCTAssertThrowsError(try store.insertOnTop(big)) { error in
            guard case .tooLarge(let bytes, let limit)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertEqual(limit, 409_600)
            XCTAssertGreaterThan(bytes, 420_000)
        }
        XCTAssertEqual(store.client.requestCounts["PutItem"] ?? 0, sent, "nothing sent")
        // Just under the limit is stored.
        try store.insertOnTop(Self.snapshot("big", 1, slots: ["a": String(repeating: "x", count: 200_000)]))
        XCTAssertEqual(try store.latest("big")?.version, 1)
    }

    func testDeleteManyVersions_pagesAndBatches() throws {
        let store = try makeStore()
        for v in 1...130 { try store.insertOnTop(Self.snapshot("many", Int64(v))) }
        XCTAssertEqual(try store.deleteConversation("many"), 130)
        XCTAssertNil(try store.latest("many"))
    }

    /// What the AWS CLI / boto3 see: SPEC's attribute names and types, and a Snapshot that
    /// protoc-generated code decodes.
    func testItemsReadableByBoto3AndProtoc() throws {
        let endpoint = try Moto.requireEndpoint()
        let env = ProcessInfo.processInfo.environment
        guard let python = env["CHECK_PYTHON"], let path = env["CHECK_PYTHONPATH"] else {
            throw XCTSkip("run through scripts/test.sh (it prepares boto3 and protoc-generated code)")
        }
        let store = try makeStore() as! DynamoDBStore
        var s = Self.snapshot("conv-1", 1, slots: ["origin": "JFK", "n": "2"])
        s.previousChannel = "web-chat"
        s.channels["whatsapp"] = ChannelState(userId: "u1", sessionId: "s1", lastSeen: 7)
        try store.insertOnTop(s)

        let (status, output) = try Subprocess.run(
            python, ["scripts/check_dynamodb_items.py", endpoint, store.table, "conv-1"],
            environment: env.merging(["PYTHONPATH": path]) { $1 })
        XCTAssertEqual(status, 0)
        let line = try JSONParser.parse(output)
        XCTAssertEqual(
            line["types"],
            .object([
                JSONMember("Channel", .string("S")), JSONMember("ConversationId", .string("S")),
                JSONMember("ExpiresAt", .string("N")), JSONMember("Intent", .string("S")),
                JSONMember("PreviousChannel", .string("S")), JSONMember("SessionVersion", .string("N")),
                JSONMember("Slots", .string("M")), JSONMember("Snapshot", .string("B")),
                JSONMember("Timestamp", .string("N")), JSONMember("UpdatedAt", .string("N")),
            ]))
        XCTAssertEqual(line["slotTypes"], .array([.string("S")]))
        XCTAssertEqual(line["snapshot"]?["slots"]?["origin"], .string("JFK"))
        XCTAssertEqual(line["snapshot"]?["previous_channel"], .string("web-chat"))
        XCTAssertEqual(line["snapshot"]?["session_version"], .number("1"))
        XCTAssertEqual(line["snapshot"]?["channels"]?["whatsapp"]?["session_id"], .string("s1"))
        XCTAssertEqual(line["snapshot"]?["expires_at"], line["expiresAt"])
    }
}

final class AttributeValueTests: XCTestCase {
    func testRoundTripEveryType() throws {
        let value = AttributeValue.m([
            "s": .s("x\"y"), "n": .n("-1.5e3"), "b": .b([0, 1, 255]), "bool": .bool(true), "null": .null,
            "l": .l([.s("a"), .n("1")]), "ss": .ss(["a", "b"]), "ns": .ns(["1"]), "bs": .bs([[1], [2, 3]]),
        ])
        var w = JSONWriter()
        value.write(to: &w)
        XCTAssertTrue(w.string.contains(#""b":{"B":"AAH/"}"#), w.string)
        XCTAssertEqual(try AttributeValue(json: try JSONParser.parse(w.bytes)), value)
    }

    func testRejectsMalformed() {
        for bad in [#"{}"#, #"{"S":1}"#, #"{"N":"abc"}"#, #"{"B":"!!"}"#, #"{"X":"1"}"#, #"{"S":"a","N":"1"}"#, #"{"BOOL":"yes"}"#] {
            XCTAssertThrowsError(try AttributeValue(json: try JSONParser.parse(Array(bad.utf8))), bad)
        }
    }

    func testItemMatchesSpec() {
        var s = SessionSnapshot()
        s.conversationId = "c"
        s.sessionVersion = 3
        s.slots = ["a": "1"]
        let item = DynamoDBStore.item(s)
        XCTAssertEqual(item["SessionVersion"], .n("3"))
        XCTAssertEqual(item["Slots"], .m(["a": .s("1")]))
        XCTAssertEqual(item["Snapshot"], .b(s.serializedBytes()))
        XCTAssertEqual(Set(item.keys), ["ConversationId", "SessionVersion", "Channel", "PreviousChannel", "Intent", "Slots", "Timestamp", "UpdatedAt", "ExpiresAt", "Snapshot"])
        s.slots[""] = "only in Snapshot"
        XCTAssertEqual(DynamoDBStore.item(s)["Slots"], .m(["a": .s("1")]))
    }
}

final class DynamoDBErrorTests: XCTestCase {
    func testParse_typeSuffixAndMessageSpellings() {
        let a = DynamoDBError.parse(
            status: 400,
            body: Array(#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#.utf8))
        XCTAssertEqual(a, DynamoDBError(code: "ConditionalCheckFailedException", message: "The conditional request failed", status: 400))
        XCTAssertFalse(a.isRetryable)
        let b = DynamoDBError.parse(status: 400, body: Array(#"{"__type":"com.amazon.coral.validate#ValidationException","Message":"bad"}"#.utf8))
        XCTAssertEqual(b.code, "ValidationException")
        XCTAssertEqual(b.message, "bad")
        let c = DynamoDBError.parse(status: 503, body: Array("<html>busy</html>".utf8))
        XCTAssertEqual(c.code, "InternalServerError")
        XCTAssertTrue(c.isRetryable)
    }

    func testRetryable() {
        for code in ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "InternalServerError", "Transport"] {
            XCTAssertTrue(DynamoDBError(code: code, message: "", status: 400).isRetryable, code)
        }
        for code in ["ValidationException", "ResourceNotFoundException", "ConditionalCheckFailedException", "AccessDeniedException"] {
            XCTAssertFalse(DynamoDBError(code: code, message: "", status: 400).isRetryable, code)
        }
    }
}
