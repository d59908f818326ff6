#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Primitives

/// Group commit: concurrent callers' writes commit together as one transaction, each
/// caller woken with its own result once its batch is durable.
///
/// A caller that finds nobody committing commits its write itself, at once (no hand-off:
/// a lone request pays no thread switch). Writes that arrive meanwhile queue, and the
/// writer thread, which does nothing else, takes them over: it commits everything queued
/// while the last batch committed, again and again, until the queue is empty. Under load
/// the one serial resource, SQLite's write lock, is then never idle between batches. When
/// a caller led every batch (then handed the lead to the next waiter), each batch first
/// waited for that waiter to be woken and scheduled among all the request threads:
/// 10.0–11.4k webhook requests/s against 11.1–12.3k with this thread, measured
/// interleaved (README, Performance).
///
/// A write may also be queued without anyone waiting for it (`submitLater`): the writer
/// thread commits it with the rest and then calls its callback, which answers the request
/// there and then. No thread sleeps for such a write and none is woken for it.
final class SQLiteGroupCommit<Write: Sendable>: @unchecked Sendable {
    /// Commits a batch in one transaction; one result per write, in order.
    typealias Commit = @Sendable ([Write]) -> [Result<Void, StoreError>]

    /// What `submitLater` calls once its write's batch has committed (or failed).
    typealias Callback = @Sendable (Result<Void, StoreError>) -> Void

    /// One caller's write while it waits. `result` is read and written under `queue`'s lock.
    private final class Waiter: @unchecked Sendable {
        let write: Write
        var result: Result<Void, StoreError>?
        /// How the one waiting is told: a `submit` caller is woken, a `submitLater` write's
        /// callback is called instead (so it needs no semaphore).
        enum Notify {
            case wake(DispatchSemaphore)
            case call(Callback)
        }
        let notify: Notify
        init(_ write: Write, callback: Callback? = nil) {
            self.write = write
            notify = callback.map { .call($0) } ?? .wake(DispatchSemaphore(value: 0))
        }

        /// Wakes the waiting caller, or calls the callback on this (the committing) thread.
        /// Called once, after `result` was set under the lock that `commitBatch` released.
        func finish() {
            switch notify {
            case .wake(let done): done.signal()
            case .call(let callback): callback(result ?? .failure(.unavailable("write abandoned")))
            }
        }

        /// For a `submit` caller: until `finish`.
        func wait() {
            if case .wake(let done) = notify { done.wait() }
        }
    }

    private struct Queue {
        var pending: [Waiter] = []
        /// A caller or the writer thread is committing; whoever finds it false commits.
        var busy = false
        var stopping = false
        /// Released when the writer thread ends, so whatever it holds (the write
        /// connection) goes with the store, not later on that thread.
        var commit: Commit?
        /// Batches committed and the writes in them (`stats`).
        var batches = 0
        var writes = 0
    }

    private let queue: Locked<Queue>
    private let wake = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    /// False when no thread could be started: then callers commit every batch themselves.
    private let hasThread: Bool
    /// The writer thread, once it runs: `stop` called on it (a callback that released the
    /// store's last reference) must not wait for it to end.
    private let writer = Locked<pthread_t?>(nil)

    /// - Parameter writerThread: false only in tests, for the path taken when the system
    ///   refuses a thread.
    init(writerThread: Bool = true, commit: @escaping Commit) {
        queue = Locked(Queue(commit: commit))
        let writer = self.writer
        let started = writerThread && spawnThread(name: "sqlite-commit", stackBytes: 256 * 1024) { [queue, wake, exited] in
            writer.withLock { $0 = pthread_self() }
            Self.run(queue, wake, exited)
        }
        hasThread = started
    }

    /// Whether `submitLater` can take writes (a writer thread runs).
    var hasWriterThread: Bool { hasThread }

    /// Batches committed so far and the writes they held (tests: batching happens).
    var stats: (batches: Int, writes: Int) { queue.withLock { ($0.batches, $0.writes) } }

    /// Writes waiting for the batch under way to finish (tests).
    var queuedCount: Int { queue.withLock { $0.pending.count } }

