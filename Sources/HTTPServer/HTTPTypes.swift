import DialogWire

/// HTTP message types. Open sets (methods, statuses) are structs with static lets; header
/// names are compared case-insensitively by storing them lowercased.

public struct HTTPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let GET = HTTPMethod(rawValue: "GET")
    public static let HEAD = HTTPMethod(rawValue: "HEAD")
    public static let POST = HTTPMethod(rawValue: "POST")
    public static let PUT = HTTPMethod(rawValue: "PUT")
    public static let DELETE = HTTPMethod(rawValue: "DELETE")
    public static let OPTIONS = HTTPMethod(rawValue: "OPTIONS")
    public static let PATCH = HTTPMethod(rawValue: "PATCH")
}

public struct HTTPStatus: Hashable, Sendable {
    public let code: Int
    public let reason: String
    public init(_ code: Int, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public static let `continue` = HTTPStatus(100, "Continue")
    public static let ok = HTTPStatus(200, "OK")
    public static let noContent = HTTPStatus(204, "No Content")
    public static let badRequest = HTTPStatus(400, "Bad Request")
    public static let unauthorized = HTTPStatus(401, "Unauthorized")
    public static let forbidden = HTTPStatus(403, "Forbidden")
    public static let notFound = HTTPStatus(404, "Not Found")
    public static let methodNotAllowed = HTTPStatus(405, "Method Not Allowed")
    public static let requestTimeout = HTTPStatus(408, "Request Timeout")
    public static let conflict = HTTPStatus(409, "Conflict")
    public static let payloadTooLarge = HTTPStatus(413, "Content Too Large")
    public static let unsupportedMediaType = HTTPStatus(415, "Unsupported Media Type")
    public static let expectationFailed = HTTPStatus(417, "Expectation Failed")
    public static let headersTooLarge = HTTPStatus(431, "Request Header Fields Too Large")
    public static let internalServerError = HTTPStatus(500, "Internal Server Error")
    public static let notImplemented = HTTPStatus(501, "Not Implemented")
    public static let badGateway = HTTPStatus(502, "Bad Gateway")
    public static let serviceUnavailable = HTTPStatus(503, "Service Unavailable")
    public static let versionNotSupported = HTTPStatus(505, "HTTP Version Not Supported")
}

/// Header fields in arrival order, names lowercased.
public struct HTTPHeaders: Sendable, Sequence {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}
    public init(_ pairs: [(String, String)]) {
        for (n, v) in pairs { add(n, v) }
    }

    public mutating func add(_ name: String, _ value: String) { fields.append((Self.fold(name), value)) }

    /// The first value of `name` (case-insensitive).
    public subscript(_ name: String) -> String? {
        let lower = Self.fold(name)
        return fields.first(where: { $0.name == lower })?.value
    }

    /// All values of `name`, in order.
    public func values(_ name: String) -> [String] {
        let lower = Self.fold(name)
        return fields.filter { $0.name == lower }.map(\.value)
    }

    /// A field name's case-insensitive form. Field names are ASCII tokens (RFC 9110 §5.1),
    /// so only A–Z fold; a name without capitals (a parsed one, a lookup constant) is
    /// returned as it is, without the allocation of a Unicode `lowercased()`.
    static func fold(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return name }
        return foldedName(name.utf8)
    }

    /// The bytes of a field name, A–Z folded to a–z.
    static func foldedName<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(unsafeUninitializedCapacity: bytes.count) { buffer in
            var i = 0
            for b in bytes {
                buffer[i] = b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b
                i += 1
            }
            return i
        }
    }

    public var count: Int { fields.count }
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }
}

public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The path part of the target, still percent-encoded.
    public var path: String
    /// The query part after `?`, still encoded ("" when absent).
    public var query: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The client connected from a loopback address (127.0.0.0/8, ::1, ::ffff:127.x).
    public var peerIsLoopback: Bool

    public init(
        method: HTTPMethod, path: String, query: String = "", version: HTTPVersion = .http11,
        headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], peerIsLoopback: Bool = false
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.body = body
        self.peerIsLoopback = peerIsLoopback
    }

    /// Decoded query parameters (`+` is a space, `%XX` escapes); nil if an escape is invalid.
    public var queryItems: [(name: String, value: String)]? {
        // The query string is form-encoded, so the form body's parser reads it.
        guard let pairs = try? FormURLEncoding.parse(Array(query.utf8)) else { return nil }
        return pairs.map { ($0.name, $0.value) }
    }
}

public enum HTTPVersion: Sendable, Equatable {
    case http10, http11
}

public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: HTTPStatus, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response.
    public static func json(_ status: HTTPStatus, _ body: [UInt8], headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    /// The service's error shape: `{"error":{"code":"<snake_case>","message":"<one sentence>"}}`.
    public static func error(
        _ status: HTTPStatus, code: String, message: String, headers: [(String, String)] = []
    ) -> HTTPResponse {
        var w = JSONWriter(capacity: 64 + message.utf8.count)
        w.beginObject()
        w.key("error")
        w.beginObject()
        w.key("code"); w.value(code)
        w.key("message"); w.value(message)
        w.endObject()
        w.endObject()
        return json(status, w.bytes, headers: headers)
    }
}

/// Receives each complete request on the connection's thread and returns the response.
/// Called concurrently from many threads.
public protocol HTTPHandler: Sendable {
    func handle(_ request: HTTPRequest) -> HTTPResponse
    /// Called with a request's head before its body is read: a response here (an unknown
    /// route, a wrong method, missing credentials) is sent at once and the connection
    /// closed, so nobody can make the server read a body it will refuse anyway.
    func preflight(_ head: RequestHead) -> HTTPResponse?
    /// True when the request this head starts needs no body and its handler never blocks
    /// (no store, no network: `/health`). The server then answers it on the idle loop's
    /// thread, without waking a worker (see `InlineRequests`). Asked about bodiless GET and
    /// HEAD requests only.
    func servesInline(_ head: RequestHead) -> Bool
    /// Whether any request may be answered later (`handleLater`); false (the default) keeps
    /// the server from looking at a request's route for it at all. Asked once, at start.
    var answersLater: Bool { get }
    /// True when requests like the one this head starts may be answered later, from another
    /// thread (`handleLater`): the idle loop then reads them whole and never blocks on them.
    func servesLater(_ head: RequestHead) -> Bool
    /// Starts handling `request` without blocking and returns true; `done` is then called
    /// exactly once, from any thread. False: nothing started, `done` never called, and a
    /// worker calls `handle`.
    func handleLater(_ request: HTTPRequest, done: @escaping @Sendable (LaterAnswer) -> Void) -> Bool
}

/// How a request started with `handleLater` ends.
public enum LaterAnswer: Sendable {
    /// Sent at once by the thread that calls `done`, without blocking.
    case response(HTTPResponse)
    /// Built and sent by a worker, where it may block or log (an error's answer).
    case fromWorker(@Sendable () -> HTTPResponse)
    /// Nothing was done: a worker handles the request with `handle`, from its bytes, and
    /// keeps the connection for the hand-off delay, as its next requests are unlikely to be
    /// answered later either (where `handleLater` returning false leaves it to the loop).
    case handBack
}

extension HTTPHandler {
    public func preflight(_ head: RequestHead) -> HTTPResponse? { nil }
    public func servesInline(_ head: RequestHead) -> Bool { false }
    public var answersLater: Bool { false }
    public func servesLater(_ head: RequestHead) -> Bool { false }
    public func handleLater(_ request: HTTPRequest, done: @escaping @Sendable (LaterAnswer) -> Void) -> Bool { false }
}
