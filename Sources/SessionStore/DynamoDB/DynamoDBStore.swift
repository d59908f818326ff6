import DialogWire
import Foundation

/// Snapshots in DynamoDB: table keys `ConversationId` (S, hash) + `SessionVersion` (N,
/// range), one item per version. The write is PutItem with
/// `attribute_not_exists(ConversationId)`; latest is a consistent Query, newest first,
/// Limit 1. So one event costs one Query and one PutItem on the fast path.
public final class DynamoDBStore: SessionStore {
    public let client: DynamoDBClient
    public let table: String

    public init(client: DynamoDBClient, table: String) {
        self.client = client
        self.table = table
    }

    // MARK: item mapping (SPEC "DynamoDB item")

    static func item(_ s: SessionSnapshot) -> [String: AttributeValue] {
        [
            "ConversationId": .s(s.conversationId),
            "SessionVersion": .int(s.sessionVersion),
            "Channel": .s(s.channel),
            "PreviousChannel": .s(s.previousChannel),
            "Intent": .s(s.intent),
            // DynamoDB attribute names (map keys too) must be at least one character; a slot
            // named "" lives in the Snapshot attribute only.
            "Slots": .m(s.slots.filter { !$0.key.isEmpty }.mapValues { .s($0) }),
            "Timestamp": .int(s.eventTimestamp),
            "UpdatedAt": .int(s.updatedAt),
            "ExpiresAt": .int(s.expiresAt),
            "Snapshot": .b(s.serializedBytes()),
        ]
    }

    /// DynamoDB's item size limit (400 KB, attribute names included).
    public static let maxItemBytes = 400 * 1024

    /// An item's size as DynamoDB meters it: UTF-8 names plus values; a number at most 21
    /// bytes; a map 3 bytes plus 1 per element. An upper bound, so an item we send fits.
    static func itemBytes(_ item: [String: AttributeValue]) -> Int {
        item.reduce(0) { $0 + $1.key.utf8.count + valueBytes($1.value) }
    }

    private static func valueBytes(_ v: AttributeValue) -> Int {
        switch v {
        case .s(let s): return s.utf8.count
        case .n: return 21
        case .b(let b): return b.count
        case .bool, .null: return 1
        case .m(let m): return 3 + m.reduce(0) { $0 + $1.key.utf8.count + valueBytes($1.value) + 1 }
        case .l(let l): return 3 + l.reduce(0) { $0 + valueBytes($1) + 1 }
        case .ss(let a): return a.reduce(0) { $0 + $1.utf8.count }
        case .ns(let a): return a.count * 21
        case .bs(let a): return a.reduce(0) { $0 + $1.count }
        }
    }

    private func stored(_ conversationId: String, _ item: [String: AttributeValue]) throws(StoreError) -> StoredVersion {
        guard let version = item["SessionVersion"]?.int64Value else {
            throw .invalidRequest("item of \(conversationId) in \(table) has no numeric SessionVersion")
        }
        guard let bytes = item["Snapshot"]?.bytesValue else {
            return StoredVersion(conversationId: conversationId, version: version, snapshot: .failure(.truncated))
        }
        return StoredVersion(conversationId: conversationId, version: version, bytes: bytes)
    }

    // MARK: requests

    private func request(_ operation: String, _ build: (inout JSONWriter) -> Void) throws(StoreError) -> JSONValue {
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.key("TableName"); w.value(table)
        build(&w)
        w.endObject()
        do {
            return try client.call(operation, w.bytes)
        } catch {
            throw map(error, operation)
        }
    }

    private func map(_ error: DynamoDBError, _ operation: String) -> StoreError {
        switch error.code {
        case DynamoDBError.resourceNotFound:
            return .unavailable("table \(table) not found (\(operation)); create it or set DYNAMODB_CREATE_TABLE=true")
        case DynamoDBError.validation:
            return .invalidRequest("\(operation) on \(table) rejected: \(error.message)")
        default:
            return .unavailable("\(operation) on \(table): \(error)")
        }
    }

    private static func key(_ w: inout JSONWriter, _ conversationId: String, _ version: Int64) {
        AttributeValue.writeMap(["ConversationId": .s(conversationId), "SessionVersion": .int(version)], to: &w)
    }

