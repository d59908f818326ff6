import CSQLite
import DialogWire
import Foundation
import Dispatch
import Primitives

/// The embedded store: one row per (conversation_id, version) in a SQLite file in WAL mode.
/// The primary key is the conditional write. Several processes may share the file: WAL lets
/// readers run beside the one writer, and `busy_timeout` makes writers queue for the lock.
public final class SQLiteStore: SessionStore {
    public struct Configuration: Sendable {
        public var path: String
        /// How long a write waits for another connection's lock before giving up (→ 503).
        public var busyTimeoutMs: Int = 5000
        /// `FULL` (default, SPEC: a 200 means durably stored) survives power loss at the
        /// price of an fsync per commit, which group commit shares among a batch; `NORMAL`
        /// survives a process crash only.
        public var synchronous: String = "FULL"
        /// Read connections (`SQLITE_READ_CONNECTIONS`): WAL readers never block each other,
        /// so concurrent requests read in parallel instead of queueing on one connection's lock.
        public var readConnections = 4
        /// WAL pages at which a background checkpoint starts (`SQLITE_CHECKPOINT_PAGES`);
        /// commits checkpoint inline only past 4× this (see `SQLiteCheckpointer`).
        public var checkpointPages = 100

        public init(
            path: String, busyTimeoutMs: Int = 5000, synchronous: String = "FULL", readConnections: Int = 4,
            checkpointPages: Int = 100
        ) {
            self.path = path
            self.busyTimeoutMs = busyTimeoutMs
            self.synchronous = synchronous
            self.readConnections = max(1, readConnections)
            self.checkpointPages = max(1, checkpointPages)
        }

        /// A connection to this file with these settings.
        func open() throws(StoreError) -> SQLiteConnection {
            try SQLiteConnection(path: path, busyTimeoutMs: busyTimeoutMs, synchronous: synchronous)
        }
    }

    // Writes go through one connection and reads through another, so a long read never
    // waits for a write and vice versa. Each connection is used under its own lock only.
    private let writer: Locked<SQLiteConnection>
    private let readers: SQLiteConnectionPool
    public let configuration: Configuration
    private let groupCommit: SQLiteGroupCommit<PendingWrite>
    private let checkpointer: SQLiteCheckpointer