    /// Commits `write` (with whatever else is queued) and returns once it is durable.
    func submit(_ write: Write) throws(StoreError) {
        let waiter = Waiter(write)
        let own = queue.withLock { q -> [Waiter]?? in
            if q.stopping { return .none }
            q.pending.append(waiter)
            if q.busy { return .some(nil) }
            q.busy = true
            return .some(Self.take(&q))
        }
        guard let own else { throw .unavailable("the SQLite store is closed") }
        if var batch = own {
            // Nobody was committing: this caller commits, then hands what queued meanwhile
            // to the writer thread (or, without one, commits that too).
            while true {
                var signalWriter = false
                let next = Self.commitBatch(batch, queue) { q -> [Waiter]? in
                    if q.pending.isEmpty || hasThread {
                        // Decided under the lock that ends this caller's turn: a new caller
                        // may take the next turn the moment it is released.
                        q.busy = !q.pending.isEmpty
                        signalWriter = hasThread && (q.busy || q.stopping)
                        return nil
                    }
                    return Self.take(&q)
                }
                for other in batch where other !== waiter { other.finish() }
                guard let next else {
                    if signalWriter { wake.signal() }
                    break
                }
                batch = next
            }
        } else {
            waiter.wait()
        }
        let result = queue.withLock { _ in waiter.result }
        try (result ?? .failure(.unavailable("write abandoned"))).get()
    }

    /// Queues `write` and returns at once; `done` is called with its result once its batch
    /// has committed (or failed), on the writer thread. Returns false, with nothing queued,
    /// when there is no writer thread or the store is closed (the caller then uses
    /// `submit`). `done` must not block: every write queued behind it waits while it runs.
    func submitLater(_ write: Write, done: @escaping Callback) -> Bool {
        guard hasThread else { return false }
        let waiter = Waiter(write, callback: done)
        let signal = queue.withLock { q -> Bool? in
            if q.stopping { return nil }
            q.pending.append(waiter)
            if q.busy { return false }
            q.busy = true
            return true
        }
        guard let signal else { return false }
        // Nobody was committing: the writer thread takes the turn (this caller never blocks).
        if signal { wake.signal() }
        return true
    }

    /// Lets the writer thread end and waits for it; later writes are refused. Safe to call
    /// again. Nobody may be waiting in `submit` (the store is no longer used); writes queued
    /// by `submitLater` are committed and called back before it returns.
    func stop() {
        let signal = queue.withLock { q -> Bool? in
            if q.stopping { return nil }
            q.stopping = true
            return !q.busy && hasThread
        }
        guard let signal else { return }
        if signal { wake.signal() }
        let onWriter = writer.withLock { $0.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
        // On the writer thread (the store released from a callback) the thread ends by
        // itself once the batch it is answering is done: waiting for it would never return.
        if hasThread && !onWriter { exited.wait() }
    }

    private static func take(_ q: inout Queue) -> [Waiter] {
        let batch = q.pending
        q.pending.removeAll(keepingCapacity: true)
        return batch
    }

    /// The writer thread's next batch, or nil with the turn given up when none is queued.
    private static func takeOrRest(_ q: inout Queue) -> [Waiter]? {
        if q.pending.isEmpty {
            q.busy = false
            return nil
        }
        return take(&q)
    }

    /// Commits `batch`, records each waiter's result, and under the same lock lets `next`
    /// decide what the committer does next (nil: stop committing).
    private static func commitBatch(
        _ batch: [Waiter], _ queue: Locked<Queue>, next: (inout Queue) -> [Waiter]?
    ) -> [Waiter]? {
        let commit = queue.withLock { $0.commit }
        let results = commit?(batch.map(\.write)) ?? []
        precondition(commit == nil || results.count == batch.count, "a commit answers every write of its batch")
        return queue.withLock { q -> [Waiter]? in
            q.batches += 1
            q.writes += batch.count
            for (index, waiter) in batch.enumerated() {
                waiter.result = index < results.count ? results[index] : .failure(.unavailable("the SQLite store is closed"))
            }
            return next(&q)
        }
    }

    /// The writer thread: asleep until a committing caller hands it the queue (or `stop`
    /// wakes it), then commits until the queue is empty.
    private static func run(_ queue: Locked<Queue>, _ wake: DispatchSemaphore, _ exited: DispatchSemaphore) {
        while true {
            wake.wait()
            var batch = queue.withLock { takeOrRest(&$0) }
            while let current = batch {
                batch = commitBatch(current, queue, next: takeOrRest)
                for waiter in current { waiter.finish() }
            }
            let done = queue.withLock { q -> Bool in
                // Not while a turn is taken: a `submitLater` that queued a write after this
                // thread rested has set `busy` and signalled, so the loop goes round once more
                // (and a committing `submit` caller signals when its turn ends).
                guard q.stopping, !q.busy else { return false }
                q.commit = nil
                return true
            }
            if done { break }
        }
        exited.signal()
    }
}
