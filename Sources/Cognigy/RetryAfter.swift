import Foundation

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Pure.
public enum RetryAfter {
    /// Longest wait any `Retry-After` can impose (SPEC: background retries wait ≤ 300 s).
    public static let maxDelayMs: Double = 300_000

    /// The delay in milliseconds, clamped to 0...`maxMs`, or nil when the value is neither
    /// form (a negative number, garbage). A date in the past is 0. The value comes from an
    /// upstream or a proxy in front of it, so nothing it says may trap or park us for
    /// years: `99999999999999999999` is simply `maxMs`.
    /// - Parameter nowEpochSeconds: the current time, for HTTP-dates.
    public static func delayMs(_ value: String, nowEpochSeconds: Double, maxMs: Double = maxDelayMs) -> Double? {
        let v = value.trimmingCharacters(in: .whitespaces)
        let ms: Double
        if !v.isEmpty, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            guard let seconds = Double(v) else { return nil }
            ms = seconds * 1000
        } else {
            guard let date = httpDate(v) else { return nil }
            ms = (date - nowEpochSeconds) * 1000
        }
        guard ms.isFinite else { return ms > 0 ? maxMs : nil }
        return min(max(0, ms), maxMs)
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), plus the obsolete RFC 850
    /// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`) forms
    /// that RFC 9110 §5.6.7 says recipients must accept.
    public static func httpDate(_ s: String) -> Double? {
        for format in ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEEE, dd-MMM-yy HH:mm:ss 'GMT'", "EEE MMM d HH:mm:ss yyyy"] {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "GMT")
            f.dateFormat = format
            if let d = f.date(from: s.replacingOccurrences(of: "  ", with: " ")) { return d.timeIntervalSince1970 }
        }
        return nil
    }
}
