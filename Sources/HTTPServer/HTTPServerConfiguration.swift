/// Every limit of the HTTP server, each a named field with a default (in the spirit of
/// NIO's NIOHTTPDecoderLimitConfiguration and Hummingbird's server configuration).
public struct HTTPServerConfiguration: Sendable {
    public var host: String = "0.0.0.0"
    /// 0 picks a free port (tests).
    public var port: Int = 8080
    /// Longest request line (method, target, version) → 431.
    public var maxRequestLineBytes: Int = 8 * 1024
    /// Largest request head: request line plus header fields → 431.
    public var maxHeaderBytes: Int = 32 * 1024
    /// Most header fields in one request → 431.
    public var maxHeaderCount: Int = 100
    /// Largest request body, Content-Length or chunked → 413.
    public var maxBodyBytes: Int = 1_048_576
    /// Request body bytes buffered by all connections together; a request whose body would
    /// go past it is answered 503 + Retry-After before its body is read. Bounds memory when
    /// many clients upload large bodies at once (each alone within `maxBodyBytes`).
    public var maxBufferedBodyBytes: Int = 64 << 20
    /// Longest chunk-size line of a chunked body (size plus extensions) → 400.
    public var maxChunkLineBytes: Int = 1024
    /// Time allowed to receive a request head once it starts (and a new connection's first
    /// request) → 408 and close. Stops clients that send half a head and stall.
    public var headerTimeoutMs: Int = 10_000
    /// Time allowed to receive a request body → 408 and close.
    public var bodyTimeoutMs: Int = 30_000
    /// An idle keep-alive connection is closed after this long without a new request.
    public var idleTimeoutMs: Int = 60_000
    /// A response that cannot be written within this time closes the connection.
    public var writeTimeoutMs: Int = 10_000
    /// How long a keep-alive connection's thread waits for the next request before handing
    /// the connection to the idle loop (one epoll thread) and going back to the pool. A
    /// busy client's next request comes well within it, so hot connections stay on their
    /// thread; an idle one then costs no thread. At least `idleTimeoutMs`: idle connections
    /// keep a thread each (the model before the idle loop).
    public var idleHandoffDelayMs: Int = 20
    /// Worker threads kept waiting for the next connection or request; more exit once idle.
    /// Busy workers are bounded by `maxConnections` (one per connection being served).
    public var maxIdleWorkers: Int = 64
    /// Connections open at once, idle ones included; more are answered 503 and closed.
    public var maxConnections: Int = 1024
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    public var drainTimeoutMs: Int = 10_000
    /// listen(2) backlog.
    public var backlog: Int = 1024
    /// Stack size of each worker thread (and of the accept and idle-loop threads).
    public var threadStackBytes: Int = 512 * 1024

    public init() {}
}
