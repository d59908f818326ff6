#if canImport(Glibc)
import Glibc
#endif
import HTTPServer
import Primitives

/// In front of the router: gives each request an id (from `X-Request-Id`, or a new one)
/// that every log line on this thread carries and the response echoes, and records the
/// request's route, method, status and latency.
public struct InstrumentedHandler: HTTPHandler {
    let router: Router
    let metrics: Metrics
    let logger: Logger
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    public init(router: Router, metrics: Metrics, logger: Logger) {
        self.router = router
        self.metrics = metrics
        self.logger = logger
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let start = monotonicNanoseconds()
        let id = RequestContext.id(from: request.headers["x-request-id"])
        var (response, pattern) = RequestContext.with(id) { () -> (HTTPResponse, String?) in
            let r = router.route(request)
            if logger.level <= .debug {
                logger.debug(
                    "request",
                    [("method", .string(request.method.rawValue)), ("path", .string(request.path)),
                     ("status", .int(Int64(r.response.status.code)))])
            }
            return r
        }
        response.headers.append(("X-Request-Id", id))
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        let method = Self.knownMethods.contains(request.method.rawValue) ? request.method.rawValue : "other"
        metrics.recordRequest(route: pattern ?? "unmatched", method: method, status: response.status.code, seconds: seconds)
        return response
    }
}
