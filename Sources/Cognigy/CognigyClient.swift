import Backoff
import DialogWire
import Foundation
import HTTPClient
import Primitives

/// How one restore attempt ended.
public enum InjectOutcome: Equatable, Sendable {
    /// Cognigy accepted the context (2xx).
    case delivered(attempts: Int)
    /// Not delivered within the deadline but worth retrying (429, 5xx, connection, token
    /// endpoint down); `retryAfterMs` is Cognigy's own hint when it gave one.
    case retryLater(reason: String, retryAfterMs: Double?)
    /// Cognigy refused it for good (other 4xx); RFC 7807 `detail` and `traceId` when present.
    case rejected(status: Int, detail: String, traceId: String)
    /// Cognigy refused our credentials (401/403, after one token refresh in OAuth2 mode):
    /// usually a key rotation in progress, so worth keeping and retrying, and worth an alert.
    case unauthorized(status: Int, detail: String)
}

/// Injects context into a Cognigy session:
/// `POST {base}/new/v2.0/sessions/{sessionId}/context/inject` with `{"userId","context"}`.
public final class CognigyClient: Sendable {
    public struct Configuration: Sendable {
        public var baseURL: String
        public var apiKey: String?
        public var oauth: TokenCache.Configuration?
        /// One HTTP attempt's limit (the overall deadline is per call).
        public var requestTimeoutMs = 5000
        /// Backoff when Cognigy gives no Retry-After.
        public var backoff = Backoff(baseMs: 250, capMs: 8000)

        public init(baseURL: String, apiKey: String?, oauth: TokenCache.Configuration?) {
            self.baseURL = HTTPClient.baseURL(baseURL)
            self.apiKey = apiKey
            self.oauth = oauth
        }
    }

    public let configuration: Configuration
    public let tokens: TokenCache?
    private let http: CurlHTTPClient

    public init(configuration: Configuration, http: CurlHTTPClient = CurlHTTPClient()) {
        self.configuration = configuration
        self.http = http
        tokens = configuration.oauth.map { TokenCache(configuration: $0, http: http) }
    }

    /// The request body: `{"userId": …, "context": …}`, the context nested under
    /// `contextKey` when one is configured.
    public static func body(userId: String, contextJSON: [UInt8], contextKey: String?) -> [UInt8] {
        var w = JSONWriter(capacity: contextJSON.count + 64)
        w.beginObject()
        w.key("userId"); w.value(userId)
        w.key("context")
        if let contextKey {
            w.beginObject(); w.key(contextKey); w.raw(contextJSON); w.endObject()
        } else {
            w.raw(contextJSON)
        }
        w.endObject()
        return w.bytes
    }

    public func url(sessionId: String) -> String {
        configuration.baseURL + "/new/v2.0/sessions/\(Self.pathSegment(sessionId))/context/inject"
    }

    /// Percent-encodes everything but RFC 3986 unreserved letters, digits, `-`, `_` and `~`:
    /// `.` too, so a session id of `.` or `..` can never become a dot-segment that moves
    /// the request to another path (libcurl and servers normalise those).
    public static func pathSegment(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }

    /// Tries until delivered, refused, `maxAttempts` sends, or `deadlineMs` would be passed.
    /// (A retry after a 401 token refresh does not count against `maxAttempts`.)
    public func inject(sessionId: String, body: [UInt8], deadlineMs: Int, maxAttempts: Int = Int.max) -> InjectOutcome {
        let deadline = Date().addingTimeInterval(Double(deadlineMs) / 1000)
        var attempt = 0
        var refreshedAfter401 = false
        while true {
            attempt += 1
            var headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
            var usedToken: String?
            if let tokens {
                do {
                    let t = try tokens.token()
                    usedToken = t
                    headers.append(("Authorization", "Bearer \(t)"))
                } catch {
                    return .retryLater(reason: error.description, retryAfterMs: nil)
                }
            } else if let key = configuration.apiKey {
                headers.append(("X-API-Key", key))
            }
            let remainingMs = Int(saturating: deadline.timeIntervalSinceNow * 1000)
            guard remainingMs > 0 else { return .retryLater(reason: "deadline reached", retryAfterMs: nil) }
            let request = HTTPClientRequest(
                method: "POST", url: url(sessionId: sessionId), headers: headers, body: body,
                timeoutMs: min(configuration.requestTimeoutMs, remainingMs), connectTimeoutMs: min(2000, remainingMs))
            var hintMs: Double?
            let reason: String
            do {
                let response = try http.send(request)
                switch response.status {
                case 200..<300:
                    return .delivered(attempts: attempt)
                case 401 where tokens != nil && !refreshedAfter401:
                    // The token may have been revoked early: drop it and retry once at once.
                    refreshedAfter401 = true
                    if let usedToken { tokens?.invalidate(usedToken) }
                    continue
                case 429:
                    hintMs = response.header("retry-after").flatMap {
                        RetryAfter.delayMs($0, nowEpochSeconds: Date().timeIntervalSince1970)
                    }
                    reason = "429 Too Many Requests"
                case 500..<600:
                    reason = "HTTP \(response.status)"
                case 401, 403:
                    return .unauthorized(status: response.status, detail: Self.problem(response.body).detail)
                default:
                    let problem = Self.problem(response.body)
                    return .rejected(status: response.status, detail: problem.detail, traceId: problem.traceId)
                }
            } catch {
                reason = error.description
            }
            let waitMs = hintMs ?? configuration.backoff.delayMs(attempt: attempt - 1, unit: Double.random(in: 0..<1))
            if attempt - (refreshedAfter401 ? 1 : 0) >= maxAttempts || Date().addingTimeInterval(waitMs / 1000) >= deadline {
                return .retryLater(reason: reason, retryAfterMs: hintMs)
            }
            sleepMs(waitMs)
        }
    }

    /// RFC 7807 `detail` (else `title`) and `traceId` of an error body, "" when absent.
    static func problem(_ body: [UInt8]) -> (detail: String, traceId: String) {
        let problem = try? JSONParser.parse(body)
        var detail = "", traceId = ""
        if case .string(let d)? = problem?["detail"] { detail = d } else if case .string(let t)? = problem?["title"] { detail = t }
        if case .string(let t)? = problem?["traceId"] { traceId = t }
        return (detail, traceId)
    }
}