    private func items(_ answer: JSONValue) throws(StoreError) -> [[String: AttributeValue]] {
        guard case .array(let list)? = answer["Items"] else { return [] }
        var out: [[String: AttributeValue]] = []
        for element in list {
            do { out.append(try AttributeValue.map(element)) } catch {
                throw .invalidRequest("unreadable item from \(table): \(error)")
            }
        }
        return out
    }

    /// Query newest first with the key condition; pages until `limit` items or the end.
    private func query(
        _ conversationId: String, before: Int64?, limit: Int, projection: String
    ) throws(StoreError) -> [[String: AttributeValue]] {
        var found: [[String: AttributeValue]] = []
        var startKey: JSONValue?
        repeat {
            let answer = try request("Query") { w in
                w.key("KeyConditionExpression")
                w.value(before == nil ? "ConversationId = :c" : "ConversationId = :c AND SessionVersion < :b")
                w.key("ExpressionAttributeValues")
                var values: [String: AttributeValue] = [":c": .s(conversationId)]
                if let before { values[":b"] = .int(before) }
                AttributeValue.writeMap(values, to: &w)
                // Snapshot is a reserved word: project through attribute-name placeholders.
                w.key("ProjectionExpression"); w.value(projection)
                w.key("ExpressionAttributeNames")
                w.beginObject()
                w.key("#v"); w.value("SessionVersion")
                if projection.contains("#s") { w.key("#s"); w.value("Snapshot") }
                w.endObject()
                w.key("ScanIndexForward"); w.value(false)
                w.key("ConsistentRead"); w.value(true)
                w.key("Limit"); w.value(limit - found.count)
                if let startKey { w.key("ExclusiveStartKey"); w.value(startKey) }
            }
            found += try items(answer)
            startKey = answer["LastEvaluatedKey"]
        } while startKey != nil && found.count < limit
        return found
    }

    // MARK: SessionStore

    public func latest(_ conversationId: String) throws(StoreError) -> StoredVersion? {
        guard let item = try query(conversationId, before: nil, limit: 1, projection: "#v, #s").first else {
            return nil
        }
        return try stored(conversationId, item)
    }

    public func insert(_ snapshot: SessionSnapshot) throws(StoreError) {
        let item = Self.item(snapshot)
        // Slots are stored twice (in Snapshot and as the readable Slots map), so a snapshot
        // under MAX_SNAPSHOT_BYTES can still make an item DynamoDB refuses: say so as such
        // (413) rather than as a ValidationException (500).
        let size = Self.itemBytes(item)
        guard size <= Self.maxItemBytes else { throw .tooLarge(bytes: size, limit: Self.maxItemBytes) }
        var w = JSONWriter(capacity: 1024)
        w.beginObject()
        w.key("TableName"); w.value(table)
        w.key("Item"); AttributeValue.writeMap(item, to: &w)
        w.key("ConditionExpression"); w.value("attribute_not_exists(ConversationId)")
        w.endObject()
        do {
            _ = try client.call("PutItem", w.bytes)
        } catch {
            if error.code == DynamoDBError.conditionalCheckFailed {
                throw .versionConflict(conversationId: snapshot.conversationId, version: snapshot.sessionVersion)
            }
            throw map(error, "PutItem")
        }
    }

    public func version(_ conversationId: String, _ version: Int64) throws(StoreError) -> StoredVersion? {
        let answer = try request("GetItem") { w in
            w.key("Key"); Self.key(&w, conversationId, version)
            w.key("ConsistentRead"); w.value(true)
            // Only what is read back, as for Query (Snapshot is a reserved word).
            w.key("ProjectionExpression"); w.value("#v, #s")
            w.key("ExpressionAttributeNames")
            w.beginObject()
            w.key("#v"); w.value("SessionVersion")
            w.key("#s"); w.value("Snapshot")
            w.endObject()
        }
        guard let itemJSON = answer["Item"] else { return nil }
        let item: [String: AttributeValue]
        do { item = try AttributeValue.map(itemJSON) } catch { throw .invalidRequest("unreadable item from \(table): \(error)") }
        return try stored(conversationId, item)
    }

    public func versions(_ conversationId: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        var out: [StoredVersion] = []
        for item in try query(conversationId, before: before, limit: limit, projection: "#v, #s") {
            out.append(try stored(conversationId, item))
        }
        return out
    }

