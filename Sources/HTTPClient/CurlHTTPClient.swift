import CCurl
import Primitives

/// An outgoing HTTP request. Bodies and answers are bytes.
public struct HTTPClientRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Whole-transfer limit (libcurl's CURLOPT_TIMEOUT_MS).
    public var timeoutMs: Int
    /// TCP+TLS connect limit (CURLOPT_CONNECTTIMEOUT_MS).
    public var connectTimeoutMs: Int
    /// Sign with AWS SigV4 through libcurl (CURLOPT_AWS_SIGV4); no hand-written crypto.
    public var awsSigV4: AWSSigV4?
    /// Basic auth user and password (libcurl encodes them), e.g. for OAuth2 client credentials.
    public var basicAuth: (user: String, password: String)?
    /// Largest answer body accepted; a larger one aborts the transfer with
    /// `HTTPClientError.responseTooLarge` (an upstream, or whatever sits in front of it,
    /// cannot make us buffer without bound). Header fields are capped at 64 KiB in all.
    public var maxResponseBytes: Int = 1 << 20

    public init(
        method: String, url: String, headers: [(String, String)] = [], body: [UInt8] = [], timeoutMs: Int = 5000,
        connectTimeoutMs: Int = 2000, awsSigV4: AWSSigV4? = nil, basicAuth: (user: String, password: String)? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMs = timeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.awsSigV4 = awsSigV4
        self.basicAuth = basicAuth
    }
}

public struct AWSSigV4: Sendable {
    /// "aws:amz:<region>:<service>"
    public var provider: String
    public var accessKeyId: String
    public var secretAccessKey: String
    /// Sent as X-Amz-Security-Token (and so signed, like every header libcurl is given).
    public var sessionToken: String?

    public init(region: String, service: String, accessKeyId: String, secretAccessKey: String, sessionToken: String?) {
        provider = "aws:amz:\(region):\(service)"
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

public struct HTTPClientResponse: Sendable {
    public let status: Int
    /// Header fields of the final response, names lowercased.
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first(where: { $0.name == lower })?.value
    }
}

public enum HTTPClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The transfer did not finish within its time limit.
    case timeout(String)
    /// No connection could be made (refused, unresolvable, unreachable).
    case connect(String)
    /// Any other transport failure (TLS, reset, malformed answer).
    case transport(code: Int, message: String)
    /// The answer's body or headers exceeded the request's limit.
    case responseTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .timeout(let m): return "timed out: \(m)"
        case .connect(let m): return "cannot connect: \(m)"
        case .transport(let c, let m): return "transport error \(c): \(m)"
        case .responseTooLarge(let limit): return "answer larger than \(limit) bytes"
        }
    }
}

/// A thin, thread-safe wrapper over libcurl's easy interface. Idle easy handles are pooled,
/// and each keeps its connection cache across `curl_easy_reset`, so requests to the same
/// host reuse connections (and TLS sessions). TLS verification stays on (libcurl default).
public final class CurlHTTPClient: Sendable {
    /// Idle handles kept for reuse; more are cleaned up after use.
    public let maxIdleHandles: Int
    private let idle = Locked<[UnsafeMutableRawPointer]>([])

