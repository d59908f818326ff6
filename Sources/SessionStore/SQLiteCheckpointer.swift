import CSQLite
import Dispatch
import Primitives

/// Checkpoints the sessions file's WAL on a thread of its own, so commits rarely wait for one.
/// Small and frequent (`SQLITE_CHECKPOINT_PAGES`, 100 by default): each pass's flush of the
/// database file delays the commits' WAL syncs on the same disk, so short flushes keep the
/// tail short (README, Performance: p99 5.5 ms instead of 12–15 ms at full load).
///
/// SQLite's default checkpoints inline: the commit that takes the WAL past 1000 pages
/// copies all of them into the database file and fsyncs it before its caller is answered,
/// and every request queued behind that group commit waits too. Under the webhook load,
/// checkpoints are most of the tail: with none at all (a WAL left to grow) p99 fell from
/// 10–17 ms to about 4 ms.
///
/// Here the write connection's WAL hook only looks at the WAL's size after each commit:
/// - at `pages` it wakes this thread, which runs a PASSIVE checkpoint on its own
///   connection: the bulk copy and the database fsync happen beside the commits;
/// - once that has caught up, the next commit checkpoints the few frames written meanwhile
///   inline (holding the write lock, so nothing new is appended), which lets the following
///   write restart the WAL from its beginning; a checkpoint that never catches up under
///   continuous writes would let the WAL grow without end;
/// - past `inlineLimit` pages (a checkpoint keeps failing, e.g. readers pin old frames) the
///   commit checkpoints inline as SQLite would.
final class SQLiteCheckpointer: @unchecked Sendable {
    struct Counts: Equatable, Sendable {
        /// PASSIVE checkpoints run by the background thread.
        var background = 0
        /// Checkpoints run by a committing connection (catch-up or over the limit).
        var inline = 0
    }

    private struct State {
        var requested = false
        var caughtUp = false
        var stopping = false
        var counts = Counts()
    }

    let pages: Int32
    let inlineLimit: Int32
    private let connection: SQLiteConnection
    private let state = Locked(State())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// `connection` is this thread's own and used by nobody else.
    init(connection: SQLiteConnection, pages: Int) {
        self.connection = connection
        self.pages = Int32(clamping: max(1, pages))
        self.inlineLimit = Int32(clamping: max(1, pages) * 4)
        // A checkpoint must not block on the busy handler: PASSIVE never waits, and a
        // checkpoint another process is running simply makes this one a no-op.
        sqlite3_busy_timeout(connection.db, 0)
        if !spawnThread(name: "sqlite-ckpoint", stackBytes: 256 * 1024, { [self] in run() }) {
            // No thread: SQLite's own inline checkpoints still bound the WAL (see attach).
            stopped.signal()
            state.withLock { $0.stopping = true }
        }
    }

    var counts: Counts { state.withLock { $0.counts } }

    /// Installs the WAL hook on the write connection. The connection must not outlive
    /// this checkpointer's `stop()` with the hook installed: `detach` removes it.
    func attach(to writer: SQLiteConnection) {
        if state.withLock({ $0.stopping }) {
            sqlite3_wal_autocheckpoint(writer.db, 1000)
            return
        }
        let context = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_wal_hook(writer.db, { context, db, name, walPages in
            guard let context, let db else { return SQLITE_OK }
            Unmanaged<SQLiteCheckpointer>.fromOpaque(context).takeUnretainedValue()
                .committed(db: db, name: name, walPages: walPages)
            return SQLITE_OK
        }, context)
    }

    func detach(from writer: SQLiteConnection) {
        sqlite3_wal_hook(writer.db, nil, nil)
    }

    /// Stops the thread and waits for it (a checkpoint under way finishes first).
    func stop() {
        let wasRunning = state.withLock { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        guard wasRunning else { return }
        wake.signal()
        stopped.wait()
    }

    /// The WAL hook: runs on the committing thread, right after its commit.
    private func committed(db: OpaquePointer, name: UnsafePointer<CChar>?, walPages: Int32) {
        guard walPages >= pages else { return }
        enum Action { case none, signal, inline }
        let action = state.withLock { s -> Action in
            if s.caughtUp || walPages >= inlineLimit || s.stopping {
                s.caughtUp = false
                s.counts.inline += 1
                return .inline
            }
            if s.requested { return .none }
            s.requested = true
            return .signal
        }
        switch action {
        case .none: break
        case .signal: wake.signal()
        case .inline: sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        }
    }

    private func run() {
        while true {
            wake.wait()
            if state.withLock({ $0.stopping }) { break }
            var logFrames: Int32 = 0
            var copied: Int32 = 0
            let rc = sqlite3_wal_checkpoint_v2(connection.db, nil, SQLITE_CHECKPOINT_PASSIVE, &logFrames, &copied)
            state.withLock { s in
                s.requested = false
                s.counts.background += 1
                // Caught up (or close): the next commit finishes the job inline and the WAL
                // restarts. Otherwise (busy, an error) the next commit asks again.
                s.caughtUp = rc == SQLITE_OK && copied >= 0 && logFrames - copied < pages
            }
        }
        stopped.signal()
    }
}
