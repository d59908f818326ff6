import DialogWire
import Primitives
import SessionStore

/// Wraps a store to time its operations and count errors and conflicts (for /metrics).
/// Series keys are built once here, so a store call renders no label text.
public struct InstrumentedStore: SessionStore {
    public let base: any SessionStore
    let metrics: Metrics
    private let series: [String: (duration: Metrics.Series, unavailable: Metrics.Series, rejected: Metrics.Series, auth: Metrics.Series)]
    private let conflicts: Metrics.Series

    public init(_ base: any SessionStore, kind: String, metrics: Metrics) {
        self.base = base
        self.metrics = metrics
        var series: [String: (Metrics.Series, Metrics.Series, Metrics.Series, Metrics.Series)] = [:]
        for op in ["latest", "insert", "version", "versions", "delete", "ready", "sweep"] {
            let errors = "cognigy_session_store_errors_total"
            series[op] = (
                Metrics.series("cognigy_session_store_operation_duration_seconds", [("store", kind), ("operation", op)]),
                Metrics.series(errors, [("store", kind), ("operation", op), ("kind", "unavailable")]),
                Metrics.series(errors, [("store", kind), ("operation", op), ("kind", "rejected")]),
                Metrics.series(errors, [("store", kind), ("operation", op), ("kind", "auth")])
            )
        }
        self.series = series
        conflicts = Metrics.series("cognigy_session_store_conflicts_total", [("store", kind)])
    }

    private func timed<T>(_ op: String, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let keys = series[op]!
        let start = monotonicNanoseconds()
        defer { metrics.observe(keys.duration, seconds: Double(monotonicNanoseconds() - start) / 1e9) }
        do {
            return try body()
        } catch {
            switch error {
            case .versionConflict: metrics.increment(conflicts)
            case .unavailable: metrics.increment(keys.unavailable)
            case .invalidRequest, .tooLarge, .keyUnavailable: metrics.increment(keys.rejected)
            case .authFailed: metrics.increment(keys.auth)
            }
            throw error
        }
    }

    public func latest(_ id: String) throws(StoreError) -> StoredVersion? { try timed("latest") { () throws(StoreError) in try base.latest(id) } }
    public func insert(_ s: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) -> WriteBasis {
        try timed("insert") { () throws(StoreError) in try base.insert(s, after: basis) }
    }
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
