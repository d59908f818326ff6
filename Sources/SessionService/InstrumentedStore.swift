import DialogWire
import Primitives
import SessionStore

/// Times store operations and counts their errors and conflicts (for /metrics), for
/// one store kind and a fixed set of operation names. Series keys are built once here, so
/// a store call renders no label text.
struct StoreTimer: Sendable {
    let metrics: Metrics
    private let series: [String: (duration: Metrics.Series, unavailable: Metrics.Series, rejected: Metrics.Series, auth: Metrics.Series)]
    private let conflicts: Metrics.Series

    init(kind: String, operations: [String], metrics: Metrics) {
        self.metrics = metrics
        var series: [String: (Metrics.Series, Metrics.Series, Metrics.Series, Metrics.Series)] = [:]
        for op in operations {
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

    func timed<T>(_ op: String, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let start = monotonicNanoseconds()
        do {
            let value = try body()
            record(op, since: start, error: nil)
            return value
        } catch {
            record(op, since: start, error: error)
            throw error
        }
    }

    /// The duration of an operation begun at `start` (monotonic ns), and its error if any.
    /// Also for an operation that finishes on another thread (`insertLater`).
    func record(_ op: String, since start: Int64, error: StoreError?) {
        let keys = series[op]!
        metrics.observe(keys.duration, seconds: Double(monotonicNanoseconds() - start) / 1e9)
        switch error {
        case nil: break
        case .versionConflict?: metrics.increment(conflicts)
        case .unavailable?: metrics.increment(keys.unavailable)
        case .invalidRequest?, .tooLarge?, .keyUnavailable?: metrics.increment(keys.rejected)
        case .authFailed?: metrics.increment(keys.auth)
        }
    }
}

/// Wraps a store to time its operations and count errors and conflicts (for /metrics).
public struct InstrumentedStore: SessionStore {
    public let base: any SessionStore
    private let timer: StoreTimer

    public init(_ base: any SessionStore, kind: String, metrics: Metrics) {
        self.base = base
        timer = StoreTimer(
            kind: kind, operations: ["latest", "insert", "version", "versions", "delete", "ready", "sweep"], metrics: metrics)
    }

    private func timed<T>(_ op: String, _ body: () throws(StoreError) -> T) throws(StoreError) -> T { try timer.timed(op, body) }

    public func latest(_ id: String) throws(StoreError) -> StoredVersion? { try timed("latest") { () throws(StoreError) in try base.latest(id) } }
    public func insert(_ s: SessionSnapshot, after basis: WriteBasis?) throws(StoreError) -> WriteBasis {
        try timed("insert") { () throws(StoreError) in try base.insert(s, after: basis) }
    }
    public func insertLater(
        _ s: SessionSnapshot, after basis: WriteBasis?, done: @escaping @Sendable (Result<WriteBasis, StoreError>) -> Void
    ) -> Bool {
        let start = monotonicNanoseconds()
        return base.insertLater(s, after: basis) { [timer] result in
            var error: StoreError?
            if case .failure(let failure) = result { error = failure }
            timer.record("insert", since: start, error: error)
            done(result)
        }
    }
    public var writesLater: Bool { base.writesLater }
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

/// The same for the identity links (operations `link_read`, `link_write`, `link_touch`,
/// `link_delete`, `links_erase`, `links_sweep`), so an operator sees what resolution costs.
public struct InstrumentedLinkStore: LinkStore {
    public let base: any LinkStore
    private let timer: StoreTimer

    public init(_ base: any LinkStore, kind: String, metrics: Metrics) {
        self.base = base
        timer = StoreTimer(
            kind: kind, operations: ["link_read", "link_write", "link_touch", "link_delete", "links_erase", "links_sweep"],
            metrics: metrics)
    }

    public func link(_ key: String) throws(StoreError) -> StoredLink? {
        try timer.timed("link_read") { () throws(StoreError) in try base.link(key) }
    }
    public func putLink(_ link: StoredLink, replacing: StoredLink?) throws(StoreError) -> Bool {
        try timer.timed("link_write") { () throws(StoreError) in try base.putLink(link, replacing: replacing) }
    }
    public func touchLink(_ key: String, conversationId: String, expiresAt: Int64) throws(StoreError) {
        try timer.timed("link_touch") { () throws(StoreError) in try base.touchLink(key, conversationId: conversationId, expiresAt: expiresAt) }
    }
    public func deleteLink(_ link: StoredLink) throws(StoreError) -> Bool {
        try timer.timed("link_delete") { () throws(StoreError) in try base.deleteLink(link) }
    }
    public func deleteLinks(conversationId: String) throws(StoreError) -> Int {
        try timer.timed("links_erase") { () throws(StoreError) in try base.deleteLinks(conversationId: conversationId) }
    }
    public func sweepExpiredLinks(now: Int64) throws(StoreError) -> Int {
        try timer.timed("links_sweep") { () throws(StoreError) in try base.sweepExpiredLinks(now: now) }
    }
}
