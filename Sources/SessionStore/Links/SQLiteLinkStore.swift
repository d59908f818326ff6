import CSQLite
import Primitives

/// Links in a table of the sessions' SQLite file, through a connection of their own (a
/// link write never queues behind the snapshots' group commit). The primary key is the
/// conditional write; replaces and deletes are guarded by the row's conversation and
/// `created_at`, so a stale reader cannot undo another writer's link.
public final class SQLiteLinkStore: LinkStore {
    private let connection: Locked<SQLiteConnection>

    static let schema = """
        CREATE TABLE IF NOT EXISTS links(
            link_key TEXT PRIMARY KEY NOT NULL,
            conversation_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS links_conversation ON links(conversation_id);
        CREATE INDEX IF NOT EXISTS links_expires_at ON links(expires_at);
        """

    public init(configuration: SQLiteStore.Configuration) throws(StoreError) {
        try SQLiteConnection.createParentFolder(of: configuration.path)
        let conn = try configuration.open()
        // The sessions' writer checkpoints this file off the commit path; this connection
        // checkpoints inline only where that one would (past 4× SQLITE_CHECKPOINT_PAGES).
        sqlite3_wal_autocheckpoint(conn.db, Int32(clamping: configuration.checkpointPages * 4))
        do { try conn.exec(Self.schema) } catch {
            throw .unavailable("cannot create the links table in \(configuration.path): \(error.message)")
        }
        connection = Locked(conn)
    }

    private func run<T: Sendable>(_ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T) throws(StoreError) -> T {
        try connection.run("links: \(what)", body)
    }

    public func link(_ key: String) throws(StoreError) -> StoredLink? {
        try run("read") { conn throws(SQLiteConnection.Failure) in
            var found: StoredLink?
            try conn.query(
                "SELECT conversation_id, created_at, expires_at FROM links WHERE link_key = ?1", bind: { $0.text(1, key) },
                row: { found = StoredLink(key: key, conversationId: $0.text(0), createdAt: $0.int(1), expiresAt: $0.int(2)) })
            return found
        }
    }

    public func putLink(_ link: StoredLink, replacing: StoredLink?) throws(StoreError) -> Bool {
        try run("write") { conn throws(SQLiteConnection.Failure) in
            if let old = replacing {
                try conn.query(
                    """
                    UPDATE links SET conversation_id = ?2, created_at = ?3, expires_at = ?4
                    WHERE link_key = ?1 AND conversation_id = ?5 AND created_at = ?6
                    """,
                    bind: {
                        $0.text(1, link.key); $0.text(2, link.conversationId); $0.int(3, link.createdAt)
                        $0.int(4, link.expiresAt); $0.text(5, old.conversationId); $0.int(6, old.createdAt)
                    })
            } else {
                try conn.query(
                    """
                    INSERT INTO links(link_key, conversation_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                    ON CONFLICT(link_key) DO NOTHING
                    """,
                    bind: {
                        $0.text(1, link.key); $0.text(2, link.conversationId); $0.int(3, link.createdAt); $0.int(4, link.expiresAt)
                    })
            }
            return conn.changes == 1
        }
    }

    public func touchLink(_ key: String, conversationId: String, expiresAt: Int64) throws(StoreError) {
        try run("touch") { conn throws(SQLiteConnection.Failure) in
            try conn.query(
                "UPDATE links SET expires_at = ?3 WHERE link_key = ?1 AND conversation_id = ?2 AND expires_at < ?3",
                bind: { $0.text(1, key); $0.text(2, conversationId); $0.int(3, expiresAt) })
        }
    }

    public func deleteLink(_ link: StoredLink) throws(StoreError) -> Bool {
        try run("delete") { conn throws(SQLiteConnection.Failure) in
            try conn.query(
                "DELETE FROM links WHERE link_key = ?1 AND conversation_id = ?2 AND created_at = ?3",
                bind: { $0.text(1, link.key); $0.text(2, link.conversationId); $0.int(3, link.createdAt) })
            return conn.changes == 1
        }
    }

    public func deleteLinks(conversationId: String) throws(StoreError) -> Int {
        try run("delete conversation") { conn throws(SQLiteConnection.Failure) in
            try conn.query("DELETE FROM links WHERE conversation_id = ?1", bind: { $0.text(1, conversationId) })
            return conn.changes
        }
    }

    public func sweepExpiredLinks(now: Int64) throws(StoreError) -> Int {
        var total = 0
        while true {
            let deleted = try run("sweep") { conn throws(SQLiteConnection.Failure) in
                try conn.query(
                    "DELETE FROM links WHERE rowid IN (SELECT rowid FROM links WHERE expires_at <= ?1 LIMIT 500)",
                    bind: { $0.int(1, now) })
                return conn.changes
            }
            total += deleted
            if deleted < 500 { return total }
        }
    }
}
