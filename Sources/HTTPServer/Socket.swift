#if canImport(Glibc)
import Glibc
#endif
import Primitives

/// A system call failed; `operation` names it.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32
    public var description: String { "\(operation) failed: \(String(cString: strerror(errno)))" }
}

enum Sockets {
    /// Whether the peer of a connected socket is a loopback address; false when unknown.
    static func peerIsLoopback(_ fd: Int32) -> Bool {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return false }
        let family = Int32(storage.ss_family)
        let bytes = withUnsafeBytes(of: &storage) { Array($0) }
        return isLoopback(family: family, address: bytes)
    }

    /// Loopback: IPv4 127.0.0.0/8, IPv6 ::1, or IPv4-mapped ::ffff:127.x.y.z. `address` is
    /// the raw `sockaddr_in`/`sockaddr_in6` bytes. Pure, so tests can feed it any address.
    static func isLoopback(family: Int32, address: [UInt8]) -> Bool {
        switch family {
        case AF_INET:
            // sockaddr_in: family(2) port(2) addr(4)
            guard address.count >= 8 else { return false }
            return address[4] == 127
        case AF_INET6:
            // sockaddr_in6: family(2) port(2) flowinfo(4) addr(16)
            guard address.count >= 24 else { return false }
            let a = Array(address[8..<24])
            if a[0..<15].allSatisfy({ $0 == 0 }) && a[15] == 1 { return true }
            let mapped = a[0..<10].allSatisfy({ $0 == 0 }) && a[10] == 0xFF && a[11] == 0xFF
            return mapped && a[12] == 127
        default:
            return false
        }
    }

    /// A bound, listening, close-on-exec TCP socket; returns it and the port actually bound.
    static func listen(host: String, port: Int, backlog: Int) throws -> (fd: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw SocketError(operation: "resolve \(host): \(String(cString: gai_strerror(rc)))", errno: 0)
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError(operation: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let e = errno
            close(fd)
            throw SocketError(operation: "bind \(host):\(port)", errno: e)
        }
        guard Glibc.listen(fd, Int32(backlog)) == 0 else {
            let e = errno
            close(fd)
            throw SocketError(operation: "listen", errno: e)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let boundPort: UInt16 =
            storage.ss_family == sa_family_t(AF_INET6)
            ? withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port } }
            : withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port } }
        return (fd, Int(UInt16(bigEndian: boundPort)))
    }

    enum WaitResult { case readable, timedOut, woken }

    /// Waits until `fd` is readable, the deadline passes, or (when given) the wake pipe fires.
    /// A deadline already past still checks once without waiting (an idle hand-off delay of
    /// 0 must see a request that is already there). Retries EINTR (a signal must not kill a
    /// connection).
    static func waitReadable(_ fd: Int32, wake: Int32?, deadline: Int64) -> WaitResult {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        if let wake { fds.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0)) }
        while true {
            let remaining = max(0, deadline - monotonicMs())
            let rc = poll(&fds, nfds_t(fds.count), Int32(min(remaining, Int64(Int32.max))))
            if rc < 0 {
                if errno == EINTR { continue }
                return .readable  // let recv report the error
            }
            if rc == 0 { return .timedOut }
            if fds[0].revents != 0 { return .readable }
            if fds.count > 1, fds[1].revents != 0 { return .woken }
        }
    }

    /// Writes all bytes (SO_SNDTIMEO bounds each blocking send); false if the peer is gone or slow.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    static func setTimeout(_ fd: Int32, option: Int32, ms: Int) {
        var tv = timeval(tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}
