import DialogWire
import Primitives

/// The restore queue in a DynamoDB table (`DYNAMODB_OUTBOX_TABLE`, default
/// `CognigySessionOutbox`), shared by every replica, so a replica that is replaced (or
/// killed for good) takes nothing with it: whoever polls next delivers what it queued.
/// Same semantics as the SQLite `RestoreOutbox`, item for row.
///
/// Layout (README "Outbox on DynamoDB"):
/// - Table keys `ConversationId` (S, hash) + `SessionKey` (S, range): one item per
///   (conversation, target session); `SessionKey` is the session id, or its fingerprint when
///   ENCRYPTION_KEYS is set (then `SessionId` and `UserId` hold sealed values). Erasing a
///   conversation is a Query on its hash key.
/// - Global secondary index `DueIndex`: hash `Shard` (N, 0..<`shardCount`, fixed per item
///   from a hash of its keys), range `NextAttemptMs` (N); projects `CreatedAtMs` and
///   `ExpiresAtMs`. Due entries are found with one Query per shard, `NextAttemptMs <= now`,
///   never a Scan. A few shards spread the index's writes over partitions.
/// - `ExpiresAt` (N, epoch seconds, rounded up) is the table's TTL attribute; an entry
///   past `ExpiresAtMs` is handled as expired before TTL removes it (the worker drops it).
///
/// Leases: a claim is an UpdateItem conditional on the entry being due and its lease free
/// that sets `LeaseOwner`, `LeaseUntilMs` and moves `NextAttemptMs` to the lease's end: a
/// leased entry leaves the due range of the index, and comes back into it by itself when
/// the lease runs out (its holder died). Completing deletes it on condition that `Revision`
/// (bumped by every enqueue) and `LeaseOwner` are still the claim's; releasing is
/// conditional on `LeaseOwner`. So a stale holder cannot clobber a newer enqueue or
/// another holder's lease. Enqueue is a consistent read plus a PutItem conditional on the
/// item's `Seq` (bumped by every write) or on its absence, retried when it loses.
public final class DynamoDBRestoreOutbox: RestoreQueue {
    public let table: DynamoDBTable
    private let ids: OutboxIds
    /// Due entries read from the index and not tried yet, and when (ms) they were read.
    private let candidates = Locked<(readAtMs: Int64, keys: [EntryKey])>((0, []))

    /// Partitions of `DueIndex`. Each poll that finds nothing costs one Query per shard;
    /// only ever raise it (items keep the shard they were written with).
    public static let shardCount = 4
    public static let dueIndex = "DueIndex"
    /// Due entries read per shard and Query.
    static let candidatesPerShard = 16
    /// Candidates older than this are read again rather than tried.
    static let candidateMaxAgeMs: Int64 = 1000
    /// Claims lost to other replicas before `claimNext` gives up until the next poll.
    static let maxLostClaims = 8
    /// Enqueue's read-then-write attempts against concurrent writers of the same entry.
    static let maxEnqueueAttempts = 8

    /// The table's keys, `DueIndex` and TTL (README "Outbox on DynamoDB").
    public static var schema: DynamoDBTable.Schema {
        var schema = DynamoDBTable.Schema(hashKey: ("ConversationId", "S"), rangeKey: ("SessionKey", "S"))
        schema.indexes = [
            .init(name: dueIndex, hashKey: ("Shard", "N"), rangeKey: ("NextAttemptMs", "N"), included: ["CreatedAtMs", "ExpiresAtMs"])
        ]
        return schema
    }

    public init(client: DynamoDBClient, table: String, protector: (any FieldProtector)? = nil) {
        self.table = DynamoDBTable(client: client, name: table)
        ids = OutboxIds(protector: protector)
    }

    // MARK: item

    struct EntryKey: Sendable, Equatable {
        let conversationId: String
        let sessionKey: String
    }

    /// One item, its ids as stored (sealed when encrypted); read and written in the extension below.
    struct Entry: Equatable {
        var key: EntryKey
        var sessionId: String
        var userId: String
        var restoredFrom: String
        var sessionVersion: Int64
        var createdAtMs: Int64
        var expiresAtMs: Int64
        var attempts: Int64
        var nextAttemptMs: Int64
        var revision: Int64
        var leaseOwner: String
        var leaseUntilMs: Int64
        var shard: Int64
        var seq: Int64
    }

    /// TTL is in epoch seconds: rounded up, so DynamoDB never removes an entry before it expires.
    static func ttlSeconds(_ expiresAtMs: Int64) -> Int64 { expiresAtMs / 1000 + (expiresAtMs % 1000 > 0 ? 1 : 0) }