    /// Reads the keys page by page and deletes them with BatchWriteItem (25 a batch),
    /// resending whatever DynamoDB returns as unprocessed.
    public func deleteConversation(_ conversationId: String) throws(StoreError) -> Int {
        var deleted = 0
        while true {
            let keys = try query(conversationId, before: nil, limit: 100, projection: "#v")
                .compactMap { $0["SessionVersion"]?.int64Value }
            if keys.isEmpty { return deleted }
            for start in stride(from: 0, to: keys.count, by: 25) {
                var pending = Array(keys[start..<min(start + 25, keys.count)])
                var rounds = 0
                while !pending.isEmpty {
                    rounds += 1
                    guard rounds <= 8 else { throw .unavailable("BatchWriteItem on \(table) keeps leaving items unprocessed") }
                    var w = JSONWriter(capacity: 2048)
                    w.beginObject()
                    w.key("RequestItems")
                    w.beginObject()
                    w.key(table)
                    w.beginArray()
                    for v in pending {
                        w.beginObject(); w.key("DeleteRequest"); w.beginObject()
                        w.key("Key"); Self.key(&w, conversationId, v)
                        w.endObject(); w.endObject()
                    }
                    w.endArray()
                    w.endObject()
                    w.endObject()
                    let answer: JSONValue
                    do { answer = try client.call("BatchWriteItem", w.bytes) } catch { throw map(error, "BatchWriteItem") }
                    var unprocessed: [Int64] = []
                    if case .array(let list)? = answer["UnprocessedItems"]?[table] {
                        for entry in list {
                            if case .object? = entry["DeleteRequest"]?["Key"],
                                let key = try? AttributeValue.map(entry["DeleteRequest"]!["Key"]!),
                                let v = key["SessionVersion"]?.int64Value
                            {
                                unprocessed.append(v)
                            }
                        }
                    }
                    deleted += pending.count - unprocessed.count
                    pending = unprocessed
                    if !pending.isEmpty { usleep(UInt32(20_000 * rounds)) }
                }
            }
        }
    }

    public func checkReady() throws(StoreError) {
        let answer = try request("DescribeTable") { _ in }
        guard case .string(let status)? = answer["Table"]?["TableStatus"], status == "ACTIVE" || status == "UPDATING" else {
            throw .unavailable("table \(table) is not active")
        }
    }

    /// DynamoDB deletes expired items itself through the table's TTL on `ExpiresAt`.
    public func sweepExpired(now: Int64) throws(StoreError) -> Int { 0 }

    /// Creates the table (on-demand capacity) if it is missing, waits until it is active,
    /// and turns TTL on for `ExpiresAt`. Safe to run from several replicas at once.
    public func createTableIfMissing(waitSeconds: Int = 60) throws(StoreError) {
        do {
            try checkReady()
        } catch {
            var w = JSONWriter(capacity: 512)
            w.beginObject()
            w.key("TableName"); w.value(table)
            w.key("BillingMode"); w.value("PAY_PER_REQUEST")
            w.key("AttributeDefinitions")
            w.beginArray()
            for (name, type) in [("ConversationId", "S"), ("SessionVersion", "N")] {
                w.beginObject(); w.key("AttributeName"); w.value(name); w.key("AttributeType"); w.value(type); w.endObject()
            }
            w.endArray()
            w.key("KeySchema")
            w.beginArray()
            for (name, type) in [("ConversationId", "HASH"), ("SessionVersion", "RANGE")] {
                w.beginObject(); w.key("AttributeName"); w.value(name); w.key("KeyType"); w.value(type); w.endObject()
            }
            w.endArray()
            w.endObject()
            do {
                _ = try client.call("CreateTable", w.bytes)
            } catch where error.code == "ResourceInUseException" {
                // Another replica created it first.
            } catch {
                throw map(error, "CreateTable")
            }
            var waited = 0
            while true {
                do {
                    try checkReady()
                    break
                } catch {
                    waited += 1
                    if waited > waitSeconds * 4 { throw .unavailable("table \(table) did not become active in \(waitSeconds) s") }
                    usleep(250_000)
                }
            }
        }
        let ttl = try request("DescribeTimeToLive") { _ in }
        if case .string(let status)? = ttl["TimeToLiveDescription"]?["TimeToLiveStatus"], status == "ENABLED" || status == "ENABLING" {
            return
        }
        _ = try request("UpdateTimeToLive") { w in
            w.key("TimeToLiveSpecification")
            w.beginObject()
            w.key("Enabled"); w.value(true)
            w.key("AttributeName"); w.value("ExpiresAt")
            w.endObject()
        }
    }
}
