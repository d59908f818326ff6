/// Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
/// Backoff And Jitter"): attempt n waits a uniform random time in [0, min(cap, base·2^n)].
///
/// | attempt | base 2 ms, cap 100 ms: upper bound |
/// |---------|------------------------------------|
/// | 0       | 2 ms                               |
/// | 1       | 4 ms                               |
/// | 3       | 16 ms                              |
/// | 6+      | 100 ms                             |
public struct Backoff: Sendable {
    public var baseMs: Double
    public var capMs: Double

    public init(baseMs: Double, capMs: Double) {
        self.baseMs = baseMs
        self.capMs = capMs
    }

    /// The upper bound for `attempt` (0-based), before jitter.
    public func ceilingMs(attempt: Int) -> Double {
        let exponent = Double(min(max(attempt, 0), 62))
        return min(capMs, baseMs * pow2(exponent))
    }

    /// A delay for `attempt`, with `unit` a random number in [0, 1).
    public func delayMs(attempt: Int, unit: Double) -> Double {
        ceilingMs(attempt: attempt) * min(max(unit, 0), 1)
    }

    private func pow2(_ e: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(e) { r *= 2 }
        return r
    }
}
