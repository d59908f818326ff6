import DialogWire
import Foundation
import Primitives

/// Snapshots in DynamoDB: table keys `ConversationId` (S, hash) + `SessionVersion` (N,
/// range), one item per version. Latest is a consistent Query, newest first, Limit 1. The
/// write of version 1 is PutItem with `attribute_not_exists(ConversationId)`; the write of
/// n+1 is TransactWriteItems: a ConditionCheck that version n still has the `UpdatedAt` it
/// was read with, plus that conditional Put (SPEC: erasure is final). So one event costs
/// one Query and one write request on the fast path.
public final class DynamoDBStore: SessionStore {
    public let client: DynamoDBClient
    public let table: String
    private let dynamo: DynamoDBTable
    /// Most items one Query request asks for; longer listings page. Snapshots carry every
    /// slot, so a 100-version page of a long conversation is megabytes: smaller pages keep
    /// each request well inside `requestTimeoutMs` (DynamoDB itself stops a page at 1 MB).
    public let queryPageItems: Int

    /// The sessions table's keys (SPEC "DynamoDB item").
    public static let schema = DynamoDBTable.Schema(hashKey: ("ConversationId", "S"), rangeKey: ("SessionVersion", "N"))

    public init(client: DynamoDBClient, table: String, queryPageItems: Int = 25) {
        self.client = client
        self.table = table
        self.queryPageItems = max(1, queryPageItems)
        self.dynamo = DynamoDBTable(client: client, name: table)
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
        let updatedAt = item["UpdatedAt"]?.int64Value ?? 0
        let expiresAt = item["ExpiresAt"]?.int64Value ?? Int64.max
        guard let bytes = item["Snapshot"]?.bytesValue else {
            return StoredVersion(
                conversationId: conversationId, version: version, updatedAt: updatedAt, expiresAt: expiresAt,
                snapshot: .failure(.wire(.truncated)))
        }
        return StoredVersion(conversationId: conversationId, version: version, updatedAt: updatedAt, expiresAt: expiresAt, bytes: bytes)
    }

    /// What reads project (Snapshot is a reserved word: every name goes through a placeholder).
    static let readProjection = "#v, #s, #u, #e"
    static let projectionNames = ["#v": "SessionVersion", "#s": "Snapshot", "#u": "UpdatedAt", "#e": "ExpiresAt"]

    private static func writeProjection(_ projection: String, to w: inout JSONWriter) {
        w.key("ProjectionExpression"); w.value(projection)
        w.key("ExpressionAttributeNames")
        w.beginObject()
        for (placeholder, name) in projectionNames.sorted(by: { $0.key < $1.key }) where projection.contains(placeholder) {
            w.key(placeholder); w.value(name)
        }
        w.endObject()
    }

    // MARK: requests

    private func request(_ operation: String, _ build: (inout JSONWriter) -> Void) throws(StoreError) -> JSONValue {
        try dynamo.request(operation, build)
    }

    private func map(_ error: DynamoDBError, _ operation: String) -> StoreError { dynamo.map(error, operation) }

    private static func key(_ w: inout JSONWriter, _ conversationId: String, _ version: Int64) {
        AttributeValue.writeMap(["ConversationId": .s(conversationId), "SessionVersion": .int(version)], to: &w)
    }

    private func items(_ answer: JSONValue) throws(StoreError) -> [[String: AttributeValue]] { try dynamo.items(answer) }

