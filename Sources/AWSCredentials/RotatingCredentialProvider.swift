import Foundation

/// Caches another provider's credentials and renews them before they expire (Soto's
/// `RotatingCredentialProvider`). At most one refresh runs at a time: it starts
/// `refreshMarginSeconds` before expiry, and callers that arrive meanwhile are served the
/// still-valid credentials; only when none are left do they wait for the refresh. Expired
/// credentials are never handed out: if the refresh fails and the cached ones have
/// expired (or expire within `minimumValiditySeconds`, the time a signed request may
/// take to arrive), the call throws. Credentials without an expiration are kept until
/// `invalidate`.
public final class RotatingCredentialProvider: AWSCredentialProvider, @unchecked Sendable {
    // @unchecked Sendable: all mutable state is guarded by `condition`'s lock.
    public struct Configuration: Sendable {
        /// Renew this long before expiry (the SDKs' 5 minutes; STS credentials last ≥ 15 minutes).
        public var refreshMarginSeconds: Double = 300
        /// Credentials expiring sooner than this are not handed out.
        public var minimumValiditySeconds: Double = 10
        /// After a failed refresh, the next one waits this long (callers meanwhile get the
        /// cached credentials if still valid, else the failure), so an unreachable source is
        /// not hammered by every request.
        public var retryAfterFailureSeconds: Double = 1

        public init() {}
    }

    public let base: any AWSCredentialProvider
    public let configuration: Configuration
    private let clock: @Sendable () -> Double
    private let condition = NSCondition()
    private var cached: AWSCredentials?
    private var refreshing = false
    private var generation = 0
    private var lastResult: Result<AWSCredentials, AWSCredentialError>?
    private var lastFailure: (at: Double, error: AWSCredentialError)?
    private var refreshCount = 0
    private var failureCount = 0

    /// - Parameters:
    ///   - base: the source (a `CredentialChain`, or one provider).
    ///   - clock: epoch seconds now; tests move it.
    public init(
        _ base: any AWSCredentialProvider, configuration: Configuration = Configuration(),
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.base = base
        self.configuration = configuration
        self.clock = clock
    }

    /// Fetches from the source so far (successful or not).
    public var refreshes: Int { locked { refreshCount } }
    /// Fetches that failed.
    public var failures: Int { locked { failureCount } }
    /// The last fetch's failure, nil once a fetch succeeded after it.
    public var lastError: AWSCredentialError? { locked { lastFailure?.error } }

    public func credentials() throws(AWSCredentialError) -> AWSCredentials {
        condition.lock()
        let now = clock()
        if let c = cached, c.isValid(at: now, for: configuration.refreshMarginSeconds) {
            condition.unlock()
            return c
        }
        let usable = cached.flatMap { $0.isValid(at: now, for: configuration.minimumValiditySeconds) ? $0 : nil }
        if refreshing {
            if let usable {
                condition.unlock()
                return usable
            }
            let waitingFor = generation
            while refreshing && generation == waitingFor { condition.wait() }
            let result = lastResult
            condition.unlock()
            guard let result else { throw .expired("the refresh ended without a result") }
            let c = try result.get()
            // The refresh may have finished a while ago by the waiter's clock.
            guard c.isValid(at: clock(), for: configuration.minimumValiditySeconds) else { throw expiredError(c) }
            return c
        }
        if let failure = lastFailure, now - failure.at < configuration.retryAfterFailureSeconds, now >= failure.at {
            condition.unlock()
            if let usable { return usable }
            throw failure.error
        }
        refreshing = true
        condition.unlock()

        let fetched: Result<AWSCredentials, AWSCredentialError>
        do { fetched = .success(try base.credentials()) } catch { fetched = .failure(error) }

        condition.lock()
        let after = clock()
        var outcome = fetched
        if case .success(let c) = fetched, !c.isValid(at: after, for: configuration.minimumValiditySeconds) {
            outcome = .failure(expiredError(c))
        }
        switch outcome {
        case .success(let c):
            cached = c
            lastFailure = nil
        case .failure(let error):
            lastFailure = (after, error)
            failureCount += 1
        }
        refreshCount += 1
        lastResult = outcome
        generation += 1
        refreshing = false
        condition.broadcast()
        let fallback = cached.flatMap { $0.isValid(at: after, for: configuration.minimumValiditySeconds) ? $0 : nil }
        condition.unlock()
        switch outcome {
        case .success(let c): return c
        case .failure(let error):
            // The source is down but what we hold is still good: use it until it is not.
            if let fallback { return fallback }
            throw error
        }
    }

    /// Forgets `rejected` (AWS refused it) unless newer credentials replaced it already.
    public func invalidate(_ rejected: AWSCredentials) {
        locked {
            if let c = cached, c.accessKeyId == rejected.accessKeyId, c.sessionToken == rejected.sessionToken { cached = nil }
        }
        base.invalidate(rejected)
    }

    private func expiredError(_ c: AWSCredentials) -> AWSCredentialError {
        .expired("the source's credentials \(c.accessKeyId) expire at \(Int64(c.expiration ?? 0)), too soon to sign with")
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }
}
