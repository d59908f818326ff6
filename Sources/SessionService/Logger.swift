#if canImport(Glibc)
import Glibc
#endif
import DialogWire
import Foundation

/// JSON lines on stderr: `{"ts":…,"level":…,"msg":…, fields…}`. One write(2) per line, so
/// lines from concurrent threads never interleave. Callers never pass slot values or
/// secrets as fields at info or above.
public struct Logger: Sendable {
    public let level: LogLevel
    private let sink: @Sendable ([UInt8]) -> Void

    public init(level: LogLevel, sink: (@Sendable ([UInt8]) -> Void)? = nil) {
        self.level = level
        self.sink =
            sink ?? { line in
                line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
            }
    }

    public func debug(_ msg: String, _ fields: [(String, LogValue)] = []) { log(.debug, msg, fields) }
    public func info(_ msg: String, _ fields: [(String, LogValue)] = []) { log(.info, msg, fields) }
    public func warn(_ msg: String, _ fields: [(String, LogValue)] = []) { log(.warn, msg, fields) }
    public func error(_ msg: String, _ fields: [(String, LogValue)] = []) { log(.error, msg, fields) }

    public func log(_ l: LogLevel, _ msg: String, _ fields: [(String, LogValue)]) {
        guard l >= level else { return }
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.key("ts"); w.value(Self.timestamp())
        w.key("level"); w.value(l.name)
        w.key("msg"); w.value(msg)
        if let id = RequestContext.requestId { w.key("request_id"); w.value(id) }
        for (k, v) in fields {
            w.key(k)
            switch v {
            case .string(let s): w.value(s)
            case .int(let i): w.value(i)
            case .bool(let b): w.value(b)
            }
        }
        w.endObject()
        var line = w.bytes
        line.append(0x0A)
        sink(line)
    }

    static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var t = tv.tv_sec
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
            Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), Int(tv.tv_usec / 1000))
    }
}

public enum LogValue: Sendable {
    case string(String)
    case int(Int64)
    case bool(Bool)
}

extension LogValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
