import DialogWire
import Foundation
import XCTest
@testable import SessionStore

/// The whole outbox contract again, on DynamoDB (moto): one suite, two backends.
final class DynamoDBRestoreOutboxTests: RestoreOutboxTests {
    private var table: String?

    override func makeQueue(protector: (any FieldProtector)? = nil) throws -> any RestoreQueue {
        let endpoint = try Moto.requireEndpoint()
        // Every makeQueue() of one test shares its table (its own client each, as replicas).
        if let table { return DynamoDBRestoreOutbox(client: Moto.client(endpoint), table: table, protector: protector) }
        let queue = DynamoDBRestoreOutbox(client: Moto.client(endpoint), table: "o-\(UUID().uuidString.prefix(12))", protector: protector)
        try queue.createTableIfMissing()
        table = queue.table.name
        return queue
    }

    /// Every item of the table, as DynamoDB answers a Scan.
    override func storedText() throws -> String {
        let queue = try makeQueue() as! DynamoDBRestoreOutbox
        let answer = try queue.table.client.call("Scan", Array(#"{"TableName":"\#(queue.table.name)"}"#.utf8))
        var w = JSONWriter(capacity: 1024)
        w.value(answer)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    func testCreateTable_dueIndexAndTTLOnExpiresAt_idempotent() throws {
        let queue = try makeQueue() as! DynamoDBRestoreOutbox
        XCTAssertNoThrow(try queue.createTableIfMissing())
        let described = try queue.table.client.call("DescribeTable", Array(#"{"TableName":"\#(queue.table.name)"}"#.utf8))
        guard case .array(let indexes)? = described["Table"]?["GlobalSecondaryIndexes"], let index = indexes.first else {
            return XCTFail("no index: \(described)")
        }
        XCTAssertEqual(index["IndexName"], .string("DueIndex"))
        guard case .array(let keys)? = index["KeySchema"], keys.count == 2 else { return XCTFail("\(index)") }
        XCTAssertEqual(keys[0]["AttributeName"], .string("Shard"))
        XCTAssertEqual(keys[1]["AttributeName"], .string("NextAttemptMs"))
        let ttl = try queue.table.client.call("DescribeTimeToLive", Array(#"{"TableName":"\#(queue.table.name)"}"#.utf8))
        XCTAssertEqual(ttl["TimeToLiveDescription"]?["AttributeName"], .string("ExpiresAt"))
        XCTAssertEqual(ttl["TimeToLiveDescription"]?["TimeToLiveStatus"], .string("ENABLED"))
    }

    /// The item as README "Outbox on DynamoDB" describes it: TTL in seconds, rounded up.
    func testItemLayout() throws {
        let queue = try makeQueue() as! DynamoDBRestoreOutbox
        try enqueue(queue, target(), ttlMs: 1_500)
        let answer = try queue.table.client.call(
            "GetItem", Array(#"{"TableName":"\#(queue.table.name)","Key":{"ConversationId":{"S":"c1"},"SessionKey":{"S":"wa-1"}}}"#.utf8))
        let item = try AttributeValue.map(try XCTUnwrap(answer["Item"]))
        XCTAssertEqual(item["ExpiresAtMs"], .int(now + 1_500))
        XCTAssertEqual(item["ExpiresAt"], .int(now / 1000 + 2))
        XCTAssertEqual(item["NextAttemptMs"], .int(now + 5_000), "leased: out of the due range until the lease ends")
        XCTAssertEqual(item["LeaseOwner"], .s("a"))
        XCTAssertEqual(item["SessionId"], .s("wa-1"))
        let shard = try XCTUnwrap(item["Shard"]?.int64Value)
        XCTAssertTrue((0..<Int64(DynamoDBRestoreOutbox.shardCount)).contains(shard))
    }

    /// A poll that finds nothing costs one Query per shard; a background delivery one
    /// UpdateItem (the lease) and one DeleteItem (done) on top of that poll.
    func testRequestsPerPollAndPerDelivery() throws {
        let queue = try makeQueue() as! DynamoDBRestoreOutbox
        var before = queue.table.client.requestCounts
        XCTAssertNil(try queue.claimNext(nowMs: now, leaseMs: 5_000, owner: "b"))
        XCTAssertEqual(queue.table.client.requestCounts, before.merging(["Query": DynamoDBRestoreOutbox.shardCount]) { $0 + $1 })
        let first = try XCTUnwrap(try enqueue(queue, target(), leaseMs: 0))
        XCTAssertEqual(first.owner, "a")
        before = queue.table.client.requestCounts
        let claim = try XCTUnwrap(try queue.claimNext(nowMs: now + 10_000, leaseMs: 5_000, owner: "b"))
        try queue.complete(claim, nowMs: now + 10_001)
        XCTAssertEqual(
            queue.table.client.requestCounts,
            before.merging(["Query": DynamoDBRestoreOutbox.shardCount, "UpdateItem": 1, "DeleteItem": 1]) { $0 + $1 })
    }

    func testShard_isStableAndSpread() {
        var seen = Set<Int64>()
        for i in 0..<64 {
            let key = DynamoDBRestoreOutbox.EntryKey(conversationId: "c\(i)", sessionKey: "s")
            XCTAssertEqual(DynamoDBRestoreOutbox.shard(key), DynamoDBRestoreOutbox.shard(key))
            seen.insert(DynamoDBRestoreOutbox.shard(key))
        }
        XCTAssertEqual(seen.count, DynamoDBRestoreOutbox.shardCount)
    }

    func testMissingTable_isUnavailableNamingTheTable() throws {
        let queue = DynamoDBRestoreOutbox(client: Moto.client(try Moto.requireEndpoint()), table: "no-such-outbox")
        XCTAssertThrowsError(try queue.claimNext(nowMs: now, leaseMs: 1, owner: "a")) { error in
            guard case .unavailable(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("no-such-outbox"), why)
        }
    }
}
