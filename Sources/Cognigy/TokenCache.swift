import DialogWire
import Foundation
import HTTPClient

/// Why a token could not be had. `oauthError`/`description` come from the RFC 6749 §5.2
/// error body when the server sent one.
public struct TokenError: Error, Equatable, Sendable, CustomStringConvertible {
    public let status: Int
    public let oauthError: String?
    public let detail: String
    public var description: String {
        "token request failed (\(status == 0 ? "no answer" : "HTTP \(status)"))"
            + (oauthError.map { ": \($0)" } ?? "") + (detail.isEmpty ? "" : " - \(detail)")
    }
}

/// OAuth2 client-credentials tokens (RFC 6749 §4.4), cached until shortly before
/// `expires_in`. Concurrent callers share one refresh: the first starts it, the others
/// wait for its result. A failed refresh fails those waiters and is not cached, so the next
/// caller tries again. Secrets are never logged or put in errors.
public final class TokenCache: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is guarded by `condition`'s lock.
    public struct Configuration: Sendable {
        public var tokenURL: String
        public var clientId: String
        public var clientSecret: String
        public var scope: String?
        /// A token is renewed this long before it expires.
        public var refreshMarginSeconds: Double = 30
        public var timeoutMs = 5000

        public init(tokenURL: String, clientId: String, clientSecret: String, scope: String?) {
            self.tokenURL = tokenURL
            self.clientId = clientId
            self.clientSecret = clientSecret
            self.scope = scope
        }
    }

    private let configuration: Configuration
    private let http: CurlHTTPClient
    private let condition = NSCondition()
    private var cached: String?
    private var expiresAt: Double = 0
    private var refreshing = false
    /// Results handed to the callers waiting on the refresh in progress.
    private var generation = 0
    private var lastResult: Result<String, TokenError>?
    private let clock: @Sendable () -> Double
    private var refreshCount = 0

    /// Token requests made so far (read under the lock).
    public var refreshes: Int {
        condition.lock()
        defer { condition.unlock() }
        return refreshCount
    }

    public init(configuration: Configuration, http: CurlHTTPClient, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.configuration = configuration
        self.http = http
        self.clock = clock
    }

    /// A valid token, refreshing it (once, for all concurrent callers) when needed.
    public func token() throws(TokenError) -> String {
        condition.lock()
        if let cached, clock() < expiresAt - configuration.refreshMarginSeconds {
            condition.unlock()
            return cached
        }
        if refreshing {
            let waitingFor = generation
            while refreshing && generation == waitingFor { condition.wait() }
            let result = lastResult
            condition.unlock()
            guard let result else { throw TokenError(status: 0, oauthError: nil, detail: "refresh ended without a result") }
            return try result.get()
        }
        refreshing = true
        condition.unlock()

        let result = fetch()

        condition.lock()
        switch result {
        case .success(let (value, lifetime)):
            cached = value
            expiresAt = clock() + lifetime
        case .failure:
            cached = nil
        }
        refreshCount += 1
        lastResult = result.map { $0.0 }
        generation += 1
        refreshing = false
        condition.broadcast()
        condition.unlock()
        return try result.map { $0.0 }.get()
    }

    /// Drops `rejected` (after a 401) so the next `token()` fetches a new one. A newer token
    /// that another caller already fetched is kept.
    public func invalidate(_ rejected: String) {
        condition.lock()
        if cached == rejected { cached = nil }
        condition.unlock()
    }

    /// RFC 6749 §2.3.1: client id and secret are form-urlencoded, then sent as Basic auth.
    static func basicCredentials(_ id: String, _ secret: String) -> (String, String) {
        (formEncode(id), formEncode(secret))
    }

    static func formEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "*"):
                out.append(Character(UnicodeScalar(b)))
            case UInt8(ascii: " "): out.append("+")
            default: out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    private func fetch() -> Result<(String, Double), TokenError> {
        var body = "grant_type=client_credentials"
        if let scope = configuration.scope { body += "&scope=" + Self.formEncode(scope) }
        let (user, password) = Self.basicCredentials(configuration.clientId, configuration.clientSecret)
        var request = HTTPClientRequest(
            method: "POST", url: configuration.tokenURL,
            headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")],
            body: Array(body.utf8), timeoutMs: configuration.timeoutMs, connectTimeoutMs: min(2000, configuration.timeoutMs),
            basicAuth: (user, password))
        request.maxResponseBytes = 64 * 1024  // a token answer is a few hundred bytes
        let response: HTTPClientResponse
        do { response = try http.send(request) } catch {
            return .failure(TokenError(status: 0, oauthError: nil, detail: error.description))
        }
        let json = try? JSONParser.parse(response.body)
        guard response.status == 200 else {
            var oauthError: String?
            var detail = ""
            if case .string(let e)? = json?["error"] { oauthError = e }
            if case .string(let d)? = json?["error_description"] { detail = d }
            return .failure(TokenError(status: response.status, oauthError: oauthError, detail: detail))
        }
        guard case .string(let accessToken)? = json?["access_token"], !accessToken.isEmpty else {
            return .failure(TokenError(status: 200, oauthError: nil, detail: "answer has no access_token"))
        }
        var lifetime = 3600.0
        switch json?["expires_in"] {
        case .number(let n)?: lifetime = Double(n) ?? lifetime
        case .string(let s)?: lifetime = Double(s) ?? lifetime
        default: break
        }
        // From outside: NaN, infinities and negatives must neither trap nor pin a token
        // forever; a lifetime is taken as 0 s to 1 year.
        lifetime = lifetime.isFinite ? min(max(lifetime, 0), 31_536_000) : 3600
        return .success((accessToken, lifetime))
    }
}
