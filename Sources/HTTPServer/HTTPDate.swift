#if canImport(Glibc)
import Glibc
#endif
import Primitives

/// IMF-fixdate for the Date header (RFC 9110 §6.6.1), formatted at most once a second.
final class HTTPDateCache: Sendable {
    private let cached = Locked<(second: Int, text: [UInt8])>((-1, []))

    func current() -> [UInt8] {
        let now = time(nil)
        return cached.withLock { cache in
            if cache.second != now {
                cache = (now, Self.format(now))
            }
            return cache.text
        }
    }

    static func format(_ t: time_t) -> [UInt8] {
        var t = t
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let s = "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
        return Array(s.utf8)
    }
}
