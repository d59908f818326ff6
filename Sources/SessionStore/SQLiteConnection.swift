import CSQLite
import Foundation
import Primitives

/// One SQLite connection with its prepared statements. Not thread-safe by itself: the
/// store only touches it inside a lock, which is why it is opened SQLITE_OPEN_NOMUTEX.
///
/// `@unchecked Sendable` because the compiler cannot see that guarantee through the
/// closures `SQLiteStore.read`/`write` pass it to: every use is inside `Locked.withLock`,
/// no reference escapes the lock, and `deinit` runs only when the store is gone.
final class SQLiteConnection: @unchecked Sendable {
    let db: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]

    struct Failure: Error {
        let code: Int32
        let extended: Int32
        let message: String

        /// The one mapping of a SQLite failure: the store cannot take the request now.
        func storeError(_ what: String) -> StoreError { .unavailable("\(what): \(message) (sqlite \(extended))") }
    }

    init(path: String, busyTimeoutMs: Int, synchronous: String) throws(StoreError) {
        // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the
        // database file's mode, so none of the three is readable by other users. Only when it
        // does not exist yet: closing any descriptor of a file drops every POSIX lock the
        // process holds on it, including the SHARED lock each open WAL connection keeps. With
        // those gone, another process (a second replica, an operator's sqlite3) closing its
        // connection believes it is the last one, checkpoints and deletes the -wal and -shm
        // files under the running service, whose later commits then go to a deleted WAL file
        // and are lost.
        var info = stat()
        if stat(path, &info) != 0, errno == ENOENT {
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw .unavailable("cannot open \(path): \(message)")
        }
        db = handle
        sqlite3_extended_result_codes(db, 1)
        // busy_timeout first: the pragmas below may wait for another process's lock.
        sqlite3_busy_timeout(db, Int32(clamping: busyTimeoutMs))
        do {
            try exec("PRAGMA journal_mode=WAL")
            try exec("PRAGMA synchronous=\(synchronous)")
        } catch {
            throw .unavailable("cannot configure \(path): \(error.message)")
        }
    }

    /// Creates the folder a database file lives in (mode 0700: only the service reads it).
    static func createParentFolder(of path: String) throws(StoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        guard !directory.isEmpty else { return }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .unavailable("cannot create folder \(directory): \(error.localizedDescription)")
        }
    }

    deinit {
        for (_, stmt) in statements { sqlite3_finalize(stmt) }
        sqlite3_close_v2(db)
    }

    func exec(_ sql: String) throws(Failure) {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errmsg)
            throw Failure(code: rc & 0xFF, extended: rc, message: message)
        }
    }

    /// A cached prepared statement, reset and with bindings cleared.
    func statement(_ sql: String) throws(Failure) -> OpaquePointer {
        if let stmt = statements[sql] { return stmt }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw failure(rc) }
        statements[sql] = stmt
        return stmt
    }

    func failure(_ rc: Int32) -> Failure {
        Failure(code: rc & 0xFF, extended: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)))
    }

    /// Runs `sql` with `bind`, calls `row` for each result row, and resets the statement.
    func query(
        _ sql: String, bind: (Binder) -> Void, row: (Row) -> Void = { _ in }
    ) throws(Failure) {
        let stmt = try statement(sql)
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        bind(Binder(stmt: stmt))
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_ROW {
                row(Row(stmt: stmt))
            } else if rc == SQLITE_DONE {
                return
            } else {
                throw failure(rc)
            }
        }
    }

    var changes: Int { Int(sqlite3_changes(db)) }
}

extension Locked where Value == SQLiteConnection {
    /// Runs `body` holding this connection's lock; SQLite failures become
    /// `StoreError.unavailable` naming `what`.
    func run<T: Sendable>(
        _ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T
    ) throws(StoreError) -> T {
        let result: Result<T, SQLiteConnection.Failure> = withLock { conn in
            Result { () throws(SQLiteConnection.Failure) in try body(conn) }
        }
        switch result {
        case .success(let value): return value
        case .failure(let f): throw f.storeError(what)
        }
    }
}

struct Binder {
    let stmt: OpaquePointer
    func text(_ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { buf in
            _ = buf.withMemoryRebound(to: CChar.self) {
                csqlite_bind_text_transient(stmt, index, $0.baseAddress, Int32($0.count))
            }
        }
    }
    func int(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(stmt, index, value) }
    func blob(_ index: Int32, _ value: [UInt8]) {
        value.withUnsafeBytes { _ = csqlite_bind_blob_transient(stmt, index, $0.baseAddress, Int32($0.count)) }
    }
}

struct Row {
    let stmt: OpaquePointer
    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
    /// The column's exact bytes as UTF-8 (invalid sequences repaired). Not
    /// `String(cString:)`: that stops at a NUL, so an id holding one came back truncated
    /// and no longer matched its own row.
    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, column) else { return "" }
        let count = Int(sqlite3_column_bytes(stmt, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: count), as: UTF8.self)
    }
    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard count > 0, let p = sqlite3_column_blob(stmt, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }
}

/// At most `size` connections, opened on first need and reused; a caller waits only when
/// all are in use. Each connection is used by one thread at a time.
final class SQLiteConnectionPool: Sendable {
    private let idle = Locked<[SQLiteConnection]>([])
    private let opened = Locked(0)
    private let slots: DispatchSemaphore
    private let open: @Sendable () throws(StoreError) -> SQLiteConnection
    let size: Int

    init(size: Int, open: @escaping @Sendable () throws(StoreError) -> SQLiteConnection) {
        self.size = max(1, size)
        self.slots = DispatchSemaphore(value: self.size)
        self.open = open
    }

    func warmUp() throws(StoreError) {
        let connection = try open()
        opened.withLock { $0 += 1 }
        idle.withLock { $0.append(connection) }
    }

    func run<T: Sendable>(
        _ what: String, _ body: (SQLiteConnection) throws(SQLiteConnection.Failure) -> T
    ) throws(StoreError) -> T {
        slots.wait()
        defer { slots.signal() }
        let connection: SQLiteConnection
        if let reused = idle.withLock({ $0.popLast() }) {
            connection = reused
        } else {
            connection = try open()
            opened.withLock { $0 += 1 }
        }
        defer { idle.withLock { $0.append(connection) } }
        do { return try body(connection) } catch {
            throw error.storeError(what)
        }
    }
}