    private static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_ALL))
    }()

    public init(maxIdleHandles: Int = 32) {
        _ = Self.globalInit
        self.maxIdleHandles = maxIdleHandles
    }

    deinit {
        for h in idle.withLock({ $0 }) { curl_easy_cleanup(h) }
    }

    public func send(_ request: HTTPClientRequest) throws(HTTPClientError) -> HTTPClientResponse {
        let handle = idle.withLock { $0.popLast() } ?? curl_easy_init()
        guard let handle else { throw .transport(code: -1, message: "curl_easy_init failed") }
        defer {
            curl_easy_reset(handle)
            let kept = idle.withLock { pool -> Bool in
                guard pool.count < maxIdleHandles else { return false }
                pool.append(handle)
                return true
            }
            if !kept { curl_easy_cleanup(handle) }
        }
        return try perform(handle, request)
    }

    private final class Collector {
        var body: [UInt8] = []
        var headers: [(name: String, value: String)] = []
        var headerBytes = 0
        let maxBodyBytes: Int
        var tooLarge = false
        static let maxHeaderBytes = 64 * 1024
        init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }
    }

    private func perform(_ h: UnsafeMutableRawPointer, _ request: HTTPClientRequest) throws(HTTPClientError) -> HTTPClientResponse {
        let collector = Collector(maxBodyBytes: request.maxResponseBytes)
        let unmanaged = Unmanaged.passRetained(collector)
        defer { unmanaged.release() }
        var slist: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(slist) }

        _ = ccurl_setopt_str(h, CURLOPT_URL, request.url)
        _ = ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)  // threads: no SIGALRM for DNS timeouts
        _ = ccurl_setopt_long(h, CURLOPT_TIMEOUT_MS, request.timeoutMs)
        _ = ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeoutMs)
        _ = ccurl_setopt_long(h, CURLOPT_TCP_NODELAY, 1)
        _ = ccurl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0)
        _ = ccurl_setopt_str(h, CURLOPT_PROTOCOLS_STR, "http,https")
        if request.method == "POST" || !request.body.isEmpty {
            _ = ccurl_setopt_long(h, CURLOPT_POST, 1)
            _ = ccurl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
            // COPYPOSTFIELDS: libcurl keeps its own copy, so the Swift array may go away.
            request.body.withUnsafeBytes { raw in
                _ = ccurl_setopt_ptr(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        if request.method != "POST" && request.method != "GET" {
            _ = ccurl_setopt_str(h, CURLOPT_CUSTOMREQUEST, request.method)
        }
        if request.method == "HEAD" { _ = ccurl_setopt_long(h, CURLOPT_NOBODY, 1) }
        for (name, value) in request.headers {
            slist = curl_slist_append(slist, "\(name): \(value)")
        }
        // No "Expect: 100-continue" round trip for larger bodies (libcurl adds it past 1 MiB).
        // Signed requests must not say so with an empty "Expect:" header: libcurl before 8.3
        // (Debian bookworm has 7.88) signs that header although it never sends it (curl issue
        // #11664), and AWS rejects the signature. For them, send the body without waiting
        // instead; the Expect: 100-continue libcurl may then add is not signed.
        if request.awsSigV4 == nil {
            slist = curl_slist_append(slist, "Expect:")
        } else {
            _ = ccurl_setopt_long(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0)
        }
        if let sig = request.awsSigV4 {
            if let token = sig.sessionToken { slist = curl_slist_append(slist, "X-Amz-Security-Token: \(token)") }
            _ = ccurl_setopt_str(h, CURLOPT_AWS_SIGV4, sig.provider)
            _ = ccurl_setopt_str(h, CURLOPT_USERNAME, sig.accessKeyId)
            _ = ccurl_setopt_str(h, CURLOPT_PASSWORD, sig.secretAccessKey)
        } else if let basic = request.basicAuth {
            _ = ccurl_setopt_long(h, CURLOPT_HTTPAUTH, ccurl_auth_basic())
            _ = ccurl_setopt_str(h, CURLOPT_USERNAME, basic.user)
            _ = ccurl_setopt_str(h, CURLOPT_PASSWORD, basic.password)
        }
        _ = ccurl_setopt_slist(h, CURLOPT_HTTPHEADER, slist)

        let context = unmanaged.toOpaque()
        _ = ccurl_setopt_datacb(h, CURLOPT_WRITEFUNCTION) { ptr, size, count, userdata in
            let n = size * count
            guard let ptr, let userdata else { return n }
            let c = Unmanaged<Collector>.fromOpaque(userdata).takeUnretainedValue()
            // Returning less than n makes libcurl abort the transfer (CURLE_WRITE_ERROR).
            guard c.body.count + n <= c.maxBodyBytes else {
                c.tooLarge = true
                return 0
            }
            ptr.withMemoryRebound(to: UInt8.self, capacity: n) { c.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
            return n
        }
        _ = ccurl_setopt_ptr(h, CURLOPT_WRITEDATA, context)
        _ = ccurl_setopt_datacb(h, CURLOPT_HEADERFUNCTION) { ptr, size, count, userdata in
            let n = size * count
            guard let ptr, let userdata else { return n }
            let c = Unmanaged<Collector>.fromOpaque(userdata).takeUnretainedValue()
            c.headerBytes += n
            guard c.headerBytes <= Collector.maxHeaderBytes else {
                c.tooLarge = true
                return 0
            }
            let line = ptr.withMemoryRebound(to: UInt8.self, capacity: n) {
                String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
            }
            if line.hasPrefix("HTTP/") {
                c.headers.removeAll()  // a new (final or interim) response starts
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
                c.headers.append((name, value))
            }
            return n
        }
        _ = ccurl_setopt_ptr(h, CURLOPT_HEADERDATA, context)

        let rc = curl_easy_perform(h)
        if collector.tooLarge { throw .responseTooLarge(limit: request.maxResponseBytes) }
        guard rc == CURLE_OK else {
            let message = String(cString: curl_easy_strerror(rc))
            switch rc {
            case CURLE_OPERATION_TIMEDOUT: throw .timeout(message)
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
                throw .connect(message)
            default: throw .transport(code: Int(rc.rawValue), message: message)
            }
        }
        var status = 0
        _ = ccurl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        return HTTPClientResponse(status: status, headers: collector.headers, body: collector.body)
    }
}

/// A base URL with its trailing slashes dropped, so `base + "/path"` never doubles one.
/// The one place for that rule: endpoints and base URLs from configuration all pass here.
public func baseURL(_ url: String) -> String {
    var u = Substring(url)
    while u.hasSuffix("/") { u.removeLast() }
    return String(u)
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
