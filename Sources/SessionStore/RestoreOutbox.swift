import Foundation
import Primitives

/// One restore waiting to be delivered to Cognigy.
public struct PendingRestore: Sendable, Equatable {
    public let conversationId: String
    public let sessionId: String
    public let userId: String
    /// The JSON body to POST.
    public let body: [UInt8]
    /// Epoch ms when first queued.
    public let createdAtMs: Int64
    /// Epoch seconds after which it is dropped (the snapshot TTL).
    public let expiresAt: Int64
    public let attempts: Int
    /// Bumped on every upsert, so a delivery only removes the revision it delivered.
    public let revision: Int64
}

/// The durable queue of restores not delivered inline (SQLite at OUTBOX_PATH). Only the
/// newest pending restore per (conversation, target session) is kept: a newer one replaces
/// it. Survives restarts; several processes may share the file.
public final class RestoreOutbox: Sendable {
    private let connection: Locked<SQLiteConnection>

    public init(path: String, busyTimeoutMs: Int = 5000) throws(StoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let conn = try SQLiteConnection(path: path, busyTimeoutMs: busyTimeoutMs, synchronous: "NORMAL")
        do {
            try conn.exec(
                """
                CREATE TABLE IF NOT EXISTS restores(
                    conversation_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    body BLOB NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    attempts INTEGER NOT NULL,
                    next_attempt_ms INTEGER NOT NULL,
                    revision INTEGER NOT NULL,
                    PRIMARY KEY (conversation_id, session_id));
                CREATE INDEX IF NOT EXISTS restores_due ON restores(next_attempt_ms);
                """)
        } catch {
            throw .unavailable("cannot create outbox schema in \(path): \(error.message)")
        }
        connection = Locked(conn)
    }

    private func run<T: Sendable>(_ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T) throws(StoreError) -> T {
        try connection.run("outbox \(what)", body)
    }

    /// Stores (or replaces) the restore for (conversation, session); returns its revision.
    @discardableResult
    public func upsert(
        conversationId: String, sessionId: String, userId: String, body: [UInt8], nowMs: Int64, expiresAt: Int64,
        nextAttemptMs: Int64
    ) throws(StoreError) -> Int64 {
        try run("upsert") { conn throws(SQLiteConnection.Failure) in
            var revision: Int64 = 0
            try conn.query(
                """
                INSERT INTO restores(conversation_id, session_id, user_id, body, created_at_ms, expires_at, attempts,
                                     next_attempt_ms, revision)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, 1)
                ON CONFLICT(conversation_id, session_id) DO UPDATE SET
                    user_id = excluded.user_id, body = excluded.body, expires_at = excluded.expires_at, attempts = 0,
                    next_attempt_ms = excluded.next_attempt_ms, revision = restores.revision + 1
                RETURNING revision
                """,
                bind: {
                    $0.text(1, conversationId); $0.text(2, sessionId); $0.text(3, userId); $0.blob(4, body)
                    $0.int(5, nowMs); $0.int(6, expiresAt); $0.int(7, nextAttemptMs)
                },
                row: { revision = $0.int(0) })
            return revision
        }
    }

    /// Restores whose next attempt is due, oldest first.
    public func due(nowMs: Int64, limit: Int) throws(StoreError) -> [PendingRestore] {
        try run("read due") { conn throws(SQLiteConnection.Failure) in
            var out: [PendingRestore] = []
            try conn.query(
                """
                SELECT conversation_id, session_id, user_id, body, created_at_ms, expires_at, attempts, revision
                FROM restores WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms LIMIT ?2
                """,
                bind: { $0.int(1, nowMs); $0.int(2, Int64(limit)) },
                row: {
                    out.append(
                        PendingRestore(
                            conversationId: $0.text(0), sessionId: $0.text(1), userId: $0.text(2), body: $0.blob(3),
                            createdAtMs: $0.int(4), expiresAt: $0.int(5), attempts: Int($0.int(6)), revision: $0.int(7)))
                })
            return out
        }
    }

    /// Removes the restore if it is still at `revision` (a newer one stays queued).
    @discardableResult
    public func remove(conversationId: String, sessionId: String, revision: Int64) throws(StoreError) -> Bool {
        try run("remove") { conn throws(SQLiteConnection.Failure) in
            try conn.query(
                "DELETE FROM restores WHERE conversation_id = ?1 AND session_id = ?2 AND revision = ?3",
                bind: { $0.text(1, conversationId); $0.text(2, sessionId); $0.int(3, revision) })
            return conn.changes == 1
        }
    }

    /// Schedules the next attempt of `revision`.
    public func reschedule(conversationId: String, sessionId: String, revision: Int64, nextAttemptMs: Int64) throws(StoreError) {
        try run("reschedule") { conn throws(SQLiteConnection.Failure) in
            try conn.query(
                """
                UPDATE restores SET attempts = attempts + 1, next_attempt_ms = ?4
                WHERE conversation_id = ?1 AND session_id = ?2 AND revision = ?3
                """,
                bind: { $0.text(1, conversationId); $0.text(2, sessionId); $0.int(3, revision); $0.int(4, nextAttemptMs) })
        }
    }

    /// Erases every queued restore of a conversation (DELETE /sessions/{id}).
    @discardableResult
    public func removeConversation(_ conversationId: String) throws(StoreError) -> Int {
        try run("remove conversation") { conn throws(SQLiteConnection.Failure) in
            try conn.query("DELETE FROM restores WHERE conversation_id = ?1", bind: { $0.text(1, conversationId) })
            return conn.changes
        }
    }

    /// Whether a restore for (conversation, session) is still queued at `revision`.
    public func contains(conversationId: String, sessionId: String, revision: Int64) throws(StoreError) -> Bool {
        try run("lookup") { conn throws(SQLiteConnection.Failure) in
            var found = false
            try conn.query(
                "SELECT 1 FROM restores WHERE conversation_id = ?1 AND session_id = ?2 AND revision = ?3",
                bind: { $0.text(1, conversationId); $0.text(2, sessionId); $0.int(3, revision) }, row: { _ in found = true })
            return found
        }
    }

    /// Queue depth and the age of the oldest entry (ms), for operators.
    public func stats(nowMs: Int64) throws(StoreError) -> (depth: Int, oldestAgeMs: Int64) {
        try run("stats") { conn throws(SQLiteConnection.Failure) in
            var depth = 0
            var oldest: Int64 = 0
            try conn.query(
                "SELECT count(*), coalesce(min(created_at_ms), 0) FROM restores", bind: { _ in },
                row: { depth = Int($0.int(0)); oldest = $0.int(1) })
            return (depth, depth == 0 ? 0 : nowMs - oldest)
        }
    }
}
