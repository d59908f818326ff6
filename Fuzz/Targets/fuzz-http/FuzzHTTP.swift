import DialogWire
import FuzzSupport
import HTTPServer

/// The HTTP/1.1 request parser, driven the way Connection drives it: scan the head in a
/// growing buffer, parse it, read the body (Content-Length or the chunked decoder), drop the
/// consumed bytes and repeat while keep-alive holds (pipelining).
///
/// Invariants: every parsed head is consistent with the limits and the grammar, and the
/// outcome does not depend on how the bytes are split into reads: the whole input in one
/// read and the same input one byte per read give the same requests and the same error.
enum FuzzHTTP {
    /// Small limits so short inputs reach every limit check.
    static let limits: HTTPServerConfiguration = {
        var c = HTTPServerConfiguration()
        c.maxRequestLineBytes = 64
        c.maxHeaderBytes = 256
        c.maxHeaderCount = 8
        c.maxBodyBytes = 512
        c.maxChunkLineBytes = 16
        return c
    }()

    static func run(_ input: [UInt8]) {
        let whole = serve(input, readSize: input.count)
        let byteByByte = serve(input, readSize: 1)
        guard whole == byteByByte else {
            fatalError("outcome depends on read boundaries for \(show(input)):\n  one read: \(whole)\n  1-byte reads: \(byteByByte)")
        }
    }

    enum Outcome: Equatable, CustomStringConvertible {
        case request(String)
        case error(HTTPParseError)

        var description: String {
            switch self {
            case .request(let r): return r
            case .error(let e): return "error(\(e))"
            }
        }
    }

    /// Connection.run without sockets: `readSize` bytes of `input` arrive per read.
    static func serve(_ input: [UInt8], readSize: Int) -> [Outcome] {
        var outcomes: [Outcome] = []
        var buffer: [UInt8] = []
        var offset = 0
        func fill() -> Bool {
            guard offset < input.count else { return false }
            let next = min(input.count, offset + max(1, readSize))
            buffer.append(contentsOf: input[offset..<next])
            offset = next
            return true
        }
        while true {
            // 1. The head.
            var scanner = HeadScanner()
            var headEnd = 0, bodyStart = 0
            scan: while true {
                do {
                    if case .complete(let end, let start) = try scanner.scan(buffer, limits: limits) {
                        precondition(scanner.headStart <= end && end < start && start <= buffer.count, "scanner bounds")
                        headEnd = end
                        bodyStart = start
                        break scan
                    }
                } catch {
                    outcomes.append(.error(error))
                    return outcomes
                }
                if !fill() { return outcomes }
            }
            // 2. Parse it.
            let head: RequestHead
            do {
                head = try HTTPHeadParser.parse(buffer[scanner.headStart..<headEnd], limits: limits)
            } catch {
                outcomes.append(.error(error))
                return outcomes
            }
            check(head, headBytes: headEnd - scanner.headStart)
            // 3. The body.
            var body: [UInt8] = []
            var consumed = bodyStart
            switch head.framing {
            case .none:
                break
            case .contentLength(let length):
                while buffer.count - bodyStart < length {
                    if !fill() { return outcomes }
                }
                body = Array(buffer[bodyStart..<(bodyStart + length)])
                consumed = bodyStart + length
            case .chunked:
                var decoder = ChunkedDecoder(limits: limits)
                var position = bodyStart
                while true {
                    do {
                        let used = try decoder.feed(buffer, from: position)
                        precondition(used >= 0 && position + used <= buffer.count, "chunked decoder overran the buffer")
                        position += used
                    } catch {
                        outcomes.append(.error(error))
                        return outcomes
                    }
                    precondition(decoder.body.count <= limits.maxBodyBytes, "chunked body over the limit")
                    if decoder.isDone { break }
                    if !fill() { return outcomes }
                }
                body = decoder.body
                consumed = position
            }
            buffer.removeSubrange(0..<consumed)
            outcomes.append(.request(summary(head, body)))
            guard head.keepAlive else { return outcomes }
        }
    }

    static func summary(_ head: RequestHead, _ body: [UInt8]) -> String {
        var s = "\(head.method) \(head.path) ? \(head.query) \(head.version) keepAlive=\(head.keepAlive)"
        s += " continue=\(head.expectsContinue) framing=\(head.framing)"
        for (name, value) in head.headers { s += " [\(name): \(value)]" }
        return s + " body=\(show(body))"
    }

    /// What every accepted head must satisfy.
    static func check(_ head: RequestHead, headBytes: Int) {
        precondition(headBytes <= limits.maxHeaderBytes, "head of \(headBytes) bytes accepted")
        precondition(head.headers.count <= limits.maxHeaderCount, "\(head.headers.count) headers accepted")
        precondition(!head.method.rawValue.isEmpty, "empty method")
        precondition(
            head.path.hasPrefix("/") || (head.path == "*" && head.method == .OPTIONS), "bad path \(head.path)")
        precondition(!head.path.utf8.contains(UInt8(ascii: "?")), "path keeps a '?'")
        for b in Array(head.path.utf8) + Array(head.query.utf8) { precondition(b > 0x20 && b != 0x7F, "control or space in target") }
        let hosts = head.headers.values("host").count
        precondition(hosts <= 1, "\(hosts) Host headers accepted")
        if head.version == .http11 { precondition(hosts == 1, "HTTP/1.1 without Host accepted") }
        if head.expectsContinue { precondition(head.version == .http11, "100-continue on HTTP/1.0") }
        for (name, value) in head.headers {
            precondition(!name.isEmpty && name == name.lowercased(), "header name \(name)")
            for b in value.utf8 {
                precondition((b >= 0x20 || b == 0x09) && b != 0x7F, "control character in a header value")
            }
            precondition(value.first != " " && value.first != "\t" && value.last != " " && value.last != "\t",
                "header value not trimmed")
        }
        let te = head.headers.values("transfer-encoding"), cl = head.headers.values("content-length")
        precondition(te.isEmpty || cl.isEmpty, "both Transfer-Encoding and Content-Length accepted")
        switch head.framing {
        case .none: precondition(te.isEmpty, "Transfer-Encoding without chunked framing")
        case .contentLength(let n): precondition(n > 0 && n <= limits.maxBodyBytes && !cl.isEmpty, "length \(n)")
        case .chunked: precondition(!te.isEmpty, "chunked without Transfer-Encoding")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzHTTP.run(fuzzInput(data, size))
    return 0
}
