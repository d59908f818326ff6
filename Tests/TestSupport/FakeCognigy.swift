import DialogWire
import Foundation
import HTTPServer
import Primitives

/// A local stand-in for Cognigy's REST API and its OAuth2 token endpoint, on real sockets.
/// Tests program how it answers and read what it received.
public final class FakeCognigy: HTTPHandler, @unchecked Sendable {
    public struct Inject: Sendable {
        public let sessionId: String
        public let authorization: String?
        public let apiKey: String?
        public let body: String
    }

    public enum Mode: Sendable {
        case ok
        case down  // 503
        case tooManyRequests(retryAfter: String, times: Int)  // then ok
        case slow(ms: Int)
        case rejectToken(String)  // 401 for this bearer token, ok otherwise
        case problem(status: Int)  // RFC 7807 answer
    }

    private struct State {
        var mode: Mode = .ok
        var injects: [Inject] = []
        var attempts = 0
        var tokenRequests = 0
        var tokenBodies: [String] = []
        var tokenAuth: [String] = []
        var tokenFailures = 0
        var nextToken = 1
        var tokenDelayMs = 0
    }

    private let state = Locked(State())
    public private(set) var server: HTTPServer!
    public var baseURL: String { "http://127.0.0.1:\(server.port)" }
    public var tokenURL: String { baseURL + "/oauth/token" }

    public init() throws {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.drainTimeoutMs = 500
        server = try HTTPServer(configuration: config, handler: self)
        try server.start()
    }

    public func set(_ mode: Mode) { state.withLock { $0.mode = mode } }
    public func failTokenRequests(_ n: Int) { state.withLock { $0.tokenFailures = n } }
    public func tokenDelay(ms: Int) { state.withLock { $0.tokenDelayMs = ms } }
    public var injects: [Inject] { state.withLock { $0.injects } }
    public var attempts: Int { state.withLock { $0.attempts } }
    public var tokenRequests: Int { state.withLock { $0.tokenRequests } }
    public var tokenBodies: [String] { state.withLock { $0.tokenBodies } }
    public var tokenAuthorizations: [String] { state.withLock { $0.tokenAuth } }

    public func stop() { server.shutdown() }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        if request.path == "/oauth/token" { return token(request) }
        let parts = request.path.split(separator: "/")
        guard parts.count == 6, parts[0] == "new", parts[1] == "v2.0", parts[2] == "sessions", parts[4] == "context",
            parts[5] == "inject", request.method == .POST
        else { return HTTPResponse(status: .notFound) }
        let sessionId = (try? PercentDecoding.decode(parts[3].utf8, plusIsSpace: false)) ?? String(parts[3])
        let (mode, attempt) = state.withLock { s -> (Mode, Int) in
            s.attempts += 1
            return (s.mode, s.attempts)
        }
        let record = Inject(
            sessionId: sessionId, authorization: request.headers["authorization"], apiKey: request.headers["x-api-key"],
            body: String(decoding: request.body, as: UTF8.self))
        let ok = HTTPResponse(status: .ok, headers: [("Content-Type", "application/json")], body: Array(#"{"status":"ok"}"#.utf8))
        switch mode {
        case .ok:
            state.withLock { $0.injects.append(record) }
            return ok
        case .down:
            return HTTPResponse(status: .serviceUnavailable)
        case .tooManyRequests(let retryAfter, let times):
            if attempt <= times {
                return HTTPResponse(status: HTTPStatus(429, "Too Many Requests"), headers: [("Retry-After", retryAfter)])
            }
            state.withLock { $0.injects.append(record) }
            return ok
        case .slow(let ms):
            usleep(UInt32(ms * 1000))
            state.withLock { $0.injects.append(record) }
            return ok
        case .rejectToken(let bad):
            if request.headers["authorization"] == "Bearer \(bad)" {
                return HTTPResponse(status: .unauthorized)
            }
            state.withLock { $0.injects.append(record) }
            return ok
        case .problem(let status):
            return HTTPResponse(
                status: HTTPStatus(status, "Problem"), headers: [("Content-Type", "application/problem+json")],
                body: Array(#"{"type":"about:blank","title":"Not Found","status":\#(status),"detail":"Session unknown","traceId":"trace-123"}"#.utf8))
        }
    }

    private func token(_ request: HTTPRequest) -> HTTPResponse {
        let (n, fail, delay) = state.withLock { s -> (Int, Bool, Int) in
            s.tokenRequests += 1
            s.tokenBodies.append(String(decoding: request.body, as: UTF8.self))
            s.tokenAuth.append(request.headers["authorization"] ?? "")
            if s.tokenFailures > 0 {
                s.tokenFailures -= 1
                return (0, true, s.tokenDelayMs)
            }
            s.nextToken += 1
            return (s.nextToken - 1, false, s.tokenDelayMs)
        }
        if delay > 0 { usleep(UInt32(delay * 1000)) }
        if fail {
            return HTTPResponse(
                status: .badRequest, headers: [("Content-Type", "application/json")],
                body: Array(#"{"error":"invalid_client","error_description":"Client authentication failed"}"#.utf8))
        }
        return HTTPResponse(
            status: .ok, headers: [("Content-Type", "application/json")],
            body: Array(#"{"access_token":"tok-\#(n)","token_type":"Bearer","expires_in":3600}"#.utf8))
    }
}
