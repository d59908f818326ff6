#if canImport(Glibc)
import Glibc
#endif
import HTTPServer
import Primitives

/// In front of the router: gives each request an id (from `X-Request-Id`, or a new one)
/// that every log line on this thread carries and the response echoes, records the
/// request's route, method, status and latency, and writes the access log line.
public struct InstrumentedHandler: HTTPHandler {
    let router: Router
    let metrics: Metrics
    let logger: Logger
    /// `ACCESS_LOG`: one info line per request.
    let accessLog: Bool
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    public init(router: Router, metrics: Metrics, logger: Logger, accessLog: Bool = true) {
        self.router = router
        self.metrics = metrics
        self.logger = logger
        self.accessLog = accessLog
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        instrumented(method: request.method, headers: request.headers, bytesIn: request.body.count) { () -> (HTTPResponse, String?) in
            let r = router.route(request)
            if logger.level <= .debug {
                logger.debug(
                    "request",
                    [("method", .string(request.method.rawValue)), ("path", .string(request.path)),
                     ("status", .int(Int64(r.response.status.code)))])
            }
            return r
        }
    }

    /// The router's inline routes, unless answering would write a log line: the idle loop
    /// must never block, and a write to stderr can (a full pipe to a stalled log reader).
    /// So with the access log on at `info`, `/health` is answered by workers as before.
    public func servesInline(_ head: RequestHead) -> Bool {
        !logsEveryRequest && router.servesInline(head)
    }

    /// Same rule as `servesInline`: the loop that starts such a request and the store's
    /// thread that answers it must never write a log line.
    public func servesLater(_ head: RequestHead) -> Bool {
        !logsEveryRequest && router.servesLater(head)
    }

    public var answersLater: Bool { !logsEveryRequest && router.answersLater }

    private var logsEveryRequest: Bool { (accessLog && logger.level <= .info) || logger.level <= .debug }

    /// The router's `startLater`, its answer given an id and recorded like any other. Only
    /// while no request is logged (a log line could block the thread that answers).
    public func handleLater(_ request: HTTPRequest, done: @escaping @Sendable (LaterAnswer) -> Void) -> Bool {
        guard !logsEveryRequest else { return false }
        let start = monotonicNanoseconds()
        let id = RequestContext.id(from: request.headers["x-request-id"])
        let method = request.method
        return router.startLater(request) { [self] answer, pattern in
            @Sendable func finished(_ response: HTTPResponse) -> HTTPResponse {
                recorded(response, id: id, method: method, route: pattern, since: start).response
            }
            switch answer {
            case .response(let response): done(.response(finished(response)))
            // On a worker: its log lines carry the request's id, as any request's do.
            case .fromWorker(let build): done(.fromWorker { RequestContext.with(id) { finished(build()) } })
            case .handBack: done(.handBack)
            }
        }
    }

    /// The response with the request's id echoed, the request recorded in the metrics, and
    /// its duration in seconds since `start` (monotonic ns): for every answer, whichever
    /// thread sends it.
    private func recorded(
        _ response: HTTPResponse, id: String, method: HTTPMethod, route: String, since start: Int64
    ) -> (response: HTTPResponse, seconds: Double) {
        var response = response
        response.headers.append(("X-Request-Id", id))
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        metrics.recordRequest(route: route, method: Self.methodLabel(method), status: response.status.code, seconds: seconds)
        return (response, seconds)
    }

    static func methodLabel(_ method: HTTPMethod) -> String {
        knownMethods.contains(method.rawValue) ? method.rawValue : "other"
    }

    /// A head the router refuses (no route, wrong method, credentials) is answered and
    /// recorded like any other request, before its body is read.
    public func preflight(_ head: RequestHead) -> HTTPResponse? {
        let (early, pattern) = router.screen(head)
        guard let early else { return nil }
        return instrumented(method: head.method, headers: head.headers, bytesIn: 0) { (early, pattern) }
    }

    private func instrumented(
        method: HTTPMethod, headers: HTTPHeaders, bytesIn: Int, _ body: () -> (HTTPResponse, String?)
    ) -> HTTPResponse {
        let start = monotonicNanoseconds()
        let id = RequestContext.id(from: headers["x-request-id"])
        return RequestContext.with(id) { () -> HTTPResponse in
            let (answered, pattern) = body()
            let methodLabel = Self.methodLabel(method)
            let route = pattern ?? "unmatched"
            let (response, seconds) = recorded(answered, id: id, method: method, route: route, since: start)
            if accessLog {
                // The route pattern, never the path: paths carry conversation ids.
                logger.info(
                    "access",
                    [("method", .string(methodLabel)), ("route", .string(route)), ("status", .int(Int64(response.status.code))),
                     ("duration_us", .int(Int64(saturating: seconds * 1_000_000))), ("bytes_in", .int(Int64(bytesIn))),
                     ("bytes_out", .int(Int64(response.body.count)))])
            }
            return response
        }
    }
}