    /// A rowid table on purpose: rows (up to about 0.6 KB, the 64 remembered event ids as digests) are
    /// appended in rowid order, so a commit writes them to a few sequential pages, while the
    /// primary-key index that takes the random inserts holds only small entries. Clustering
    /// the rows by the key (WITHOUT ROWID) measured 10.6k instead of 16.2k webhook writes/s.
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
        );
        CREATE INDEX IF NOT EXISTS snapshots_expires_at ON snapshots(expires_at);
        """

    public init(configuration: Configuration) throws(StoreError) {
        self.configuration = configuration
        try SQLiteConnection.createParentFolder(of: configuration.path)
        let writeConnection = try configuration.open()
        do {
            try writeConnection.exec(Self.schema)
        } catch {
            throw .unavailable("cannot create schema in \(configuration.path): \(error.message)")
        }
        let checkpointConnection = try configuration.open()
        readers = SQLiteConnectionPool(size: configuration.readConnections) { () throws(StoreError) in
            try configuration.open()
        }
        // Open one now, so a file that cannot be read fails start-up rather than the first request.
        try readers.warmUp()
        // Threads last: nothing below throws, so a store that fails to open leaves none behind.
        checkpointer = SQLiteCheckpointer(connection: checkpointConnection, pages: configuration.checkpointPages)
        checkpointer.attach(to: writeConnection)
        let writer = Locked(writeConnection)
        self.writer = writer
        groupCommit = SQLiteGroupCommit { batch in Self.commit(batch, on: writer) }
    }

    deinit {
        groupCommit.stop()
        writer.withLock { checkpointer.detach(from: $0) }
        checkpointer.stop()
    }

    /// Group-commit batches so far and the writes they held.
    var commitBatches: (batches: Int, writes: Int) { groupCommit.stats }

    /// Checkpoints run so far, in the background and inline.
    var checkpoints: SQLiteCheckpointer.Counts { checkpointer.counts }

    /// The columns every read selects, in the order `stored` reads them.
    static let columns = "version, snapshot, updated_at, expires_at"

    private static func stored(_ conversationId: String, _ row: Row) -> StoredVersion {
        let bytes = row.blob(1)
        return StoredVersion(
            conversationId: conversationId, version: row.int(0), updatedAt: row.int(2), expiresAt: row.int(3), bytes: bytes,
            fingerprint: BytesFingerprint.of(bytes))
    }

    public func latest(_ conversationId: String) throws(StoreError) -> StoredVersion? {
        try read("read latest") { conn throws(SQLiteConnection.Failure) in
            var found: StoredVersion?
            try conn.query(
                "SELECT \(Self.columns) FROM snapshots WHERE conversation_id = ?1 ORDER BY version DESC LIMIT 1",
                bind: { $0.text(1, conversationId) },
                row: { found = Self.stored(conversationId, $0) })
            return found
        }
    }

    public func version(_ conversationId: String, _ version: Int64) throws(StoreError) -> StoredVersion? {
        try read("read version") { conn throws(SQLiteConnection.Failure) in
            var found: StoredVersion?
            try conn.query(
                "SELECT \(Self.columns) FROM snapshots WHERE conversation_id = ?1 AND version = ?2",
                bind: { $0.text(1, conversationId); $0.int(2, version) },
                row: { found = Self.stored(conversationId, $0) })
            return found
        }
    }

    public func versions(_ conversationId: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        try read("list versions") { conn throws(SQLiteConnection.Failure) in
            var found: [StoredVersion] = []
            try conn.query(
                "SELECT \(Self.columns) FROM snapshots WHERE conversation_id = ?1 AND version < ?2 ORDER BY version DESC LIMIT ?3",
                bind: {
                    $0.text(1, conversationId)
                    $0.int(2, before ?? Int64.max)
                    $0.int(3, Int64(limit))
                },
                row: { found.append(Self.stored(conversationId, $0)) })
            return found
        }
    }

    /// Conditional insert with group commit (`SQLiteGroupCommit`): concurrent callers' rows
    /// commit together in one transaction (each `ON CONFLICT DO NOTHING`, a row that changed
    /// nothing is that caller's version conflict). One commit then writes the hot B-tree
    /// pages and syncs the WAL once per batch instead of once per row. Nobody is answered
    /// before its transaction commits, and a failed commit fails the whole batch.
    public func insert(_ snapshot: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) -> WriteBasis {
        let (write, written) = Self.pending(snapshot, after: basis)
        try groupCommit.submit(write)
        return written
    }

    /// `insert` for the writer thread to finish: `done` is called there once the batch is
    /// durable (or failed), so no thread waits for the commit.
    public func insertLater(
        _ snapshot: SessionSnapshot, after basis: WriteBasis?, done: @escaping @Sendable (Result<WriteBasis, StoreError>) -> Void
    ) -> Bool {
        let (write, written) = Self.pending(snapshot, after: basis)
        return groupCommit.submitLater(write) { result in done(result.map { written }) }
    }

    public var writesLater: Bool { groupCommit.hasWriterThread }

    /// A snapshot as the commit writes it (encoded on the caller's thread, not the writer's),
    /// and the basis a write of the following version will need.
    private static func pending(_ snapshot: SessionSnapshot, after basis: WriteBasis?) -> (PendingWrite, WriteBasis) {
        var slots = JSONWriter(capacity: 64)
        SessionSnapshot.writeStringMap(snapshot.slots, to: &slots)
        let bytes = snapshot.serializedBytes()
        return (
            PendingWrite(snapshot: snapshot, basis: basis, slotsJSON: slots.string, bytes: bytes),
            WriteBasis(version: snapshot.sessionVersion, updatedAt: snapshot.updatedAt, fingerprint: BytesFingerprint.of(bytes))
        )
    }

    /// One transaction for a batch; a result per write, in order.
    private static func commit(_ batch: [PendingWrite], on writer: Locked<SQLiteConnection>) -> [Result<Void, StoreError>] {
        writer.withLock { conn -> [Result<Void, StoreError>] in
            do throws(SQLiteConnection.Failure) {
                try conn.query("BEGIN IMMEDIATE", bind: { _ in })
            } catch {
                return Array(repeating: .failure(error.storeError("begin")), count: batch.count)
            }
            var results: [Result<Void, StoreError>] = []
            results.reserveCapacity(batch.count)
            do throws(SQLiteConnection.Failure) {
                for write in batch {
                    let s = write.snapshot
                    // SPEC: n+1 is written only while the very version n it was built from is
                    // still stored (same updated_at), inside the same transaction: a DELETE or
                    // the sweeper that removed n in between makes this a version conflict.
                    if let basis = write.basis {
                        var stillThere = false
                        if let fingerprint = basis.fingerprint {
                            try conn.query(
                                "SELECT updated_at, snapshot FROM snapshots WHERE conversation_id = ?1 AND version = ?2",
                                bind: { $0.text(1, s.conversationId); $0.int(2, basis.version) },
                                row: { stillThere = $0.int(0) == basis.updatedAt && BytesFingerprint.of($0.blob(1)) == fingerprint })
                        } else {
                            try conn.query(
                                "SELECT updated_at FROM snapshots WHERE conversation_id = ?1 AND version = ?2",
                                bind: { $0.text(1, s.conversationId); $0.int(2, basis.version) },
                                row: { stillThere = $0.int(0) == basis.updatedAt })
                        }
                        guard stillThere else {
                            results.append(.failure(.versionConflict(conversationId: s.conversationId, version: s.sessionVersion)))
                            continue
                        }
                    }
                    try conn.query(
                        """
                        INSERT INTO snapshots(conversation_id, version, channel, previous_channel, intent, slots, ts,
                                              updated_at, expires_at, snapshot)
                        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                        ON CONFLICT(conversation_id, version) DO NOTHING
                        """,
                        bind: {
                            $0.text(1, s.conversationId)
                            $0.int(2, s.sessionVersion)
                            $0.text(3, s.channel)
                            $0.text(4, s.previousChannel)
                            $0.text(5, s.intent)
                            $0.text(6, write.slotsJSON)
                            $0.int(7, s.eventTimestamp)
                            $0.int(8, s.updatedAt)
                            $0.int(9, s.expiresAt)
                            $0.blob(10, write.bytes)
                        })
                    results.append(
                        conn.changes == 1
                            ? .success(())
                            : .failure(.versionConflict(conversationId: s.conversationId, version: s.sessionVersion)))
                }
                try conn.query("COMMIT", bind: { _ in })
                return results
            } catch {
                try? conn.query("ROLLBACK", bind: { _ in })
                return Array(repeating: .failure(error.storeError("insert")), count: batch.count)
            }
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
                    DELETE FROM snapshots WHERE rowid IN
                      (SELECT rowid FROM snapshots WHERE expires_at <= ?1 LIMIT 500)
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
        try readers.run(what, body)
    }

    private func write<T: Sendable>(
        _ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T
    ) throws(StoreError) -> T {
        try writer.run(what, body)
    }
}

/// One caller's conditional insert, as the writer thread commits it.
private struct PendingWrite: Sendable {
    let snapshot: SessionSnapshot
    let basis: WriteBasis?
    let slotsJSON: String
    let bytes: [UInt8]
}
