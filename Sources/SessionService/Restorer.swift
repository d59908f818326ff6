#if canImport(Glibc)
import Glibc
#endif
import Backoff
import Cognigy
import DialogWire
import Primitives
import SessionStore

/// Pushes a conversation's context into a new Cognigy session (SPEC "Channel switch").
///
/// Every restore is queued first (`RestoreQueue`, one entry per target session) and sent
/// only by whoever holds the entry's lease: the webhook inline, for up to
/// `RESTORE_INLINE_TIMEOUT_MS`, or later the background worker of any process sharing the
/// queue. Each send reads the conversation's latest version when it starts, so a session
/// gets the newest context at delivery time and, sends being serialised by the lease, never
/// an older version after a newer one. An erased or expired conversation is never sent.
public final class Restorer: Sendable {
    public struct Counters: Sendable, Equatable {
        public var sent = 0, queued = 0, failed = 0, dropped = 0, deliveredLater = 0
        /// Cognigy answered 401/403: the restore stays queued (a key rotation in progress).
        public var unauthorized = 0
    }

    public let client: CognigyClient
    public let queue: any RestoreQueue
    let store: any SessionStore
    let contextKey: String?
    let inlineTimeoutMs: Int
    /// A queued restore not delivered this long after it was queued is dropped.
    let ttlMs: Int64
    let logger: Logger
    /// Background retries: attempt n waits up to min(cap, base·2^n) unless Cognigy said when.
    let retryBackoff = Backoff(baseMs: 1000, capMs: 60_000)
    /// One background send's deadline. Each background pass sends once per entry: the wait
    /// before the next try goes through the queue, so a DELETE in between is always seen.
    let backgroundDeadlineMs = 5_000
    /// Worker poll interval when a pass delivered nothing.
    let pollIntervalMs: Int
    private let clockMs: @Sendable () -> Int64
    private let counters = Locked(Counters())
    private let stopping = Locked(false)
    private let workerDone = Locked(true)

    public init(
        client: CognigyClient, queue: any RestoreQueue, store: any SessionStore, contextKey: String?, inlineTimeoutMs: Int,
        ttlSeconds: Int64, logger: Logger, pollIntervalMs: Int = 200,
        clockMs: @escaping @Sendable () -> Int64 = DialogService.wallClockMs
    ) {
        self.client = client
        self.queue = queue
        self.store = store
        self.contextKey = contextKey
        self.inlineTimeoutMs = inlineTimeoutMs
        self.ttlMs = ttlSeconds &* 1000
        self.logger = logger
        self.pollIntervalMs = pollIntervalMs
        self.clockMs = clockMs
    }

    public var counts: Counters { counters.withLock { $0 } }

    /// A lease owner token, unique per claim.
    private static func newOwner() -> String { String(UInt64.random(in: 1...UInt64.max), radix: 16) }

    /// What a log line says of a restore: the conversation, never the Cognigy user or
    /// session id (personal data, encrypted at rest when ENCRYPTION_KEYS is set).
    private static func fields(_ target: RestoreTarget) -> [(String, LogValue)] {
        [("conversation_id", .string(target.conversationId))]
    }

    /// Restores the conversation into (userId, sessionId) after its version `version` was
    /// written; answers what the webhook reports.
    public func restore(_ target: RestoreTarget, version: Int64) -> RestoreOutcome {
        let now = clockMs()
        let claim: RestoreClaim?
        do {
            claim = try queue.enqueue(
                target, sessionVersion: version, nowMs: now, ttlMs: ttlMs, leaseMs: Int64(inlineTimeoutMs) + 2000,
                owner: Self.newOwner())
        } catch {
            // Without the queue there is no lease and no retry: one inline attempt only.
            logger.error("outbox write failed; restore attempted inline only", Self.fields(target) + [("error", .string(error.description))])
            if case .delivered = deliver(target, deadlineMs: inlineTimeoutMs, maxAttempts: Int.max) {
                counters.withLock { $0.sent += 1 }
                return .sent
            }
            return .skipped
        }
        guard let claim else {
            // Another sender holds this session's entry; it (or the next pass) sends the latest.
            counters.withLock { $0.queued += 1 }
            logger.info("restore queued behind a send in progress", Self.fields(target))
            return .queued
        }
        let result = deliver(target, deadlineMs: inlineTimeoutMs, maxAttempts: Int.max)
        settle(claim, result, attempt: 0)
        switch result {
        case .delivered:
            counters.withLock { $0.sent += 1 }
            return .sent
        case .gone, .rejected:
            return .skipped
        case .retryLater, .unauthorized, .storeUnavailable:
            counters.withLock { $0.queued += 1 }
            return .queued
        }
    }

    /// Starts the background deliverer.
    public func start() {
        workerDone.withLock { $0 = false }
        spawnThread(name: "restore-outbox") { [self] in
            defer { workerDone.withLock { $0 = true } }
            while !stopping.withLock({ $0 }) {
                // Sleep whenever a pass delivered nothing: entries it could not deliver were
                // rescheduled (or dropped), never left due for a tight loop.
                if deliverDue() == 0 { sleepMs(Double(pollIntervalMs)) }
            }
        }
    }

