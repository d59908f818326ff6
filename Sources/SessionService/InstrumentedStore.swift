#if canImport(Glibc)
import Glibc
#endif
import DialogWire
import SessionStore

/// Wraps a store to time its operations and count errors and conflicts (for /metrics).
public struct InstrumentedStore: SessionStore {
    public let base: any SessionStore
    let kind: String
    let metrics: Metrics

    public init(_ base: any SessionStore, kind: String, metrics: Metrics) {
        self.base = base
        self.kind = kind
        self.metrics = metrics
    }

    private func timed<T>(_ op: String, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        defer {
            var end = timespec()
            clock_gettime(CLOCK_MONOTONIC, &end)
            let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
            metrics.observe("cognigy_session_store_operation_duration_seconds", [("store", kind), ("operation", op)], seconds: seconds)
        }
        do {
            return try body()
        } catch {
            switch error {
            case .versionConflict: metrics.increment("cognigy_session_store_conflicts_total", [("store", kind)])
            case .unavailable: metrics.increment("cognigy_session_store_errors_total", [("store", kind), ("operation", op), ("kind", "unavailable")])
            case .invalidRequest: metrics.increment("cognigy_session_store_errors_total", [("store", kind), ("operation", op), ("kind", "rejected")])
            }
            throw error
        }
    }

    public func latest(_ id: String) throws(StoreError) -> StoredVersion? { try timed("latest") { () throws(StoreError) in try base.latest(id) } }
    public func insert(_ s: SessionSnapshot) throws(StoreError) { try timed("insert") { () throws(StoreError) in try base.insert(s) } }
    public func version(_ id: String, _ v: Int64) throws(StoreError) -> StoredVersion? {
        try timed("version") { () throws(StoreError) in try base.version(id, v) }
    }
    public func versions(_ id: String, limit: Int, before: Int64?) throws(StoreError) -> [StoredVersion] {
        try timed("versions") { () throws(StoreError) in try base.versions(id, limit: limit, before: before) }
    }
    public func deleteConversation(_ id: String) throws(StoreError) -> Int {
        try timed("delete") { () throws(StoreError) in try base.deleteConversation(id) }
    }
    public func checkReady() throws(StoreError) { try timed("ready") { () throws(StoreError) in try base.checkReady() } }
    public func sweepExpired(now: Int64) throws(StoreError) -> Int { try timed("sweep") { () throws(StoreError) in try base.sweepExpired(now: now) } }
}
