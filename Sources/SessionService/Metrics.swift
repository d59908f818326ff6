#if canImport(Glibc)
import Glibc
#endif
import Primitives

/// Counters and histograms in the Prometheus text exposition format (version 0.0.4), our
/// own small implementation. Labels are low-cardinality by construction: routes are
/// patterns (`/sessions/:id`), never paths, so no conversation id reaches a label.
/// Updates go to one of several shards (by thread) so request threads rarely contend.
public final class Metrics: Sendable {
    /// Latency buckets in seconds.
    public static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// One time series: a name and its rendered labels. Build it once (`series(_:_:)`) where
    /// the labels are fixed and reuse it, so an update renders no label text.
    public struct Series: Hashable, Sendable {
        let name: String
        let labels: String  // rendered `{a="x",b="y"}` or ""
    }

    public static func series(_ name: String, _ labels: [(String, String)]) -> Series {
        Series(name: name, labels: Self.labels(labels))
    }

    struct Histogram {
        var counts = [UInt64](repeating: 0, count: Metrics.buckets.count)
        var sum = 0.0
        var count: UInt64 = 0
    }

    /// HTTP series keyed by their parts; label text is built only at scrape time.
    struct RequestKey: Hashable {
        let route: String
        let method: String
        let code: Int
    }

    struct Shard {
        var counters: [Series: Double] = [:]
        var histograms: [Series: Histogram] = [:]
        var requests: [RequestKey: Double] = [:]
        var requestLatency: [String: Histogram] = [:]
    }

    private let shards: [Locked<Shard>] = (0..<8).map { _ in Locked(Shard()) }
    private let help: [String: (type: String, text: String)]

    public init() {
        help = [
            "cognigy_session_http_requests_total": ("counter", "HTTP requests answered, by route pattern, method and status code."),
            "cognigy_session_http_request_duration_seconds": ("histogram", "Time from a parsed request to its response, by route pattern."),
            "cognigy_session_store_operation_duration_seconds": ("histogram", "Session store operation latency, by store and operation."),
            "cognigy_session_store_errors_total": ("counter", "Store operations that failed, by store, operation and kind (unavailable, rejected)."),
            "cognigy_session_store_conflicts_total": ("counter", "Conditional writes that lost to another writer and were retried, by store."),
        ]
    }

    private var shard: Locked<Shard> {
        // Thread handles are addresses that differ only in high bits: hash them to spread.
        shards[Int(UInt(bitPattern: pthread_self().hashValue) % UInt(shards.count))]
    }

    static func labels(_ pairs: [(String, String)]) -> String {
        guard !pairs.isEmpty else { return "" }
        return "{" + pairs.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
    }

    static func escape(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    public func increment(_ name: String, _ labels: [(String, String)], by value: Double = 1) {
        increment(Self.series(name, labels), by: value)
    }

    public func increment(_ series: Series, by value: Double = 1) {
        shard.withLock { $0.counters[series, default: 0] += value }
    }

    public func observe(_ name: String, _ labels: [(String, String)], seconds: Double) {
        observe(Self.series(name, labels), seconds: seconds)
    }

    public func observe(_ series: Series, seconds: Double) {
        shard.withLock { Self.add(&$0.histograms[series, default: Histogram()], seconds) }
    }

    /// One request: its counter and its latency, under one lock.
    public func recordRequest(route: String, method: String, status: Int, seconds: Double) {
        let key = RequestKey(route: route, method: method, code: status)
        shard.withLock { s in
            s.requests[key, default: 0] += 1
            Self.add(&s.requestLatency[route, default: Histogram()], seconds)
        }
    }

    private static func add(_ h: inout Histogram, _ seconds: Double) {
        for (i, bound) in buckets.enumerated() where seconds <= bound { h.counts[i] += 1 }
        h.sum += seconds
        h.count += 1
    }

    /// A value read at scrape time.
    public struct Sample: Sendable {
        public let name: String
        public let type: String
        public let help: String
        public let labels: [(String, String)]
        public let value: Double
        public init(_ name: String, _ type: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
            self.name = name
            self.type = type
            self.help = help
            self.labels = labels
            self.value = value
        }
    }

    /// The exposition text: merged shards plus the scrape-time samples.
    public func render(_ samples: [Sample]) -> String {
        var counters: [Series: Double] = [:]
        var histograms: [Series: Histogram] = [:]
        for shard in shards {
            shard.withLock { s in
                for (k, v) in s.counters { counters[k, default: 0] += v }
                for (k, v) in s.requests {
                    let series = Series(
                        name: "cognigy_session_http_requests_total",
                        labels: Self.labels([("route", k.route), ("method", k.method), ("code", String(k.code))]))
                    counters[series, default: 0] += v
                }
                let merged = s.histograms.merging(
                    s.requestLatency.map { (Series(name: "cognigy_session_http_request_duration_seconds", labels: Self.labels([("route", $0.key)])), $0.value) },
                    uniquingKeysWith: { a, _ in a })
                for (k, v) in merged {
                    var h = histograms[k] ?? Histogram()
                    for i in h.counts.indices { h.counts[i] += v.counts[i] }
                    h.sum += v.sum
                    h.count += v.count
                    histograms[k] = h
                }
            }
        }
        var out = ""
        var described = Set<String>()
        func describe(_ name: String, _ type: String, _ text: String) {
            guard described.insert(name).inserted else { return }
            out += "# HELP \(name) \(text)\n# TYPE \(name) \(type)\n"
        }
        for series in counters.keys.sorted(by: { ($0.name, $0.labels) < ($1.name, $1.labels) }) {
            let h = help[series.name] ?? ("counter", series.name)
            describe(series.name, h.type, h.text)
            out += "\(series.name)\(series.labels) \(Self.format(counters[series]!))\n"
        }
        for series in histograms.keys.sorted(by: { ($0.name, $0.labels) < ($1.name, $1.labels) }) {
            let h = histograms[series]!
            let meta = help[series.name] ?? ("histogram", series.name)
            describe(series.name, meta.type, meta.text)
            let inner = series.labels.isEmpty ? "" : String(series.labels.dropFirst().dropLast()) + ","
            for (i, bound) in Self.buckets.enumerated() {
                out += "\(series.name)_bucket{\(inner)le=\"\(Self.format(bound))\"} \(h.counts[i])\n"
            }
            out += "\(series.name)_bucket{\(inner)le=\"+Inf\"} \(h.count)\n"
            out += "\(series.name)_sum\(series.labels) \(Self.format(h.sum))\n"
            out += "\(series.name)_count\(series.labels) \(h.count)\n"
        }
        for s in samples {
            describe(s.name, s.type, s.help)
            out += "\(s.name)\(Self.labels(s.labels)) \(Self.format(s.value))\n"
        }
        return out
    }

    static func format(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