    /// The entry's index partition: FNV-1a of its keys, so it is the same in every process.
    static func shard(_ key: EntryKey) -> Int64 {
        var hash: UInt32 = 2_166_136_261
        for byte in key.conversationId.utf8 + [0] + key.sessionKey.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        return Int64(hash % UInt32(shardCount))
    }

    /// A claim of `entry` with its ids opened; nil when they cannot be (undeliverable).
    private func claim(_ entry: Entry, target known: RestoreTarget? = nil) -> RestoreClaim? {
        let target: RestoreTarget
        if let known {
            target = known
        } else {
            guard let opened = ids.open(conversationId: entry.key.conversationId, sessionId: entry.sessionId, userId: entry.userId)
            else { return nil }
            target = RestoreTarget(
                conversationId: entry.key.conversationId, sessionId: opened.sessionId, userId: opened.userId,
                restoredFrom: entry.restoredFrom)
        }
        return RestoreClaim(
            target: target, sessionVersion: entry.sessionVersion, owner: entry.leaseOwner, revision: entry.revision,
            attempts: Int(entry.attempts), createdAtMs: entry.createdAtMs, expiresAtMs: entry.expiresAtMs,
            sessionKey: entry.key.sessionKey)
    }

    // MARK: requests

    /// Placeholders for every attribute an expression names (some are reserved words).
    /// None is a prefix of another, so `contains` finds exactly the ones used.
    private static let names: [(String, String)] = [
        ("#Cid", "ConversationId"), ("#Key", "SessionKey"), ("#Created", "CreatedAtMs"), ("#ExpMs", "ExpiresAtMs"),
        ("#Tries", "Attempts"), ("#Next", "NextAttemptMs"), ("#Rev", "Revision"), ("#Owner", "LeaseOwner"),
        ("#Until", "LeaseUntilMs"), ("#Shard", "Shard"), ("#Seq", "Seq"),
    ]

    /// Sends `operation` on the table with `expressions` (their placeholders and `values`
    /// written out) plus whatever `build` adds; DynamoDB's own error, so callers can tell a
    /// lost condition from an outage.
    private func call(
        _ operation: String, expressions: [String: String], values: [String: AttributeValue] = [:],
        _ build: (inout JSONWriter) -> Void = { _ in }
    ) throws(DynamoDBError) -> JSONValue {
        try table.send(operation) { w in
            for (name, expression) in expressions.sorted(by: { $0.key < $1.key }) {
                w.key(name); w.value(expression)
            }
            let used = Self.names.filter { placeholder, _ in expressions.values.contains { $0.contains(placeholder) } }
            if !used.isEmpty {
                w.key("ExpressionAttributeNames")
                w.beginObject()
                for (placeholder, name) in used { w.key(placeholder); w.value(name) }
                w.endObject()
            }
            if !values.isEmpty {
                w.key("ExpressionAttributeValues"); AttributeValue.writeMap(values, to: &w)
            }
            build(&w)
        }
    }

    /// `call`, every error mapped.
    private func request(
        _ operation: String, expressions: [String: String], values: [String: AttributeValue] = [:],
        _ build: (inout JSONWriter) -> Void = { _ in }
    ) throws(StoreError) -> JSONValue {
        do { return try call(operation, expressions: expressions, values: values, build) } catch { throw table.map(error, operation) }
    }

    private static func writeKey(_ key: EntryKey, to w: inout JSONWriter) {
        w.key("Key"); AttributeValue.writeMap(["ConversationId": .s(key.conversationId), "SessionKey": .s(key.sessionKey)], to: &w)
    }

    /// The entry in a GetItem's `Item` or an UpdateItem's `Attributes`.
    private func decode(_ json: JSONValue?, _ operation: String) throws(StoreError) -> Entry? {
        guard let json else { return nil }
        do {
            guard let entry = Entry(try AttributeValue.map(json)) else { throw AttributeValue.DecodingError(message: "no key attributes") }
            return entry
        } catch {
            throw .invalidRequest("unreadable outbox item from \(table.name) (\(operation)): \(error)")
        }
    }

    /// Query answers' items, paged until `maxPages` or the end.
    private func query(
        _ expressions: [String: String], values: [String: AttributeValue], maxPages: Int, _ build: (inout JSONWriter) -> Void
    ) throws(StoreError) -> [[String: AttributeValue]] {
        var out: [[String: AttributeValue]] = []
        var startKey: JSONValue?
        for _ in 0..<maxPages {
            let answer = try request("Query", expressions: expressions, values: values) { w in
                build(&w)
                if let startKey { w.key("ExclusiveStartKey"); w.value(startKey) }
            }
            out += try table.items(answer)
            startKey = answer["LastEvaluatedKey"]
            if startKey == nil { break }
        }
        return out
    }

