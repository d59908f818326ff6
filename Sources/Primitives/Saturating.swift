#if canImport(Glibc)
import Glibc
#endif

/// Conversions of numbers that come from outside (headers, JSON, upstream answers) that
/// never trap: Swift's `Int64(_: Double)` traps on NaN, infinities and values out of range,
/// which let a `Retry-After: 99999999999999999999` from an upstream kill the process.
extension Int64 {
    /// `value` rounded toward zero and clamped to `Int64`'s range; NaN is 0.
    @inline(__always)
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9_223_372_036_854_775_807.0 {
            self = .max
        } else if value <= -9_223_372_036_854_775_808.0 {
            self = .min
        } else {
            self = Int64(value)
        }
    }
}

extension Int {
    /// `value` rounded toward zero and clamped to `Int`'s range; NaN is 0.
    @inline(__always)
    public init(saturating value: Double) { self = Int(Int64(saturating: value)) }
}

/// Sleeps `ms` milliseconds; NaN, negative and zero return at once, huge values are
/// capped at `capMs` (so no caller can park a thread for years by mistake).
public func sleepMs(_ ms: Double, capMs: Double = 300_000) {
    guard ms > 0 else { return }
    var remaining = Int64(saturating: min(ms, capMs) * 1000)  // µs
    while remaining > 0 {
        let chunk = min(remaining, 1_000_000)
        usleep(UInt32(chunk))
        remaining -= chunk
    }
}
