import DialogWire

/// HTTP/1.1 request framing (RFC 9112), pure: no I/O. The server feeds it bytes as they
/// arrive; it answers "need more", a parsed head, or a typed error that maps to a status.

public enum HTTPParseError: Error, Equatable, Sendable {
    case requestLineTooLong
    case headersTooLarge
    case tooManyHeaders
    case malformedRequestLine
    case malformedHeader
    case unsupportedVersion
    case missingHost
    case duplicateHost
    case invalidContentLength
    /// Both Transfer-Encoding and Content-Length (RFC 9112 §6.1: a smuggling vector).
    case conflictingFraming
    case unsupportedTransferEncoding
    case malformedChunkedBody
    case bodyTooLarge
    case unsupportedExpectation

    public var status: HTTPStatus {
        switch self {
        case .requestLineTooLong, .headersTooLarge, .tooManyHeaders: return .headersTooLarge
        case .unsupportedVersion: return .versionNotSupported
        case .unsupportedTransferEncoding: return .notImplemented
        case .bodyTooLarge: return .payloadTooLarge
        case .unsupportedExpectation: return .expectationFailed
        default: return .badRequest
        }
    }

    public var code: String {
        switch self {
        case .requestLineTooLong: return "request_line_too_long"
        case .headersTooLarge: return "headers_too_large"
        case .tooManyHeaders: return "too_many_headers"
        case .malformedRequestLine: return "malformed_request_line"
        case .malformedHeader: return "malformed_header"
        case .unsupportedVersion: return "http_version_not_supported"
        case .missingHost: return "missing_host"
        case .duplicateHost: return "duplicate_host"
        case .invalidContentLength: return "invalid_content_length"
        case .conflictingFraming: return "conflicting_framing"
        case .unsupportedTransferEncoding: return "unsupported_transfer_encoding"
        case .malformedChunkedBody: return "malformed_chunked_body"
        case .bodyTooLarge: return "body_too_large"
        case .unsupportedExpectation: return "expectation_failed"
        }
    }

    public var message: String {
        switch self {
        case .requestLineTooLong: return "The request line is longer than the server accepts."
        case .headersTooLarge: return "The request header section is larger than the server accepts."
        case .tooManyHeaders: return "The request has more header fields than the server accepts."
        case .malformedRequestLine: return "The request line is not 'METHOD target HTTP/1.x'."
        case .malformedHeader: return "A header field is malformed."
        case .unsupportedVersion: return "Only HTTP/1.0 and HTTP/1.1 are supported."
        case .missingHost: return "An HTTP/1.1 request must have a Host header."
        case .duplicateHost: return "The request has more than one Host header."
        case .invalidContentLength: return "The Content-Length header is not a valid length."
        case .conflictingFraming: return "A request must not have both Transfer-Encoding and Content-Length."
        case .unsupportedTransferEncoding: return "Only the chunked transfer coding is supported."
        case .malformedChunkedBody: return "The chunked request body is malformed."
        case .bodyTooLarge: return "The request body is larger than the server accepts."
        case .unsupportedExpectation: return "Only 'Expect: 100-continue' is supported."
        }
    }
}

public enum BodyFraming: Equatable, Sendable {
    case none
    case contentLength(Int)
    case chunked
}

public struct RequestHead: Sendable {
    public var method: HTTPMethod
    public var path: String
    public var query: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var framing: BodyFraming
    /// Whether the connection may carry another request after this one.
    public var keepAlive: Bool
    public var expectsContinue: Bool
    /// The client connected from a loopback address (set by the connection, not parsed).
    public var peerIsLoopback = false

    /// The request this head starts, with its body.
    func request(body: [UInt8]) -> HTTPRequest {
        HTTPRequest(
            method: method, path: path, query: query, version: version, headers: headers, body: body,
            peerIsLoopback: peerIsLoopback)
    }
}

/// Finds where a request head ends in a growing buffer, remembering how far it looked so
/// each new read is scanned once. Skips empty lines before the request line (RFC 9112 §2.2).
public struct HeadScanner {
    /// Index of the first byte of the request line (after skipped empty lines).
    public private(set) var headStart = 0
    private var lineStart = 0
    private var position = 0
    private var sawRequestLine = false

    public init() {}

    public enum Result: Equatable {
        case needMore
        /// The head is `headStart..<headEnd`; the body starts at `bodyStart`.
        case complete(headEnd: Int, bodyStart: Int)
    }