    // MARK: RestoreQueue

    public func enqueue(
        _ target: RestoreTarget, sessionVersion: Int64, nowMs: Int64, ttlMs: Int64, leaseMs: Int64, owner: String
    ) throws(StoreError) -> RestoreClaim? {
        let sealed = try ids.seal(target)
        let key = EntryKey(conversationId: target.conversationId, sessionKey: ids.key(target))
        for _ in 0..<Self.maxEnqueueAttempts {
            let answer = try request("GetItem", expressions: [:]) { w in
                Self.writeKey(key, to: &w)
                w.key("ConsistentRead"); w.value(true)
            }
            let existing = try decode(answer["Item"], "GetItem")
            var entry: Entry
            let condition: String
            var values: [String: AttributeValue] = [:]
            if var old = existing {
                // An expired entry counts as absent (TTL may not have removed it yet) but keeps
                // its revision, so a stale claim of it can never match the new one.
                let live = old.expiresAtMs > nowMs
                old.sessionVersion = live ? max(old.sessionVersion, sessionVersion) : sessionVersion
                if !live { old.createdAtMs = nowMs }
                // A free lease is taken; a held one is left to its holder, who sees the new
                // revision when it finishes and releases the entry, due at once.
                if old.leaseUntilMs <= nowMs {
                    old.leaseOwner = owner
                    old.leaseUntilMs = nowMs &+ leaseMs
                    old.nextAttemptMs = nowMs &+ leaseMs
                }
                old.sessionId = sealed.sessionId
                old.userId = sealed.userId
                old.restoredFrom = target.restoredFrom
                old.expiresAtMs = nowMs &+ ttlMs
                old.attempts = 0
                old.revision += 1
                condition = "#Seq = :seq"
                values[":seq"] = .int(old.seq)
                old.seq += 1
                entry = old
            } else {
                entry = Entry(
                    key: key, sessionId: sealed.sessionId, userId: sealed.userId, restoredFrom: target.restoredFrom,
                    sessionVersion: sessionVersion, createdAtMs: nowMs, expiresAtMs: nowMs &+ ttlMs, attempts: 0,
                    nextAttemptMs: nowMs &+ leaseMs, revision: 1, leaseOwner: owner, leaseUntilMs: nowMs &+ leaseMs,
                    shard: Self.shard(key), seq: 1)
                condition = "attribute_not_exists(#Cid)"
            }
            do {
                _ = try call("PutItem", expressions: ["ConditionExpression": condition], values: values) { w in
                    w.key("Item"); AttributeValue.writeMap(entry.item, to: &w)
                }
            } catch where error.isConditionFailure {
                // Another writer (an enqueue, a claim, a release) came in between: read again.
                // After an ambiguous attempt this may be our own write; the next read shows it,
                // and enqueueing again on top of it is what a caller's retry would do.
                continue
            } catch {
                throw table.map(error, "PutItem")
            }
            guard entry.leaseOwner == owner else { return nil }
            return claim(entry, target: target)
        }
        throw .unavailable("outbox enqueue on \(table.name) lost \(Self.maxEnqueueAttempts) times to concurrent writers")
    }

    public func claimNext(nowMs: Int64, leaseMs: Int64, owner: String) throws(StoreError) -> RestoreClaim? {
        var refilled = false
        var lost = 0
        var undeliverable = 0
        while true {
            let next = candidates.withLock { state -> EntryKey? in
                if nowMs - state.readAtMs > Self.candidateMaxAgeMs || nowMs < state.readAtMs { state.keys = [] }
                return state.keys.isEmpty ? nil : state.keys.removeFirst()
            }
            guard let key = next else {
                if refilled { return nil }
                let due = try dueEntries(nowMs: nowMs)
                candidates.withLock { $0 = (nowMs, due) }
                refilled = true
                continue
            }
            let answer: JSONValue
            do {
                answer = try call(
                    "UpdateItem",
                    expressions: [
                        "UpdateExpression": "SET #Owner = :o, #Until = :until, #Next = :until, #Seq = #Seq + :one",
                        "ConditionExpression": "attribute_exists(#Cid) AND #Next <= :now AND #Until <= :now",
                    ],
                    values: [":o": .s(owner), ":until": .int(nowMs &+ leaseMs), ":one": .int(1), ":now": .int(nowMs)]
                ) { w in
                    Self.writeKey(key, to: &w)
                    w.key("ReturnValues"); w.value("ALL_NEW")
                }
            } catch where error.isConditionFailure {
                // Another replica claimed it first, or it was completed, rescheduled or erased
                // since the index was read (the index is eventually consistent).
                lost += 1
                if lost >= Self.maxLostClaims { return nil }
                continue
            } catch {
                throw table.map(error, "UpdateItem")
            }
            let entry = try decode(answer["Attributes"], "UpdateItem")
            guard let entry else { continue }
            if let claim = claim(entry) { return claim }
            // Ids that no configured key opens: nobody can ever send it; drop it.
            _ = try? call(
                "DeleteItem", expressions: ["ConditionExpression": "#Owner = :o"], values: [":o": .s(owner)]
            ) { w in Self.writeKey(key, to: &w) }
            undeliverable += 1
            if undeliverable >= 16 { return nil }
        }
    }

