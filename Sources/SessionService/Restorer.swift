#if canImport(Glibc)
import Glibc
#endif
import Backoff
import Cognigy
import DialogWire
import Primitives
import SessionStore

/// Pushes a conversation's context into a new Cognigy session (SPEC "Channel switch").
/// The restore is stored in the outbox *before* the inline attempt, scheduled after the
/// attempt's deadline so the background worker cannot race it. Delivered inline, it is
/// removed ("sent"); otherwise it stays queued ("queued") and the worker retries it with
/// backoff until delivered or older than the snapshot TTL ("dropped").
public final class Restorer: Sendable {
    public struct Counters: Sendable, Equatable {
        public var sent = 0, queued = 0, failed = 0, dropped = 0, deliveredLater = 0
    }

    public let client: CognigyClient
    public let outbox: RestoreOutbox
    let contextKey: String?
    let inlineTimeoutMs: Int
    let ttlSeconds: Int64
    let logger: Logger
    /// Background retries: attempt n waits up to min(cap, base·2^n) unless Cognigy said when.
    let retryBackoff = Backoff(baseMs: 1000, capMs: 60_000)
    /// Background attempt deadline. Each background pass sends once: the wait before the
    /// next try goes through the outbox, so a DELETE in between is seen before re-sending
    /// (the system suite caught a restore delivered for a session deleted mid-retry).
    let backgroundDeadlineMs = 5_000
    /// Worker poll interval.
    let pollIntervalMs: Int
    private let counters = Locked(Counters())
    private let stopping = Locked(false)
    private let workerDone = Locked(true)

    public init(
        client: CognigyClient, outbox: RestoreOutbox, contextKey: String?, inlineTimeoutMs: Int, ttlSeconds: Int64,
        logger: Logger, pollIntervalMs: Int = 200
    ) {
        self.client = client
        self.outbox = outbox
        self.contextKey = contextKey
        self.inlineTimeoutMs = inlineTimeoutMs
        self.ttlSeconds = ttlSeconds
        self.logger = logger
        self.pollIntervalMs = pollIntervalMs
    }

    public var counts: Counters { counters.withLock { $0 } }

    /// Restores `snapshot` into (userId, sessionId); answers what the webhook reports.
    public func restore(_ snapshot: SessionSnapshot, restoredFrom: String?, userId: String, sessionId: String) -> RestoreOutcome {
        var context = JSONWriter(capacity: 256)
        SessionMerge.writeContext(snapshot, restoredFrom: restoredFrom, to: &context)
        let body = CognigyClient.body(userId: userId, contextJSON: context.bytes, contextKey: contextKey)
        let now = DialogService.wallClockMs()
        let fields: [(String, LogValue)] = [
            ("conversation_id", .string(snapshot.conversationId)), ("session_id", .string(sessionId)),
            ("version", .int(snapshot.sessionVersion)),
        ]
        var revision: Int64?
        do {
            revision = try outbox.upsert(
                conversationId: snapshot.conversationId, sessionId: sessionId, userId: userId, body: body, nowMs: now,
                expiresAt: now / 1000 + ttlSeconds, nextAttemptMs: now + Int64(inlineTimeoutMs) + 2000)
        } catch {
            logger.error("outbox write failed; restore attempted inline only", fields + [("error", .string(error.description))])
        }
        let outcome = client.inject(sessionId: sessionId, body: body, deadlineMs: inlineTimeoutMs)
        switch outcome {
        case .delivered(let attempts):
            if let revision { _ = try? outbox.remove(conversationId: snapshot.conversationId, sessionId: sessionId, revision: revision) }
            counters.withLock { $0.sent += 1 }
            logger.info("context restored", fields + [("attempts", .int(Int64(attempts)))])
            return .sent
        case .rejected(let status, let detail, let traceId):
            if let revision { _ = try? outbox.remove(conversationId: snapshot.conversationId, sessionId: sessionId, revision: revision) }
            counters.withLock { $0.failed += 1 }
            logger.warn(
                "cognigy refused the restore",
                fields + [("status", .int(Int64(status))), ("detail", .string(detail)), ("trace_id", .string(traceId))])
            return .skipped
        case .retryLater(let reason, let hintMs):
            guard let revision else { return .skipped }
            let next = DialogService.wallClockMs() + Int64(max(hintMs ?? 0, 500))
            _ = try? outbox.reschedule(conversationId: snapshot.conversationId, sessionId: sessionId, revision: revision, nextAttemptMs: next)
            counters.withLock { $0.queued += 1 }
            logger.info("restore queued", fields + [("reason", .string(reason))])
            return .queued
        }
    }

    /// Starts the background deliverer.
    public func start() {
        workerDone.withLock { $0 = false }
        spawnThread { [self] in
            defer { workerDone.withLock { $0 = true } }
            while !stopping.withLock({ $0 }) {
                let delivered = (try? deliverDue()) ?? 0
                if delivered == 0 { usleep(UInt32(pollIntervalMs * 1000)) }
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

    /// One pass over due restores; returns how many were handled.
    @discardableResult
    public func deliverDue(limit: Int = 16) throws(StoreError) -> Int {
        let now = DialogService.wallClockMs()
        let due = try outbox.due(nowMs: now, limit: limit)
        for r in due {
            if stopping.withLock({ $0 }) { break }
            let fields: [(String, LogValue)] = [
                ("conversation_id", .string(r.conversationId)), ("session_id", .string(r.sessionId)),
                ("attempts", .int(Int64(r.attempts))),
            ]
            if r.expiresAt <= now / 1000 {
                _ = try? outbox.remove(conversationId: r.conversationId, sessionId: r.sessionId, revision: r.revision)
                counters.withLock { $0.dropped += 1 }
                logger.warn("queued restore expired undelivered; dropped", fields)
                continue
            }
            // Deleted (DELETE /sessions/{id}) or replaced since it was read: not ours to send.
            guard (try? outbox.contains(conversationId: r.conversationId, sessionId: r.sessionId, revision: r.revision)) == true else {
                continue
            }
            switch client.inject(sessionId: r.sessionId, body: r.body, deadlineMs: backgroundDeadlineMs, maxAttempts: 1) {
            case .delivered:
                _ = try? outbox.remove(conversationId: r.conversationId, sessionId: r.sessionId, revision: r.revision)
                counters.withLock { $0.deliveredLater += 1 }
                logger.info("queued restore delivered", fields)
            case .rejected(let status, let detail, let traceId):
                _ = try? outbox.remove(conversationId: r.conversationId, sessionId: r.sessionId, revision: r.revision)
                counters.withLock { $0.failed += 1 }
                logger.warn(
                    "cognigy refused a queued restore; dropped",
                    fields + [("status", .int(Int64(status))), ("detail", .string(detail)), ("trace_id", .string(traceId))])
            case .retryLater(let reason, let hintMs):
                let wait = hintMs ?? retryBackoff.delayMs(attempt: r.attempts, unit: Double.random(in: 0.5..<1))
                _ = try? outbox.reschedule(
                    conversationId: r.conversationId, sessionId: r.sessionId, revision: r.revision,
                    nextAttemptMs: DialogService.wallClockMs() + Int64(max(wait, 100)))
                logger.debug("queued restore not delivered yet", fields + [("reason", .string(reason))])
            }
        }
        return due.count
    }
}