    /// Query with the key condition, newest first unless `ascending`; pages (at most
    /// `queryPageItems` a request) until `limit` items or the end.
    private func query(
        _ conversationId: String, before: Int64?, limit: Int, projection: String, ascending: Bool = false,
        pageItems: Int? = nil
    ) throws(StoreError) -> [[String: AttributeValue]] {
        let pageItems = pageItems ?? queryPageItems
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
                Self.writeProjection(projection, to: &w)
                w.key("ScanIndexForward"); w.value(ascending)
                w.key("ConsistentRead"); w.value(true)
                w.key("Limit"); w.value(min(limit - found.count, pageItems))
                if let startKey { w.key("ExclusiveStartKey"); w.value(startKey) }
            }
            found += try items(answer)
            startKey = answer["LastEvaluatedKey"]
        } while startKey != nil && found.count < limit
        return found
    }

    // MARK: SessionStore

    public func latest(_ conversationId: String) throws(StoreError) -> StoredVersion? {
        guard let item = try query(conversationId, before: nil, limit: 1, projection: Self.readProjection).first else {
            return nil
        }
        return try stored(conversationId, item)
    }

    public func insert(_ snapshot: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) -> WriteBasis {
        try write(snapshot, after: basis)
        return WriteBasis(version: snapshot.sessionVersion, updatedAt: snapshot.updatedAt)
    }

    private func write(_ snapshot: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) {
        let item = Self.item(snapshot)
        // Slots are stored twice (in Snapshot and as the readable Slots map), so a snapshot
        // under MAX_SNAPSHOT_BYTES can still make an item DynamoDB refuses: say so as such
        // (413) rather than as a ValidationException (500).
        let size = Self.itemBytes(item)
        guard size <= Self.maxItemBytes else { throw .tooLarge(bytes: size, limit: Self.maxItemBytes) }
        let operation = basis == nil ? "PutItem" : "TransactWriteItems"
        var w = JSONWriter(capacity: 1024)
        w.beginObject()
        if let basis {
            w.key("TransactItems")
            w.beginArray()
            w.beginObject(); w.key("ConditionCheck"); w.beginObject()
            w.key("TableName"); w.value(table)
            w.key("Key"); Self.key(&w, snapshot.conversationId, basis.version)
            w.key("ConditionExpression"); w.value("#u = :u")
            w.key("ExpressionAttributeNames"); w.beginObject(); w.key("#u"); w.value("UpdatedAt"); w.endObject()
            w.key("ExpressionAttributeValues"); AttributeValue.writeMap([":u": .int(basis.updatedAt)], to: &w)
            w.endObject(); w.endObject()
            w.beginObject(); w.key("Put"); w.beginObject()
            Self.writePut(item, table: table, to: &w)
            w.endObject(); w.endObject()
            w.endArray()
        } else {
            Self.writePut(item, table: table, to: &w)
        }
        w.endObject()
        do {
            _ = try client.call(operation, w.bytes)
        } catch {
            guard error.isConditionFailure else { throw map(error, operation) }
            // SPEC "Ambiguous writes": the first attempt may have been applied and only its
            // answer lost; then the retry failed against our own item, which is a success.
            if error.afterAmbiguousAttempt, let mine = try? version(snapshot.conversationId, snapshot.sessionVersion),
                case .success(let stored) = mine.snapshot, stored == snapshot
            {
                return
            }
            throw .versionConflict(conversationId: snapshot.conversationId, version: snapshot.sessionVersion)
        }
    }

    private static func writePut(_ item: [String: AttributeValue], table: String, to w: inout JSONWriter) {
        w.key("TableName"); w.value(table)
        w.key("Item"); AttributeValue.writeMap(item, to: &w)
        w.key("ConditionExpression"); w.value("attribute_not_exists(ConversationId)")
    }

    public func version(_ conversationId: String, _ version: Int64) throws(StoreError) -> StoredVersion? {
        let answer = try request("GetItem") { w in
            w.key("Key"); Self.key(&w, conversationId, version)
            w.key("ConsistentRead"); w.value(true)
            // Only what is read back, as for Query.
            Self.writeProjection(Self.readProjection, to: &w)
        }
        guard let item = try dynamo.item(answer) else { return nil }
        return try stored(conversationId, item)
    }

    public func versions(_ conversationId: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        var out: [StoredVersion] = []
        for item in try query(conversationId, before: before, limit: limit, projection: Self.readProjection) {
            out.append(try stored(conversationId, item))
        }
        return out
    }

    /// Deletes oldest first: keys are read in ascending order and deleted with
    /// BatchWriteItem (25 a batch, unprocessed ones resent before the next batch), and the
    /// newest version is deleted last, alone. So an erasure cut short (a crash, a timeout)
    /// never leaves an older version as the latest, and a writer that read the newest
    /// version can only build on it while it still exists (its write is conditional on it).
    /// Repeats until nothing is left, which also removes what such a writer added meanwhile.
    public func deleteConversation(_ conversationId: String) throws(StoreError) -> Int {
        let page = 100
        var deleted = 0
        for _ in 0..<10_000 {
            let keys = try query(conversationId, before: nil, limit: page + 1, projection: "#v", ascending: true, pageItems: page + 1)
                .compactMap { $0["SessionVersion"]?.int64Value }
            guard let newest = keys.last else { return deleted }
            // Without a key past this page, its last key is the newest version: keep it for last.
            let isTail = keys.count <= page
            let older = isTail ? Array(keys.dropLast()) : Array(keys.prefix(page))
            for start in stride(from: 0, to: older.count, by: 25) {
                deleted += try batchDelete(conversationId, Array(older[start..<min(start + 25, older.count)]))
            }
            if isTail { deleted += try batchDelete(conversationId, [newest]) }
        }
        throw .unavailable("deleting \(conversationId) from \(table) did not finish: writers keep adding versions")
    }

    /// Deletes these versions with BatchWriteItem, resending unprocessed ones; returns the count.
    private func batchDelete(_ conversationId: String, _ versions: [Int64]) throws(StoreError) -> Int {
        var pending = versions
        var deleted = 0
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
                    if let keyJSON = entry["DeleteRequest"]?["Key"], let key = try? AttributeValue.map(keyJSON),
                        let v = key["SessionVersion"]?.int64Value
                    {
                        unprocessed.append(v)
                    }
                }
            }
            deleted += pending.count - unprocessed.count
            pending = unprocessed
            if !pending.isEmpty { sleepMs(Double(20 * rounds)) }
        }
        return deleted
    }

    public func checkReady() throws(StoreError) { try dynamo.checkReady() }

    /// DynamoDB deletes expired items itself through the table's TTL on `ExpiresAt`.
    public func sweepExpired(now: Int64) throws(StoreError) -> Int { 0 }

    /// Creates the table (on-demand capacity) if it is missing, waits until it is active,
    /// and turns TTL on for `ExpiresAt`. Safe to run from several replicas at once.
    public func createTableIfMissing(waitSeconds: Int = 60) throws(StoreError) {
        try dynamo.createIfMissing(Self.schema, waitSeconds: waitSeconds)
    }
}
