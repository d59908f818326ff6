import Foundation
import Primitives

/// The restore queue in a local SQLite file (`OUTBOX_PATH`): survives restarts, and
/// several processes on one host may share the file; leases are claimed inside SQLite
/// write transactions, so two processes never send the same entry at once.
///
/// With a `protector` (ENCRYPTION_KEYS), the target's user and session ids are stored
/// sealed, and the entry is keyed by the session id's fingerprint instead of the id.
public final class RestoreOutbox: RestoreQueue {
    private let connection: Locked<SQLiteConnection>
    private let ids: OutboxIds

    static let schema = """
        CREATE TABLE IF NOT EXISTS restore_queue(
            conversation_id TEXT NOT NULL,
            session_key TEXT NOT NULL,
            session_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            restored_from TEXT NOT NULL,
            session_version INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_ms INTEGER NOT NULL,
            revision INTEGER NOT NULL,
            lease_owner TEXT NOT NULL,
            lease_until_ms INTEGER NOT NULL,
            PRIMARY KEY (conversation_id, session_key));
        CREATE INDEX IF NOT EXISTS restore_queue_due ON restore_queue(next_attempt_ms);
        """

    /// The first outbox kept a ready body per entry; its entries move over (delivery now
    /// reads the latest version anyway) and the old table goes.
    static let migration = """
        INSERT OR IGNORE INTO restore_queue
            SELECT conversation_id, session_id, session_id, user_id, '', 0, created_at_ms, expires_at * 1000, attempts,
                   next_attempt_ms, revision, '', 0 FROM restores;
        DROP TABLE restores;
        """

    public init(
        path: String, busyTimeoutMs: Int = 5000, synchronous: String = "FULL", protector: (any FieldProtector)? = nil
    ) throws(StoreError) {
        ids = OutboxIds(protector: protector)
        try SQLiteConnection.createParentFolder(of: path)
        let conn = try SQLiteConnection(path: path, busyTimeoutMs: busyTimeoutMs, synchronous: synchronous)
        do {
            try conn.exec(Self.schema)
            var hasOld = false
            try conn.query(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'restores'", bind: { _ in },
                row: { _ in hasOld = true })
            if hasOld { try conn.exec("BEGIN IMMEDIATE; \(Self.migration) COMMIT;") }
        } catch {
            throw .unavailable("cannot create outbox schema in \(path): \(error.message)")
        }
        connection = Locked(conn)
    }

    private func run<T: Sendable>(_ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T) throws(StoreError) -> T {
        try connection.run("outbox \(what)", body)
    }

    private static let claimColumns =
        "conversation_id, session_id, user_id, restored_from, session_version, lease_owner, revision, attempts, created_at_ms, expires_at_ms, session_key"

    /// A claim from a row, its ids opened; nil when they cannot be (a key no longer
    /// configured, or a value that does not authenticate): such an entry is undeliverable.
    private func claim(_ row: Row) -> RestoreClaim? {
        let conversationId = row.text(0)
        guard let opened = ids.open(conversationId: conversationId, sessionId: row.text(1), userId: row.text(2)) else { return nil }
        let target = RestoreTarget(
            conversationId: conversationId, sessionId: opened.sessionId, userId: opened.userId, restoredFrom: row.text(3))
        return RestoreClaim(
            target: target, sessionVersion: row.int(4), owner: row.text(5), revision: row.int(6), attempts: Int(row.int(7)),
            createdAtMs: row.int(8), expiresAtMs: row.int(9), sessionKey: row.text(10))
    }

    public func enqueue(
        _ target: RestoreTarget, sessionVersion: Int64, nowMs: Int64, ttlMs: Int64, leaseMs: Int64, owner: String
    ) throws(StoreError) -> RestoreClaim? {
        let sealed = try ids.seal(target)
        let sessionKey = ids.key(target)
        return try run("enqueue") { conn throws(SQLiteConnection.Failure) -> RestoreClaim? in
            var result: RestoreClaim?
            // A free lease (expired, or none) is taken; a held one is left to its holder,
            // who sees the new revision when it finishes and releases the entry, due at once.
            // An expired entry counts as absent (new version, new age) but keeps counting its
            // revision, so a stale claim of it can never match the new one. (SET expressions
            // all read the row as it was before the update.)
            try conn.query(
                """
                INSERT INTO restore_queue(conversation_id, session_key, session_id, user_id, restored_from, session_version,
                                          created_at_ms, expires_at_ms, attempts, next_attempt_ms, revision, lease_owner,
                                          lease_until_ms)
                VALUES (?1, ?10, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, 1, ?9, ?8)
                ON CONFLICT(conversation_id, session_key) DO UPDATE SET
                    session_id = excluded.session_id, user_id = excluded.user_id, restored_from = excluded.restored_from,
                    session_version = CASE WHEN expires_at_ms <= ?6 THEN excluded.session_version
                                           ELSE max(session_version, excluded.session_version) END,
                    created_at_ms = CASE WHEN expires_at_ms <= ?6 THEN excluded.created_at_ms ELSE created_at_ms END,
                    expires_at_ms = excluded.expires_at_ms, attempts = 0, revision = revision + 1,
                    lease_owner = CASE WHEN lease_until_ms <= ?6 THEN excluded.lease_owner ELSE lease_owner END,
                    next_attempt_ms = CASE WHEN lease_until_ms <= ?6 THEN excluded.next_attempt_ms ELSE next_attempt_ms END,
                    lease_until_ms = CASE WHEN lease_until_ms <= ?6 THEN excluded.lease_until_ms ELSE lease_until_ms END
                RETURNING \(Self.claimColumns)
                """,
                bind: {
                    $0.text(1, target.conversationId); $0.text(2, sealed.sessionId); $0.text(3, sealed.userId)
                    $0.text(4, target.restoredFrom); $0.int(5, sessionVersion); $0.int(6, nowMs)
                    $0.int(7, nowMs &+ ttlMs); $0.int(8, nowMs &+ leaseMs); $0.text(9, owner); $0.text(10, sessionKey)
                },
                row: { row in
                    let owner = row.text(5), revision = row.int(6), attempts = Int(row.int(7))
                    result = RestoreClaim(
                        target: target, sessionVersion: row.int(4), owner: owner, revision: revision, attempts: attempts,
                        createdAtMs: row.int(8), expiresAtMs: row.int(9), sessionKey: sessionKey)
                })
            guard let result, result.owner == owner else { return nil }
            return result
        }
    }