    /// The oldest due entries of every shard (one Query each), in random order, so that
    /// replicas polling at the same time spread over them instead of racing for one.
    private func dueEntries(nowMs: Int64) throws(StoreError) -> [EntryKey] {
        var due: [EntryKey] = []
        for shard in 0..<Self.shardCount {
            let items = try query(
                ["KeyConditionExpression": "#Shard = :s AND #Next <= :now"], values: [":s": .int(Int64(shard)), ":now": .int(nowMs)],
                maxPages: 1
            ) { w in
                w.key("IndexName"); w.value(Self.dueIndex)
                w.key("Limit"); w.value(Self.candidatesPerShard)
            }
            for item in items {
                if let c = item["ConversationId"]?.stringValue, let k = item["SessionKey"]?.stringValue {
                    due.append(EntryKey(conversationId: c, sessionKey: k))
                }
            }
        }
        return due.shuffled()
    }

    public func complete(_ claim: RestoreClaim, nowMs: Int64) throws(StoreError) {
        let key = EntryKey(conversationId: claim.target.conversationId, sessionKey: claim.sessionKey)
        do {
            _ = try call(
                "DeleteItem", expressions: ["ConditionExpression": "#Rev = :r AND #Owner = :o"],
                values: [":r": .int(claim.revision), ":o": .s(claim.owner)]
            ) { w in Self.writeKey(key, to: &w) }
        } catch where error.isConditionFailure {
            // Queued again while we sent: release it, due now, so the newer version goes out.
            try release(claim, nextAttemptMs: nowMs, countAttempt: false)
        } catch {
            throw table.map(error, "DeleteItem")
        }
    }

    public func retry(_ claim: RestoreClaim, nextAttemptMs: Int64) throws(StoreError) {
        try release(claim, nextAttemptMs: nextAttemptMs, countAttempt: true)
    }

    /// Gives the lease up (if it is still ours) with the next attempt at `nextAttemptMs`.
    private func release(_ claim: RestoreClaim, nextAttemptMs: Int64, countAttempt: Bool) throws(StoreError) {
        let key = EntryKey(conversationId: claim.target.conversationId, sessionKey: claim.sessionKey)
        do {
            _ = try call(
                "UpdateItem",
                expressions: [
                    "UpdateExpression": "SET #Until = :zero, #Next = :next, #Tries = #Tries + :inc, #Seq = #Seq + :one REMOVE #Owner",
                    "ConditionExpression": "#Owner = :o",
                ],
                values: [
                    ":zero": .int(0), ":next": .int(nextAttemptMs), ":inc": .int(countAttempt ? 1 : 0), ":one": .int(1),
                    ":o": .s(claim.owner),
                ]
            ) { w in Self.writeKey(key, to: &w) }
        } catch where error.isConditionFailure {
            // No longer ours (another holder after our lease ran out) or gone (erased): nothing to do.
        } catch {
            throw table.map(error, "UpdateItem")
        }
    }

    @discardableResult
    public func removeConversation(_ conversationId: String) throws(StoreError) -> Int {
        var removed = 0
        // Repeats until the conversation has nothing queued, which also removes what a
        // concurrent enqueue added meanwhile.
        for _ in 0..<100 {
            let items = try query(
                ["KeyConditionExpression": "#Cid = :c", "ProjectionExpression": "#Key"], values: [":c": .s(conversationId)], maxPages: 1
            ) { w in
                w.key("ConsistentRead"); w.value(true)
            }
            if items.isEmpty { return removed }
            for item in items {
                guard let sessionKey = item["SessionKey"]?.stringValue else { continue }
                let answer = try request("DeleteItem", expressions: [:]) { w in
                    Self.writeKey(EntryKey(conversationId: conversationId, sessionKey: sessionKey), to: &w)
                    w.key("ReturnValues"); w.value("ALL_OLD")
                }
                if answer["Attributes"] != nil { removed += 1 }
            }
        }
        throw .unavailable("erasing the queued restores of \(conversationId) from \(table.name) did not finish")
    }

