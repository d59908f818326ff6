import DialogWire
import Glibc

/// One DynamoDB table as the stores use it: requests that name it, DynamoDB errors mapped
/// to `StoreError` with the table's name, readiness, and creation (with TTL and global
/// secondary indexes) for `DYNAMODB_CREATE_TABLE`. Shared by the sessions, links and outbox
/// tables.
public struct DynamoDBTable: Sendable {
    public let client: DynamoDBClient
    public let name: String

    /// What `createIfMissing` creates: key attributes, indexes and the TTL attribute.
    public struct Schema: Sendable {
        public var hashKey: (name: String, type: String)
        public var rangeKey: (name: String, type: String)?
        public var indexes: [Index] = []
        public var ttlAttribute = "ExpiresAt"

        public init(hashKey: (name: String, type: String), rangeKey: (name: String, type: String)? = nil) {
            self.hashKey = hashKey
            self.rangeKey = rangeKey
        }
    }

    /// A global secondary index: its keys, and the non-key attributes it copies (none: keys only).
    public struct Index: Sendable {
        public var name: String
        public var hashKey: (name: String, type: String)
        public var rangeKey: (name: String, type: String)?
        public var included: [String]

        public init(
            name: String, hashKey: (name: String, type: String), rangeKey: (name: String, type: String)? = nil, included: [String] = []
        ) {
            self.name = name
            self.hashKey = hashKey
            self.rangeKey = rangeKey
            self.included = included
        }
    }

    public init(client: DynamoDBClient, name: String) {
        self.client = client
        self.name = name
    }

    /// Calls `operation` with `{"TableName": name, …build}`.
    public func request(_ operation: String, _ build: (inout JSONWriter) -> Void) throws(StoreError) -> JSONValue {
        do {
            return try send(operation, build)
        } catch {
            throw map(error, operation)
        }
    }

    /// `request` with DynamoDB's own error, for callers that tell a lost condition from an outage.
    public func send(_ operation: String, _ build: (inout JSONWriter) -> Void) throws(DynamoDBError) -> JSONValue {
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.key("TableName"); w.value(name)
        build(&w)
        w.endObject()
        return try client.call(operation, w.bytes)
    }

    public func map(_ error: DynamoDBError, _ operation: String) -> StoreError {
        if error.isAuthFailure { return .authFailed("\(operation) on \(name): \(error)") }
        switch error.code {
        case DynamoDBError.resourceNotFound:
            return .unavailable("table \(name) not found (\(operation)); create it or set DYNAMODB_CREATE_TABLE=true")
        case DynamoDBError.validation:
            return .invalidRequest("\(operation) on \(name) rejected: \(error.message)")
        default:
            return .unavailable("\(operation) on \(name): \(error)")
        }
    }

    /// Decodes an answer's `Items`.
    public func items(_ answer: JSONValue) throws(StoreError) -> [[String: AttributeValue]] {
        guard case .array(let list)? = answer["Items"] else { return [] }
        var out: [[String: AttributeValue]] = []
        for element in list {
            do { out.append(try AttributeValue.map(element)) } catch {
                throw .invalidRequest("unreadable item from \(name): \(error)")
            }
        }
        return out
    }

    /// Decodes a GetItem answer's `Item`, nil when there is none.
    public func item(_ answer: JSONValue) throws(StoreError) -> [String: AttributeValue]? {
        guard let itemJSON = answer["Item"] else { return nil }
        do { return try AttributeValue.map(itemJSON) } catch { throw .invalidRequest("unreadable item from \(name): \(error)") }
    }

    public func checkReady() throws(StoreError) {
        let answer = try request("DescribeTable") { _ in }
        guard case .string(let status)? = answer["Table"]?["TableStatus"], status == "ACTIVE" || status == "UPDATING" else {
            throw .unavailable("table \(name) is not active")
        }
    }

    /// Creates the table (on-demand capacity) if it is missing, waits until it is active,
    /// and turns TTL on. Safe to run from several replicas at once.
    public func createIfMissing(_ schema: Schema, waitSeconds: Int = 60) throws(StoreError) {
        do {
            try checkReady()
        } catch {
            try create(schema)
            var waited = 0
            while true {
                do {
                    try checkReady()
                    break
                } catch {
                    waited += 1
                    if waited > waitSeconds * 4 { throw .unavailable("table \(name) did not become active in \(waitSeconds) s") }
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
            w.key("AttributeName"); w.value(schema.ttlAttribute)
            w.endObject()
        }
    }

    private func create(_ schema: Schema) throws(StoreError) {
        func keySchema(_ w: inout JSONWriter, _ keys: [(String, String)]) {
            w.beginArray()
            for (attribute, type) in keys {
                w.beginObject(); w.key("AttributeName"); w.value(attribute); w.key("KeyType"); w.value(type); w.endObject()
            }
            w.endArray()
        }
        var attributes = [schema.hashKey]
        if let range = schema.rangeKey { attributes.append(range) }
        for index in schema.indexes {
            for key in [index.hashKey] + (index.rangeKey.map { [$0] } ?? []) where !attributes.contains(where: { $0.name == key.name }) {
                attributes.append(key)
            }
        }
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.key("TableName"); w.value(name)
        w.key("BillingMode"); w.value("PAY_PER_REQUEST")
        w.key("AttributeDefinitions")
        w.beginArray()
        for (attribute, type) in attributes {
            w.beginObject(); w.key("AttributeName"); w.value(attribute); w.key("AttributeType"); w.value(type); w.endObject()
        }
        w.endArray()
        w.key("KeySchema")
        keySchema(&w, [(schema.hashKey.name, "HASH")] + (schema.rangeKey.map { [($0.name, "RANGE")] } ?? []))
        if !schema.indexes.isEmpty {
            w.key("GlobalSecondaryIndexes")
            w.beginArray()
            for index in schema.indexes {
                w.beginObject()
                w.key("IndexName"); w.value(index.name)
                w.key("KeySchema"); keySchema(&w, [(index.hashKey.name, "HASH")] + (index.rangeKey.map { [($0.name, "RANGE")] } ?? []))
                w.key("Projection")
                w.beginObject()
                w.key("ProjectionType"); w.value(index.included.isEmpty ? "KEYS_ONLY" : "INCLUDE")
                if !index.included.isEmpty {
                    w.key("NonKeyAttributes"); w.beginArray(); for a in index.included { w.value(a) }; w.endArray()
                }
                w.endObject()
                w.endObject()
            }
            w.endArray()
        }
        w.endObject()
        do {
            _ = try client.call("CreateTable", w.bytes)
        } catch where error.code == "ResourceInUseException" {
            // Another replica created it first.
        } catch {
            throw map(error, "CreateTable")
        }
    }
}