    public mutating func scan(_ buffer: [UInt8], limits: HTTPServerConfiguration) throws(HTTPParseError) -> Result {
        while position < buffer.count {
            if buffer[position] == UInt8(ascii: "\n") {
                var lineEnd = position
                if lineEnd > lineStart, buffer[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                let empty = lineEnd == lineStart
                position += 1
                if !sawRequestLine {
                    if empty {
                        headStart = position  // stray CRLF before the request line
                        // Too many blank lines before a request is not a request either.
                        if headStart > limits.maxRequestLineBytes { throw .malformedRequestLine }
                    } else {
                        guard lineEnd - headStart <= limits.maxRequestLineBytes else { throw .requestLineTooLong }
                        sawRequestLine = true
                    }
                } else if empty {
                    return .complete(headEnd: lineStart, bodyStart: position)
                }
                lineStart = position
                continue
            }
            position += 1
        }
        // Early rejection of a head that can no longer fit. The answer must not depend on
        // where a read ended, so a final CR (maybe the first half of a CRLF, which the
        // limits do not count) does not count yet.
        let pending = buffer.count - headStart - (buffer.last == UInt8(ascii: "\r") ? 1 : 0)
        if !sawRequestLine, pending > limits.maxRequestLineBytes { throw .requestLineTooLong }
        if pending > limits.maxHeaderBytes { throw .headersTooLarge }
        return .needMore
    }
}

public enum HTTPHeadParser {
    /// Parses a complete head (request line and header lines, without the final empty line).
    public static func parse(_ head: ArraySlice<UInt8>, limits: HTTPServerConfiguration) throws(HTTPParseError) -> RequestHead {
        guard head.count <= limits.maxHeaderBytes else { throw .headersTooLarge }
        var lines: [ArraySlice<UInt8>] = []
        var start = head.startIndex
        var i = head.startIndex
        while i < head.endIndex {
            if head[i] == UInt8(ascii: "\n") {
                var end = i
                if end > start, head[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                lines.append(head[start..<end])
                start = i + 1
            }
            i += 1
        }
        if start < head.endIndex {
            var end = head.endIndex
            if head[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            lines.append(head[start..<end])
        }
        guard let requestLine = lines.first else { throw .malformedRequestLine }
        let (method, rawTarget, version) = try parseRequestLine(requestLine)

        guard lines.count - 1 <= limits.maxHeaderCount else { throw .tooManyHeaders }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            let (name, value) = try parseField(line)
            headers.add(name, value)
        }

        var target = rawTarget
        // Absolute-form targets (RFC 9112 §3.2.2) are reduced to their path and query.
        if target.hasPrefix("http://") || target.hasPrefix("https://") {
            let afterScheme = target[target.firstRange(of: "://")!.upperBound...]
            target = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }).map { String(afterScheme[$0...]) } ?? "/"
            if target.hasPrefix("?") { target = "/" + target }
        }
        guard target.hasPrefix("/") || (target == "*" && method == .OPTIONS) else { throw .malformedRequestLine }
        let path: String
        let query: String
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            query = String(target[target.index(after: q)...])
        } else {
            path = target
            query = ""
        }

        let hosts = headers.values("host")
        if hosts.count > 1 { throw .duplicateHost }
        if version == .http11, hosts.isEmpty { throw .missingHost }

        let framing = try bodyFraming(headers, limits: limits)

        var keepAlive = version == .http11
        for value in headers.values("connection") {
            for token in value.split(separator: ",") {
                let t = token.trimmingWhitespace().lowercased()
                if t == "close" { keepAlive = false }
                if t == "keep-alive", version == .http10 { keepAlive = true }
            }
        }