    /// Reads the whole index (every shard, paged): cost grows with the queue's depth, which
    /// is small unless Cognigy is down; scraped, not polled. Expired entries do not count.
    public func stats(nowMs: Int64) throws(StoreError) -> (depth: Int, oldestAgeMs: Int64) {
        var depth = 0
        var oldest = Int64.max
        for shard in 0..<Self.shardCount {
            let items = try query(
                ["KeyConditionExpression": "#Shard = :s", "ProjectionExpression": "#Created, #ExpMs"],
                values: [":s": .int(Int64(shard))], maxPages: 100
            ) { w in
                w.key("IndexName"); w.value(Self.dueIndex)
            }
            for item in items where (item["ExpiresAtMs"]?.int64Value ?? 0) > nowMs {
                depth += 1
                oldest = min(oldest, item["CreatedAtMs"]?.int64Value ?? nowMs)
            }
        }
        return (depth, depth == 0 ? 0 : nowMs - oldest)
    }

    // MARK: table

    /// The table is active and has `DueIndex` (a table made by hand without it fails every poll).
    public func checkReady() throws(StoreError) {
        let answer = try table.request("DescribeTable") { _ in }
        guard case .string(let status)? = answer["Table"]?["TableStatus"], status == "ACTIVE" || status == "UPDATING" else {
            throw .unavailable("table \(table.name) is not active")
        }
        guard case .array(let indexes)? = answer["Table"]?["GlobalSecondaryIndexes"],
            indexes.contains(where: { $0["IndexName"] == .string(Self.dueIndex) })
        else {
            throw .invalidRequest("outbox table \(table.name) has no index \(Self.dueIndex) (see README \"Outbox on DynamoDB\")")
        }
    }

    /// Creates the table with `DueIndex` (on-demand capacity) if it is missing, waits until
    /// it is active, and turns TTL on for `ExpiresAt`; then checks the index is there. Safe
    /// to run from several replicas at once.
    public func createTableIfMissing(waitSeconds: Int = 60) throws(StoreError) {
        try table.createIfMissing(Self.schema, waitSeconds: waitSeconds)
        try checkReady()
    }
}

extension DynamoDBRestoreOutbox.Entry {
    init?(_ item: [String: AttributeValue]) {
        guard let conversationId = item["ConversationId"]?.stringValue, let sessionKey = item["SessionKey"]?.stringValue else {
            return nil
        }
        func n(_ name: String) -> Int64 { item[name]?.int64Value ?? 0 }
        func s(_ name: String) -> String { item[name]?.stringValue ?? "" }
        self.init(
            key: DynamoDBRestoreOutbox.EntryKey(conversationId: conversationId, sessionKey: sessionKey), sessionId: s("SessionId"),
            userId: s("UserId"),
            restoredFrom: s("RestoredFrom"), sessionVersion: n("SessionVersion"), createdAtMs: n("CreatedAtMs"),
            expiresAtMs: n("ExpiresAtMs"), attempts: n("Attempts"), nextAttemptMs: n("NextAttemptMs"), revision: n("Revision"),
            leaseOwner: s("LeaseOwner"), leaseUntilMs: n("LeaseUntilMs"), shard: n("Shard"), seq: n("Seq"))
    }

    var item: [String: AttributeValue] {
        var item: [String: AttributeValue] = [
            "ConversationId": .s(key.conversationId), "SessionKey": .s(key.sessionKey), "SessionId": .s(sessionId),
            "UserId": .s(userId), "SessionVersion": .int(sessionVersion), "CreatedAtMs": .int(createdAtMs),
            "ExpiresAtMs": .int(expiresAtMs), "ExpiresAt": .int(DynamoDBRestoreOutbox.ttlSeconds(expiresAtMs)),
            "Attempts": .int(attempts), "NextAttemptMs": .int(nextAttemptMs), "Revision": .int(revision),
            "LeaseUntilMs": .int(leaseUntilMs), "Shard": .int(shard), "Seq": .int(seq),
        ]
        // Empty strings are left out (absent reads back as ""): older DynamoDB-compatible
        // servers refuse them.
        if !restoredFrom.isEmpty { item["RestoredFrom"] = .s(restoredFrom) }
        if !leaseOwner.isEmpty { item["LeaseOwner"] = .s(leaseOwner) }
        return item
    }
}
