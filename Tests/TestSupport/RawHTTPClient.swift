import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately low-level HTTP/1.1 client for tests: it writes exactly the bytes it is
/// given (malformed ones included) on a real TCP socket and parses what comes back.
/// Used from one thread at a time in tests; handed to another thread only whole.
public final class RawHTTPClient: @unchecked Sendable {
    public let fd: Int32

    public struct Response: CustomStringConvertible {
        public let status: Int
        public let headers: [(String, String)]
        public let body: [UInt8]
        public func header(_ name: String) -> String? {
            headers.first(where: { $0.0.lowercased() == name.lowercased() })?.1
        }
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var description: String { "\(status) \(text)" }
    }

    public enum ClientError: Error { case connect(Int32), timeout, closed, malformed(String) }

    private var buffer: [UInt8] = []

    public init(port: Int, host: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw ClientError.connect(e)
        }
    }

    deinit { close(fd) }

    public func send(_ text: String) { send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }

    /// Reads more bytes; false on EOF/error/timeout.
    private func fill(timeout: Double) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Reads one response (Content-Length framed, as our server always sends).
    public func readResponse(timeout: Double = 5, headRequest: Bool = false) throws -> Response {
        let deadline = Date().addingTimeInterval(timeout)
        func remaining() -> Double { max(0.001, deadline.timeIntervalSinceNow) }
        while true {
            if let end = findHeadEnd() {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw ClientError.malformed(head) }
                let headers = lines.filter { !$0.isEmpty }.map { line -> (String, String) in
                    let i = line.firstIndex(of: ":")!
                    return (String(line[..<i]), line[line.index(after: i)...].trimmingCharacters(in: .whitespaces))
                }
                let length = headRequest || status == 204 || status < 200
                    ? 0 : Int(headers.first(where: { $0.0.lowercased() == "content-length" })?.1 ?? "0") ?? 0
                let start = end + 4
                while buffer.count - start < length {
                    guard Date() < deadline else { throw ClientError.timeout }
                    guard fill(timeout: remaining()) else { throw ClientError.closed }
                }
                let body = Array(buffer[start..<(start + length)])
                buffer.removeSubrange(0..<(start + length))
                return Response(status: status, headers: headers, body: body)
            }
            guard Date() < deadline else { throw ClientError.timeout }
            guard fill(timeout: remaining()) else {
                throw Date() < deadline ? ClientError.closed : ClientError.timeout
            }
        }
    }

    /// True when the server has closed the connection (EOF) within `timeout`.
    public func isClosedByServer(timeout: Double = 2) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { return false }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return true }
            buffer.append(contentsOf: chunk[0..<n])
        }
        return false
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// One request on a new connection.
    public static func request(
        port: Int, method: String = "GET", path: String, headers: [(String, String)] = [], body: [UInt8] = [],
        timeout: Double = 10
    ) throws -> Response {
        let client = try RawHTTPClient(port: port)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.count)\r\n" }
        client.send(Array((head + "\r\n").utf8) + body)
        return try client.readResponse(timeout: timeout, headRequest: method == "HEAD")
    }
}

/// Waits until `condition` holds (polling every 2 ms), up to `seconds`; its last answer.
public func eventually(_ seconds: Double = 3, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(2_000)
    }
    return condition()
}