        var expectsContinue = false
        if let expect = headers["expect"] {
            guard expect.lowercased() == "100-continue" else { throw .unsupportedExpectation }
            expectsContinue = version == .http11
        }
        return RequestHead(
            method: method, path: path, query: query, version: version, headers: headers, framing: framing,
            keepAlive: keepAlive, expectsContinue: expectsContinue)
    }

    /// RFC 9112 §6.3: Transfer-Encoding wins over Content-Length, but a request carrying
    /// both is rejected outright (§6.1), and only "chunked" is understood.
    static func bodyFraming(_ headers: HTTPHeaders, limits: HTTPServerConfiguration) throws(HTTPParseError) -> BodyFraming {
        let te = headers.values("transfer-encoding")
        let cl = headers.values("content-length")
        if !te.isEmpty {
            guard cl.isEmpty else { throw .conflictingFraming }
            let codings = te.flatMap { $0.split(separator: ",") }.map { $0.trimmingWhitespace().lowercased() }
            guard codings.last == "chunked" else {
                // Without chunked last the length cannot be determined (§6.3 item 4).
                throw codings.contains("chunked") ? .malformedChunkedBody : .unsupportedTransferEncoding
            }
            guard codings.count == 1 else { throw .unsupportedTransferEncoding }
            return .chunked
        }
        guard !cl.isEmpty else { return .none }
        // "Content-Length: 5, 5" or repeated equal fields are one length (§6.3 item 5).
        var length: Int?
        for value in cl {
            for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                let digits = part.trimmingWhitespace()
                guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    let n = Int(digits)
                else { throw .invalidContentLength }
                if let length, length != n { throw .invalidContentLength }
                length = n
            }
        }
        guard let length else { throw .invalidContentLength }
        guard length <= limits.maxBodyBytes else { throw .bodyTooLarge }
        return length == 0 ? .none : .contentLength(length)
    }

    static func parseRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> (HTTPMethod, String, HTTPVersion) {
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isTokenChar),
            !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { throw .malformedRequestLine }
        let version: HTTPVersion
        switch String(decoding: parts[2], as: UTF8.self) {
        case "HTTP/1.1": version = .http11
        case "HTTP/1.0": version = .http10
        case let v where v.hasPrefix("HTTP/") && v.utf8.count == 8: throw .unsupportedVersion
        default: throw .malformedRequestLine
        }
        return (
            HTTPMethod(rawValue: String(decoding: parts[0], as: UTF8.self)),
            String(decoding: parts[1], as: UTF8.self), version
        )
    }

    /// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). No space before the
    /// colon, no obsolete line folding, no control characters in the value.
    static func parseField(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> (String, String) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else { throw .malformedHeader }
        let name = line[line.startIndex..<colon]
        guard name.allSatisfy(isTokenChar) else { throw .malformedHeader }
        var valueStart = colon + 1
        var valueEnd = line.endIndex
        while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let value = line[valueStart..<valueEnd]
        for b in value where (b < 0x20 && b != 0x09) || b == 0x7F { throw .malformedHeader }
        return (HTTPHeaders.foldedName(name), String(decoding: value, as: UTF8.self))
    }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

/// Incremental decoder of a chunked body (RFC 9112 §7.1), with limits on the body, each
/// chunk-size line and the trailer section.
public struct ChunkedDecoder {
    private enum State { case sizeLine, data(Int), dataEnd, trailer, done }
    private var state: State = .sizeLine
    private var line: [UInt8] = []
    private var trailerBytes = 0
    public private(set) var body: [UInt8] = []
    private let maxBody: Int
    private let maxLine: Int
    private let maxTrailer: Int

    public init(limits: HTTPServerConfiguration) {
        maxBody = limits.maxBodyBytes
        maxLine = limits.maxChunkLineBytes
        maxTrailer = limits.maxHeaderBytes
    }

    public var isDone: Bool { if case .done = state { return true } else { return false } }

    /// Consumes bytes from `buffer[from...]`, returns how many were used. Stops at the end
    /// of the body, leaving any pipelined request after it untouched.
    public mutating func feed(_ buffer: [UInt8], from: Int) throws(HTTPParseError) -> Int {
        var i = from
        while i < buffer.count {
            switch state {
            case .done:
                return i - from
            case .data(let remaining):
                let n = min(remaining, buffer.count - i)
                body.append(contentsOf: buffer[i..<(i + n)])
                i += n
                state = remaining == n ? .dataEnd : .data(remaining - n)
            case .sizeLine, .dataEnd, .trailer:
                let b = buffer[i]
                i += 1
                if b != UInt8(ascii: "\n") {
                    line.append(b)
                    if case .trailer = state {
                        trailerBytes += 1
                        if trailerBytes > maxTrailer { throw .headersTooLarge }
                    } else if line.count > maxLine {
                        throw .malformedChunkedBody
                    }
                    continue
                }
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                try endOfLine()
                line.removeAll(keepingCapacity: true)
            }
        }
        return i - from
    }

    private mutating func endOfLine() throws(HTTPParseError) {
        switch state {
        case .sizeLine:
            var size = 0
            var digits = 0
            var index = 0
            while index < line.count, let v = PercentDecoding.hexValue(line[index]) {
                size = size << 4 | Int(v)
                digits += 1
                index += 1
                guard digits <= 15 else { throw .bodyTooLarge }
            }
            guard digits > 0 else { throw .malformedChunkedBody }
            // Only whitespace then ";" extensions may follow the size.
            while index < line.count, line[index] == 0x20 || line[index] == 0x09 { index += 1 }
            guard index == line.count || line[index] == UInt8(ascii: ";") else { throw .malformedChunkedBody }
            guard body.count + size <= maxBody else { throw .bodyTooLarge }
            state = size == 0 ? .trailer : .data(size)
        case .dataEnd:
            guard line.isEmpty else { throw .malformedChunkedBody }
            state = .sizeLine
        case .trailer:
            if line.isEmpty {
                state = .done
            } else {
                _ = try HTTPHeadParser.parseField(line[...])
            }
        case .data, .done:
            break
        }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
