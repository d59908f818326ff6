import DialogWire

/// Links in DynamoDB (SPEC: table `CognigySessionLinks`, hash key `LinkKey` S,
/// `ConversationId` S, `ExpiresAt` N as TTL), plus `CreatedAt` N (epoch ms) for the
/// conditional replace. A keys-only global secondary index on `ConversationId`
/// (`ByConversation`) finds a conversation's links for `DELETE /sessions/{id}`; it is
/// eventually consistent, so a link written in the very last moment before a DELETE may
/// survive it: it then points at a conversation with no live version, which every reader
/// treats as absent, and TTL removes it.
public final class DynamoDBLinkStore: LinkStore {
    public let table: DynamoDBTable
    public static let conversationIndex = "ByConversation"

    public static var schema: DynamoDBTable.Schema {
        var schema = DynamoDBTable.Schema(hashKey: ("LinkKey", "S"))
        schema.indexes = [.init(name: conversationIndex, hashKey: ("ConversationId", "S"))]
        return schema
    }

    public init(client: DynamoDBClient, table: String) {
        self.table = DynamoDBTable(client: client, name: table)
    }

    public func createTableIfMissing(waitSeconds: Int = 60) throws(StoreError) {
        try table.createIfMissing(Self.schema, waitSeconds: waitSeconds)
    }

    public func checkReady() throws(StoreError) { try table.checkReady() }

    private static func key(_ key: String, to w: inout JSONWriter) {
        w.key("Key"); AttributeValue.writeMap(["LinkKey": .s(key)], to: &w)
    }

    private static func names(_ w: inout JSONWriter, _ names: [String: String]) {
        w.key("ExpressionAttributeNames")
        w.beginObject()
        for (placeholder, name) in names.sorted(by: { $0.key < $1.key }) { w.key(placeholder); w.value(name) }
        w.endObject()
    }

    public func link(_ key: String) throws(StoreError) -> StoredLink? {
        let answer = try table.request("GetItem") { w in
            Self.key(key, to: &w)
            w.key("ConsistentRead"); w.value(true)
        }
        guard let item = try table.item(answer) else { return nil }
        guard let conversationId = item["ConversationId"]?.stringValue else {
            throw .invalidRequest("link item in \(table.name) has no ConversationId")
        }
        return StoredLink(
            key: key, conversationId: conversationId, createdAt: item["CreatedAt"]?.int64Value ?? 0,
            expiresAt: item["ExpiresAt"]?.int64Value ?? Int64.max)
    }

    public func putLink(_ link: StoredLink, replacing: StoredLink?) throws(StoreError) -> Bool {
        try write("PutItem") { w in
            w.key("Item")
            AttributeValue.writeMap(
                ["LinkKey": .s(link.key), "ConversationId": .s(link.conversationId), "CreatedAt": .int(link.createdAt),
                 "ExpiresAt": .int(link.expiresAt)], to: &w)
            if let old = replacing {
                w.key("ConditionExpression"); w.value("#c = :oc AND #t = :ot")
                Self.names(&w, ["#c": "ConversationId", "#t": "CreatedAt"])
                w.key("ExpressionAttributeValues")
                AttributeValue.writeMap([":oc": .s(old.conversationId), ":ot": .int(old.createdAt)], to: &w)
            } else {
                w.key("ConditionExpression"); w.value("attribute_not_exists(LinkKey)")
            }
        }
    }

    public func touchLink(_ key: String, conversationId: String, expiresAt: Int64) throws(StoreError) {
        _ = try write("UpdateItem") { w in
            Self.key(key, to: &w)
            w.key("UpdateExpression"); w.value("SET #e = :e")
            w.key("ConditionExpression"); w.value("#c = :c AND #e < :e")
            Self.names(&w, ["#c": "ConversationId", "#e": "ExpiresAt"])
            w.key("ExpressionAttributeValues"); AttributeValue.writeMap([":c": .s(conversationId), ":e": .int(expiresAt)], to: &w)
        }
    }

    public func deleteLink(_ link: StoredLink) throws(StoreError) -> Bool {
        try write("DeleteItem") { w in
            Self.key(link.key, to: &w)
            w.key("ConditionExpression"); w.value("#c = :c AND #t = :t")
            Self.names(&w, ["#c": "ConversationId", "#t": "CreatedAt"])
            w.key("ExpressionAttributeValues")
            AttributeValue.writeMap([":c": .s(link.conversationId), ":t": .int(link.createdAt)], to: &w)
        }
    }

    public func deleteLinks(conversationId: String) throws(StoreError) -> Int {
        var deleted = 0
        var startKey: JSONValue?
        repeat {
            let answer = try table.request("Query") { w in
                w.key("IndexName"); w.value(Self.conversationIndex)
                w.key("KeyConditionExpression"); w.value("#c = :c")
                Self.names(&w, ["#c": "ConversationId"])
                w.key("ExpressionAttributeValues"); AttributeValue.writeMap([":c": .s(conversationId)], to: &w)
                if let startKey { w.key("ExclusiveStartKey"); w.value(startKey) }
            }
            for item in try table.items(answer) {
                guard let key = item["LinkKey"]?.stringValue else { continue }
                // Only while it still points here: a link re-pointed since stays.
                let gone = try write("DeleteItem") { w in
                    Self.key(key, to: &w)
                    w.key("ConditionExpression"); w.value("#c = :c")
                    Self.names(&w, ["#c": "ConversationId"])
                    w.key("ExpressionAttributeValues"); AttributeValue.writeMap([":c": .s(conversationId)], to: &w)
                }
                if gone { deleted += 1 }
            }
            startKey = answer["LastEvaluatedKey"]
        } while startKey != nil
        return deleted
    }

    /// DynamoDB's TTL removes expired links; readers treat them as absent before that.
    public func sweepExpiredLinks(now: Int64) throws(StoreError) -> Int { 0 }

    /// A conditional write: true when applied, false when its condition failed.
    private func write(_ operation: String, _ build: (inout JSONWriter) -> Void) throws(StoreError) -> Bool {
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.key("TableName"); w.value(table.name)
        build(&w)
        w.endObject()
        do {
            _ = try table.client.call(operation, w.bytes)
            return true
        } catch {
            if error.isConditionFailure {
                // A retried attempt may have been applied and only its answer lost; the
                // caller re-reads the link, which then shows our own write.
                return false
            }
            throw table.map(error, operation)
        }
    }
}
