#if canImport(Glibc)
import Glibc
#endif
import Primitives

/// Threads that serve connections: a job runs on an idle worker when one is parked,
/// otherwise on a new thread. A worker that finishes waits for the next job while fewer
/// than `maxIdle` others wait; beyond that it exits. So busy threads are bounded by the
/// jobs in flight (at most one per open connection, so by `maxConnections`) and idle ones
/// by `maxIdle`, and a keep-alive request handed back from the idle loop usually starts
/// without a thread being created.
///
/// `@unchecked Sendable`: every stored var is touched only with `mutex` held; the mutex and
/// condition live in heap memory of their own (pthread objects must not move).
final class WorkerPool: @unchecked Sendable {
    typealias Job = @Sendable () -> Void

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let maxIdle: Int
    private let stackBytes: Int
    private var jobs: [Job] = []
    private var idle = 0
    private var stopped = false

    init(maxIdle: Int, stackBytes: Int) {
        self.maxIdle = max(0, maxIdle)
        self.stackBytes = stackBytes
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deinitialize(count: 1)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Workers waiting for a job now (for tests and metrics).
    var idleWorkers: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return idle
    }

    /// Runs `job` on a worker; false when no worker was free and no thread could be created
    /// (the caller then cleans up what the job would have).
    func submit(_ job: @escaping Job) -> Bool {
        pthread_mutex_lock(mutex)
        // Each queued job is already promised to one waiting worker.
        if idle > jobs.count {
            jobs.append(job)
            pthread_cond_signal(condition)
            pthread_mutex_unlock(mutex)
            return true
        }
        pthread_mutex_unlock(mutex)
        return spawnThread(name: "http-worker", stackBytes: stackBytes) { [self] in work(first: job) }
    }

    /// Lets idle workers exit, and busy ones once their job ends (shutdown).
    func stop() {
        pthread_mutex_lock(mutex)
        stopped = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    private func work(first: Job) {
        var job = first
        while true {
            job()
            pthread_mutex_lock(mutex)
            while jobs.isEmpty {
                if stopped || idle >= maxIdle {
                    pthread_mutex_unlock(mutex)
                    return
                }
                idle += 1
                pthread_cond_wait(condition, mutex)
                idle -= 1
            }
            job = jobs.removeFirst()
            pthread_mutex_unlock(mutex)
        }
    }
}
