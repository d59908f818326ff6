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

    public mutating func add(_ name: String, _ value: String) { fields.append((name.lowercased(), value)) }

    /// The first value of `name` (case-insensitive).
    public subscript(_ name: String) -> String? {
        let lower = name.lowercased()
        return fields.first(where: { $0.name == lower })?.value
    }

    /// All values of `name`, in order.
    public func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name == lower }.map(\.value)
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

    public init(
        method: HTTPMethod, path: String, query: String = "", version: HTTPVersion = .http11,
        headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.body = body
    }

    /// Decoded query parameters (`+` is a space, `%XX` escapes); nil if an escape is invalid.
    public var queryItems: [(name: String, value: String)]? {
        var items: [(String, String)] = []
        for part in Array(query.utf8).split(separator: UInt8(ascii: "&")) {
            let eq = part.firstIndex(of: UInt8(ascii: "="))
            let name = eq.map { part[part.startIndex..<$0] } ?? part[...]
            let value = eq.map { part[part.index(after: $0)...] } ?? []
            guard let n = PercentDecoding.decode(name, plusIsSpace: true),
                let v = PercentDecoding.decode(value, plusIsSpace: true)
            else { return nil }
            items.append((n, v))
        }
        return items
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
        var body: [UInt8] = Array(#"{"error":{"code":"#.utf8)
        appendJSONString(code, to: &body)
        body.append(contentsOf: #","message":"#.utf8)
        appendJSONString(message, to: &body)
        body.append(contentsOf: "}}".utf8)
        return json(status, body, headers: headers)
    }

    static func appendJSONString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(0x5C); out.append(b)
            case 0..<0x20: out.append(contentsOf: Array("\\u00".utf8) + [hexDigit(b >> 4), hexDigit(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }
}

/// Receives each complete request on the connection's thread and returns the response.
/// Called concurrently from many threads.
public protocol HTTPHandler: Sendable {
    func handle(_ request: HTTPRequest) -> HTTPResponse
}

public enum PercentDecoding {
    /// Decodes `%XX` escapes (and `+` when `plusIsSpace`); nil on a bad escape or invalid UTF-8.
    public static func decode<C: Collection>(_ bytes: C, plusIsSpace: Bool) -> String? where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                let h1 = bytes.index(after: i)
                guard h1 != bytes.endIndex else { return nil }
                let h2 = bytes.index(after: h1)
                guard h2 != bytes.endIndex, let hi = hex(bytes[h1]), let lo = hex(bytes[h2]) else { return nil }
                out.append(hi << 4 | lo)
                i = bytes.index(after: h2)
                continue
            }
            out.append(plusIsSpace && b == UInt8(ascii: "+") ? 0x20 : b)
            i = bytes.index(after: i)
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - 0x30
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - 0x61 + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - 0x41 + 10
        default: return nil
        }
    }
}