    public func claimNext(nowMs: Int64, leaseMs: Int64, owner: String) throws(StoreError) -> RestoreClaim? {
        try run("claim") { conn throws(SQLiteConnection.Failure) -> RestoreClaim? in
            for _ in 0..<16 {
                var found = false
                var result: RestoreClaim?
                var undeliverable: (String, String)?
                // One UPDATE is one write transaction: no other process can claim the same row.
                try conn.query(
                    """
                    UPDATE restore_queue SET lease_owner = ?2, lease_until_ms = ?3
                    WHERE rowid = (SELECT rowid FROM restore_queue WHERE next_attempt_ms <= ?1 AND lease_until_ms <= ?1
                                   ORDER BY next_attempt_ms LIMIT 1)
                    RETURNING \(Self.claimColumns)
                    """,
                    bind: { $0.int(1, nowMs); $0.text(2, owner); $0.int(3, nowMs &+ leaseMs) },
                    row: { row in
                        found = true
                        result = claim(row)
                        if result == nil { undeliverable = (row.text(0), row.text(10)) }
                    })
                guard found else { return nil }
                if let result { return result }
                // Ids that no configured key opens: nobody can ever send it; drop it.
                if let (conversationId, sessionKey) = undeliverable {
                    try conn.query(
                        "DELETE FROM restore_queue WHERE conversation_id = ?1 AND session_key = ?2",
                        bind: { $0.text(1, conversationId); $0.text(2, sessionKey) })
                }
            }
            return nil
        }
    }

    public func complete(_ claim: RestoreClaim, nowMs: Int64) throws(StoreError) {
        try run("complete") { conn throws(SQLiteConnection.Failure) in
            let t = claim.target
            try conn.query(
                "DELETE FROM restore_queue WHERE conversation_id = ?1 AND session_key = ?2 AND revision = ?3 AND lease_owner = ?4",
                bind: { $0.text(1, t.conversationId); $0.text(2, claim.sessionKey); $0.int(3, claim.revision); $0.text(4, claim.owner) })
            if conn.changes == 0 {
                // Queued again while we sent: release it, due now, so the newer version goes out.
                try Self.release(conn, claim, nextAttemptMs: nowMs, countAttempt: false)
            }
        }
    }

    public func retry(_ claim: RestoreClaim, nextAttemptMs: Int64) throws(StoreError) {
        try run("retry") { conn throws(SQLiteConnection.Failure) in
            try Self.release(conn, claim, nextAttemptMs: nextAttemptMs, countAttempt: true)
        }
    }

    private static func release(
        _ conn: SQLiteConnection, _ claim: RestoreClaim, nextAttemptMs: Int64, countAttempt: Bool
    ) throws(SQLiteConnection.Failure) {
        let t = claim.target
        try conn.query(
            """
            UPDATE restore_queue SET lease_owner = '', lease_until_ms = 0, next_attempt_ms = ?4, attempts = attempts + ?5
            WHERE conversation_id = ?1 AND session_key = ?2 AND lease_owner = ?3
            """,
            bind: {
                $0.text(1, t.conversationId); $0.text(2, claim.sessionKey); $0.text(3, claim.owner); $0.int(4, nextAttemptMs)
                $0.int(5, countAttempt ? 1 : 0)
            })
    }

    @discardableResult
    public func removeConversation(_ conversationId: String) throws(StoreError) -> Int {
        try run("remove conversation") { conn throws(SQLiteConnection.Failure) in
            try conn.query("DELETE FROM restore_queue WHERE conversation_id = ?1", bind: { $0.text(1, conversationId) })
            return conn.changes
        }
    }

    /// Expired entries (left for the worker to drop) do not count.
    public func stats(nowMs: Int64) throws(StoreError) -> (depth: Int, oldestAgeMs: Int64) {
        try run("stats") { conn throws(SQLiteConnection.Failure) in
            var depth = 0
            var oldest: Int64 = 0
            try conn.query(
                "SELECT count(*), coalesce(min(created_at_ms), 0) FROM restore_queue WHERE expires_at_ms > ?1",
                bind: { $0.int(1, nowMs) },
                row: { depth = Int($0.int(0)); oldest = $0.int(1) })
            return (depth, depth == 0 ? 0 : nowMs - oldest)
        }
    }
}