    /// Stops the worker (waits up to `timeoutMs` for an attempt in progress).
    public func stop(timeoutMs: Int = 2000) {
        stopping.withLock { $0 = true }
        var waited = 0
        while !workerDone.withLock({ $0 }) && waited < timeoutMs {
            usleep(10_000)
            waited += 10
        }
    }

    /// One pass over due restores (at most `limit`); returns how many were delivered.
    @discardableResult
    public func deliverDue(limit: Int = 16) -> Int {
        var delivered = 0
        for _ in 0..<limit {
            if stopping.withLock({ $0 }) { break }
            let now = clockMs()
            let claim: RestoreClaim?
            do {
                claim = try queue.claimNext(nowMs: now, leaseMs: Int64(backgroundDeadlineMs) + 5000, owner: Self.newOwner())
            } catch {
                logger.warn("outbox unavailable", [("error", .string(error.description))])
                break
            }
            guard let claim else { break }
            if claim.expiresAtMs <= now {
                try? queue.complete(claim, nowMs: now)
                counters.withLock { $0.dropped += 1 }
                logger.warn("queued restore expired undelivered; dropped", Self.fields(claim.target) + [("attempts", .int(Int64(claim.attempts)))])
                continue
            }
            let result = deliver(claim.target, deadlineMs: backgroundDeadlineMs, maxAttempts: 1)
            settle(claim, result, attempt: claim.attempts)
            if case .delivered = result {
                delivered += 1
                counters.withLock { $0.deliveredLater += 1 }
            }
        }
        return delivered
    }

    /// How one send ended.
    enum Delivery {
        case delivered(version: Int64)
        /// Nothing to send: the conversation was erased, expired or is unreadable.
        case gone
        case rejected(status: Int, detail: String, traceId: String)
        case unauthorized(status: Int, detail: String)
        case retryLater(reason: String, retryAfterMs: Double?)
        case storeUnavailable(String)
    }

    /// Reads the latest version and sends it.
    private func deliver(_ target: RestoreTarget, deadlineMs: Int, maxAttempts: Int) -> Delivery {
        let latest: StoredVersion?
        do { latest = try store.latest(target.conversationId) } catch { return .storeUnavailable(error.description) }
        guard let latest, !latest.isExpired(nowSeconds: clockMs() / 1000), case .success(let snapshot) = latest.snapshot else {
            return .gone
        }
        let from = target.restoredFrom.isEmpty ? snapshot.previousChannel : target.restoredFrom
        var context = JSONWriter(capacity: 256)
        SessionMerge.writeContext(snapshot, restoredFrom: from.isEmpty ? nil : from, to: &context)
        let body = CognigyClient.body(userId: target.userId, contextJSON: context.bytes, contextKey: contextKey)
        switch client.inject(sessionId: target.sessionId, body: body, deadlineMs: deadlineMs, maxAttempts: maxAttempts) {
        case .delivered: return .delivered(version: snapshot.sessionVersion)
        case .rejected(let status, let detail, let traceId): return .rejected(status: status, detail: detail, traceId: traceId)
        case .unauthorized(let status, let detail): return .unauthorized(status: status, detail: detail)
        case .retryLater(let reason, let hint): return .retryLater(reason: reason, retryAfterMs: hint)
        }
    }

    /// Records the result in the queue, the counters and the log.
    private func settle(_ claim: RestoreClaim, _ result: Delivery, attempt: Int) {
        let fields = Self.fields(claim.target) + [("attempts", .int(Int64(claim.attempts + 1)))]
        let now = clockMs()
        let backoffMs = retryBackoff.delayMs(attempt: attempt, unit: Double.random(in: 0.5..<1))
        func retry(afterMs: Double) {
            // Clamped: whatever an upstream said, the next try is 0.1 s to 300 s away.
            let wait = Int64(saturating: min(max(afterMs, 100), RetryAfter.maxDelayMs))
            do { try queue.retry(claim, nextAttemptMs: now + wait) } catch {
                logger.warn("outbox reschedule failed", fields + [("error", .string(error.description))])
            }
        }
        switch result {
        case .delivered(let version):
            try? queue.complete(claim, nowMs: now)
            logger.info("context restored", fields + [("version", .int(version))])
        case .gone:
            try? queue.complete(claim, nowMs: now)
            logger.info("restore dropped: the conversation is erased or expired", fields)
        case .rejected(let status, let detail, let traceId):
            try? queue.complete(claim, nowMs: now)
            counters.withLock { $0.failed += 1 }
            logger.warn(
                "cognigy refused the restore; dropped",
                fields + [("status", .int(Int64(status))), ("detail", .string(detail)), ("trace_id", .string(traceId))])
        case .unauthorized(let status, let detail):
            retry(afterMs: backoffMs)
            counters.withLock { $0.unauthorized += 1 }
            logger.error(
                "cognigy refused our credentials; restore kept queued (check COGNIGY_API_KEY or the OAuth2 client)",
                fields + [("status", .int(Int64(status))), ("detail", .string(detail))])
        case .retryLater(let reason, let hint):
            retry(afterMs: hint ?? backoffMs)
            logger.info("restore not delivered yet; queued", fields + [("reason", .string(reason))])
        case .storeUnavailable(let why):
            retry(afterMs: backoffMs)
            logger.warn("restore postponed: the session store does not answer", fields + [("error", .string(why))])
        }
    }
}
