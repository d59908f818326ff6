import CSQLite
import DialogWire
import Foundation
import Locking

/// The embedded store: one row per (conversation_id, version) in a SQLite file in WAL mode.
/// The primary key is the conditional write. Several processes may share the file: WAL lets
/// readers run beside the one writer, and `busy_timeout` makes writers queue for the lock.
public final class SQLiteStore: SessionStore {
    public struct Configuration: Sendable {
        public var path: String
        /// How long a write waits for another connection's lock before giving up (→ 503).
        public var busyTimeoutMs: Int = 5000
        /// `NORMAL` (default) survives a process crash; `FULL` also survives power loss
        /// at the price of an fsync per write.
        public var synchronous: String = "NORMAL"

        public init(path: String, busyTimeoutMs: Int = 5000, synchronous: String = "NORMAL") {
            self.path = path
            self.busyTimeoutMs = busyTimeoutMs
            self.synchronous = synchronous
        }
    }

    // Writes go through one connection and reads through another, so a long read never
    // waits for a write and vice versa. Each connection is used under its own lock only.
    private let writer: Locked<SQLiteConnection>
    private let reader: Locked<SQLiteConnection>
    public let configuration: Configuration

    static let schema = """
        CREATE TABLE IF NOT EXISTS snapshots(
            conversation_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            channel TEXT NOT NULL,
            previous_channel TEXT NOT NULL,
            intent TEXT NOT NULL,
            slots TEXT NOT NULL,
            ts INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            snapshot BLOB NOT NULL,
            PRIMARY KEY (conversation_id, version)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS snapshots_expires_at ON snapshots(expires_at);
        """

    public init(configuration: Configuration) throws(StoreError) {
        self.configuration = configuration
        let directory = (configuration.path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw .unavailable("cannot create folder \(directory): \(error.localizedDescription)")
            }
        }
        let writeConnection = try SQLiteConnection(
            path: configuration.path, busyTimeoutMs: configuration.busyTimeoutMs, synchronous: configuration.synchronous)
        do {
            try writeConnection.exec(Self.schema)
        } catch {
            throw .unavailable("cannot create schema in \(configuration.path): \(error.message)")
        }
        writer = Locked(writeConnection)
        reader = Locked(
            try SQLiteConnection(
                path: configuration.path, busyTimeoutMs: configuration.busyTimeoutMs,
                synchronous: configuration.synchronous))
    }

    private static func mapFailure(_ f: SQLiteConnection.Failure, _ what: String) -> StoreError {
        .unavailable("\(what): \(f.message) (sqlite \(f.extended))")
    }

    public func latest(_ conversationId: String) throws(StoreError) -> StoredVersion? {
        try read("read latest") { conn throws(SQLiteConnection.Failure) in
            var found: StoredVersion?
            try conn.query(
                "SELECT version, snapshot FROM snapshots WHERE conversation_id = ?1 ORDER BY version DESC LIMIT 1",
                bind: { $0.text(1, conversationId) },
                row: { found = StoredVersion(conversationId: conversationId, version: $0.int(0), bytes: $0.blob(1)) })
            return found
        }
    }

    public func version(_ conversationId: String, _ version: Int64) throws(StoreError) -> StoredVersion? {
        try read("read version") { conn throws(SQLiteConnection.Failure) in
            var found: StoredVersion?
            try conn.query(
                "SELECT version, snapshot FROM snapshots WHERE conversation_id = ?1 AND version = ?2",
                bind: { $0.text(1, conversationId); $0.int(2, version) },
                row: { found = StoredVersion(conversationId: conversationId, version: $0.int(0), bytes: $0.blob(1)) })
            return found
        }
    }

    public func versions(_ conversationId: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        try read("list versions") { conn throws(SQLiteConnection.Failure) in
            var found: [StoredVersion] = []
            try conn.query(
                "SELECT version, snapshot FROM snapshots WHERE conversation_id = ?1 AND version < ?2 ORDER BY version DESC LIMIT ?3",
                bind: {
                    $0.text(1, conversationId)
                    $0.int(2, before ?? Int64.max)
                    $0.int(3, Int64(limit))
                },
                row: { found.append(StoredVersion(conversationId: conversationId, version: $0.int(0), bytes: $0.blob(1))) })
            return found
        }
    }

    public func insert(_ snapshot: SessionSnapshot) throws(StoreError) {
        var slots = JSONWriter(capacity: 64)
        SessionSnapshot.writeStringMap(snapshot.slots, to: &slots)
        let bytes = snapshot.serializedBytes()
        let result: Result<Void, SQLiteConnection.Failure> = writer.withLock { conn in
            Result { () throws(SQLiteConnection.Failure) in
                try conn.query(
                    """
                    INSERT INTO snapshots(conversation_id, version, channel, previous_channel, intent, slots, ts,
                                          updated_at, expires_at, snapshot)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                    """,
                    bind: {
                        $0.text(1, snapshot.conversationId)
                        $0.int(2, snapshot.sessionVersion)
                        $0.text(3, snapshot.channel)
                        $0.text(4, snapshot.previousChannel)
                        $0.text(5, snapshot.intent)
                        $0.text(6, slots.string)
                        $0.int(7, snapshot.eventTimestamp)
                        $0.int(8, snapshot.updatedAt)
                        $0.int(9, snapshot.expiresAt)
                        $0.blob(10, bytes)
                    })
            }
        }
        if case .failure(let f) = result {
            if f.extended == csqlite_constraint_primarykey() || f.extended == csqlite_constraint_unique() {
                throw .versionConflict(conversationId: snapshot.conversationId, version: snapshot.sessionVersion)
            }
            throw Self.mapFailure(f, "insert")
        }
    }

    public func deleteConversation(_ conversationId: String) throws(StoreError) -> Int {
        try write("delete conversation") { conn throws(SQLiteConnection.Failure) in
            try conn.query("DELETE FROM snapshots WHERE conversation_id = ?1", bind: { $0.text(1, conversationId) })
            return conn.changes
        }
    }

    public func checkReady() throws(StoreError) {
        try read("ping") { conn throws(SQLiteConnection.Failure) in
            try conn.query("SELECT 1 FROM snapshots LIMIT 1", bind: { _ in })
        }
    }

    /// Deletes in batches so the write lock is never held for long.
    public func sweepExpired(now: Int64) throws(StoreError) -> Int {
        var total = 0
        while true {
            let deleted = try write("sweep expired") { conn throws(SQLiteConnection.Failure) in
                try conn.query(
                    """
                    DELETE FROM snapshots WHERE (conversation_id, version) IN
                      (SELECT conversation_id, version FROM snapshots WHERE expires_at <= ?1 LIMIT 500)
                    """, bind: { $0.int(1, now) })
                return conn.changes
            }
            total += deleted
            if deleted < 500 { return total }
        }
    }

    // MARK: locking helpers

    private func read<T: Sendable>(
        _ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T
    ) throws(StoreError) -> T {
        try run(on: reader, what, body)
    }

    private func write<T: Sendable>(
        _ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T
    ) throws(StoreError) -> T {
        try run(on: writer, what, body)
    }

    /// Runs `body` holding the connection's lock; maps SQLite failures to `StoreError`.
    private func run<T: Sendable>(
        on connection: Locked<SQLiteConnection>, _ what: String,
        _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T
    ) throws(StoreError) -> T {
        let result: Result<T, SQLiteConnection.Failure> = connection.withLock { conn in
            Result { () throws(SQLiteConnection.Failure) in try body(conn) }
        }
        switch result {
        case .success(let value): return value
        case .failure(let f): throw Self.mapFailure(f, what)
        }
    }
}
