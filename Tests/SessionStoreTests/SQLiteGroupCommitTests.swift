import Dispatch
import Foundation
import Primitives
import TestSupport
import XCTest
@testable import SessionStore

/// The group commit's hand-offs, with a commit function that records its batches instead
/// of SQLite (the store's own tests cover the SQL).
final class SQLiteGroupCommitTests: XCTestCase {
    /// Records each batch; can hold a commit open until released, and fail chosen writes.
    final class Recorder: @unchecked Sendable {
        let batches = Locked<[[Int]]>([])
        let gate = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        let holdFirst: Bool

        init(holdFirst: Bool) { self.holdFirst = holdFirst }

        func commit(_ batch: [Int]) -> [Result<Void, StoreError>] {
            let first = batches.withLock { b -> Bool in
                b.append(batch)
                return b.count == 1
            }
            if first && holdFirst {
                entered.signal()
                gate.wait()
            }
            return batch.map { $0 < 0 ? .failure(.versionConflict(conversationId: "c", version: Int64($0))) : .success(()) }
        }
    }

    func testALoneWriteCommitsOnTheCallersThread() throws {
        let recorder = Recorder(holdFirst: false)
        let committer = SQLiteGroupCommit<Int> { recorder.commit($0) }
        let caller = pthread_self()
        let committedOn = Locked<pthread_t?>(nil)
        let onCaller = SQLiteGroupCommit<Int> { batch in
            committedOn.withLock { $0 = pthread_self() }
            return batch.map { _ in .success(()) }
        }
        try committer.submit(1)
        try committer.submit(2)
        try onCaller.submit(3)
        XCTAssertEqual(recorder.batches.withLock { $0 }, [[1], [2]])
        XCTAssertEqual(committer.stats.batches, 2)
        let thread = try XCTUnwrap(committedOn.withLock { $0 })
        XCTAssertNotEqual(pthread_equal(thread, caller), 0, "committed on the caller's own thread, no hand-off")
        committer.stop()
        onCaller.stop()
    }

    /// Writes that arrive while a batch commits wait and then commit together, on the
    /// writer thread; each caller gets its own result.
    func testWritesQueuedDuringACommit_commitAsOneBatchWithTheirOwnResults() throws {
        let recorder = Recorder(holdFirst: true)
        let committer = SQLiteGroupCommit<Int> { recorder.commit($0) }
        let results = Locked<[Int: Bool]>([:])
        let done = DispatchGroup()
        done.enter()
        spawnThread(name: "test") {
            defer { done.leave() }
            let ok = (try? committer.submit(0)) != nil
            results.withLock { $0[0] = ok }
        }
        recorder.entered.wait()  // the first write is committing and held open
        let writes = [1, -2, 3, -4, 5]
        for write in writes {
            done.enter()
            spawnThread(name: "test") {
                defer { done.leave() }
                let ok = (try? committer.submit(write)) != nil
                results.withLock { $0[write] = ok }
            }
        }
        // All five are queued behind the held commit (the queue is the only way to see it).
        let deadline = Date().addingTimeInterval(10)
        while committer.queuedCount < writes.count && Date() < deadline { usleep(1_000) }
        XCTAssertEqual(committer.queuedCount, writes.count)
        recorder.gate.signal()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)

        let batches = recorder.batches.withLock { $0 }
        XCTAssertEqual(batches.count, 2, "\(batches)")
        XCTAssertEqual(batches.first, [0])
        XCTAssertEqual(batches.last.map { Set($0) }, Set(writes))
        XCTAssertEqual(results.withLock { $0 }, [0: true, 1: true, -2: false, 3: true, -4: false, 5: true])
        XCTAssertEqual(committer.stats.writes, 6)
        committer.stop()
    }

    /// Without a writer thread (the system refused one) the caller that commits also
    /// commits what queued meanwhile; nobody is left waiting.
    func testWithoutAWriterThread_theCommittingCallerDrainsTheQueue() throws {
        let recorder = Recorder(holdFirst: true)
        let committer = SQLiteGroupCommit<Int>(writerThread: false) { recorder.commit($0) }
        let done = DispatchGroup()
        for write in 0..<4 {
            if write == 1 { recorder.entered.wait() }
            done.enter()
            spawnThread(name: "test") {
                defer { done.leave() }
                XCTAssertTrue((try? committer.submit(write)) != nil)
            }
        }
        let deadline = Date().addingTimeInterval(10)
        while committer.queuedCount < 3 && Date() < deadline { usleep(1_000) }
        recorder.gate.signal()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(recorder.batches.withLock { $0 }.map { Set($0) }, [[0], [1, 2, 3]])
        committer.stop()
        committer.stop()
    }

    /// `stop` while a caller commits waits for that commit and the writer thread, then
    /// returns; a second `stop` returns at once.
    func testStopDuringACommit_returnsAfterIt() throws {
        let recorder = Recorder(holdFirst: true)
        let committer = SQLiteGroupCommit<Int> { recorder.commit($0) }
        let done = DispatchGroup()
        done.enter()
        spawnThread(name: "test") {
            defer { done.leave() }
            XCTAssertTrue((try? committer.submit(1)) != nil)
        }
        recorder.entered.wait()
        let stopped = DispatchSemaphore(value: 0)
        spawnThread(name: "test") {
            committer.stop()
            stopped.signal()
        }
        XCTAssertEqual(stopped.wait(timeout: .now() + 0.2), .timedOut, "stop waits for the commit under way")
        recorder.gate.signal()
        XCTAssertEqual(stopped.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        committer.stop()
        XCTAssertThrowsError(try committer.submit(2))
    }

    func testStop_endsTheThreadAndRefusesLaterWrites() throws {
        let recorder = Recorder(holdFirst: false)
        let committer = SQLiteGroupCommit<Int> { recorder.commit($0) }
        try committer.submit(1)
        committer.stop()
        XCTAssertThrowsError(try committer.submit(2)) { error in
            guard case StoreError.unavailable = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(recorder.batches.withLock { $0 }, [[1]])
    }

    /// `submitLater` returns at once; the writer thread commits the write and calls back
    /// on itself, with the write's own result.
    func testSubmitLater_calledBackOnTheWriterThreadWithItsResult() throws {
        let recorder = Recorder(holdFirst: true)
        let committer = SQLiteGroupCommit<Int> { recorder.commit($0) }
        let calls = Locked<[(write: Int, ok: Bool, thread: pthread_t)]>([])
        let called = DispatchGroup()
        for write in [7, -8] {
            called.enter()
            XCTAssertTrue(
                committer.submitLater(write) { result in
                    let ok = (try? result.get()) != nil
                    calls.withLock { $0.append((write, ok, pthread_self())) }
                    called.leave()
                })
            // Returned although the first commit is held open: nobody waits for it.
            if write == 7 { recorder.entered.wait() }
        }
        XCTAssertEqual(calls.withLock { $0.count }, 0, "nothing called back before its commit")
        recorder.gate.signal()
        XCTAssertEqual(called.wait(timeout: .now() + 10), .success)
        let seen = calls.withLock { $0 }
        XCTAssertEqual(seen.map(\.write), [7, -8])
        XCTAssertEqual(seen.map(\.ok), [true, false])
        XCTAssertEqual(pthread_equal(seen[0].thread, seen[1].thread), 1 as Int32, "both on the one writer thread")
        XCTAssertEqual(pthread_equal(seen[0].thread, pthread_self()), 0 as Int32)
        XCTAssertEqual(recorder.batches.withLock { $0 }, [[7], [-8]])
        committer.stop()
    }

    /// Writes queued by `submitLater` and by waiting callers share batches.
    func testSubmitLaterAndSubmit_shareABatch() throws {
        let recorder = Recorder(holdFirst: true)
        let committer = SQLiteGroupCommit<Int>(writerThread: true) { recorder.commit($0) }
        let waited = DispatchGroup()
        waited.enter()
        spawnThread(name: "test") {
            defer { waited.leave() }
            XCTAssertTrue((try? committer.submit(1)) != nil)
        }
        recorder.entered.wait()
        let called = DispatchGroup()
        for write in [2, 3] {
            called.enter()
            XCTAssertTrue(committer.submitLater(write) { result in
                XCTAssertTrue((try? result.get()) != nil)
                called.leave()
            })
        }
        waited.enter()
        spawnThread(name: "test") {
            defer { waited.leave() }
            XCTAssertTrue((try? committer.submit(4)) != nil)
        }
        let deadline = Date().addingTimeInterval(10)
        while committer.queuedCount < 3 && Date() < deadline { usleep(1_000) }
        recorder.gate.signal()
        XCTAssertEqual(called.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(waited.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(recorder.batches.withLock { $0 }.map { Set($0) }, [[1], [2, 3, 4]])
        committer.stop()
    }

    /// Without a writer thread, or once stopped, `submitLater` queues nothing and says so
    /// (the caller then writes the blocking way); writes it queued before `stop` are
    /// committed and called back before `stop` returns.
    func testSubmitLater_refusedWithoutAThreadOrOnceStopped_drainedByStop() throws {
        let noThread = SQLiteGroupCommit<Int>(writerThread: false) { $0.map { _ in .success(()) } }
        XCTAssertFalse(noThread.submitLater(1) { _ in XCTFail("never called") })
        noThread.stop()

        let recorder = Recorder(holdFirst: true)
        let committer = SQLiteGroupCommit<Int> { recorder.commit($0) }
        let results = Locked<[Int]>([])
        for write in [1, 2] {
            XCTAssertTrue(committer.submitLater(write) { result in
                if (try? result.get()) != nil { results.withLock { $0.append(write) } }
            })
            if write == 1 { recorder.entered.wait() }
        }
        let stopped = DispatchSemaphore(value: 0)
        spawnThread(name: "test") {
            committer.stop()
            stopped.signal()
        }
        XCTAssertEqual(stopped.wait(timeout: .now() + 0.2), .timedOut, "stop waits for the queued writes")
        recorder.gate.signal()
        XCTAssertEqual(stopped.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(results.withLock { $0 }, [1, 2])
        XCTAssertFalse(committer.submitLater(3) { _ in XCTFail("never called") })
    }

    /// A callback that stops the group commit (the store's last reference released on the
    /// writer thread) does not wait for its own thread: it returns, and the thread ends.
    func testStopFromACallback_returns() throws {
        let committer = SQLiteGroupCommit<Int> { $0.map { _ in .success(()) } }
        let returned = DispatchSemaphore(value: 0)
        XCTAssertTrue(committer.submitLater(1) { _ in
            committer.stop()
            returned.signal()
        })
        XCTAssertEqual(returned.wait(timeout: .now() + 10), .success, "stop on the writer thread returned")
        XCTAssertFalse(committer.submitLater(2) { _ in })
        committer.stop()
    }

    /// `stop` racing `submitLater`: every write it accepted is committed and called back,
    /// whichever comes first (the writer must not end while a turn is taken).
    func testStopRacingSubmitLater_noAcceptedWriteLeftBehind() throws {
        for _ in 0..<300 {
            let committer = SQLiteGroupCommit<Int> { $0.map { _ in .success(()) } }
            // The writer thread is finishing a batch while the two race.
            XCTAssertTrue(committer.submitLater(0) { _ in })
            let called = DispatchSemaphore(value: 0)
            let go = DispatchSemaphore(value: 0)
            let accepted = Locked<Bool?>(nil)
            spawnThread(name: "test") {
                go.wait()
                accepted.withLock { $0 = committer.submitLater(1) { _ in called.signal() } }
            }
            go.signal()
            committer.stop()
            XCTAssertTrue(eventually(5) { accepted.withLock { $0 } != nil })
            if accepted.withLock({ $0 }) == true {
                XCTAssertEqual(called.wait(timeout: .now() + 5), .success, "an accepted write was called back")
            }
        }
    }

    /// The store's writes under 16 concurrent callers: batched, nothing lost.
    func testSQLiteStore_concurrentInsertsShareCommits() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gc-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore(configuration: .init(path: directory.appendingPathComponent("s.sqlite").path))
        let done = DispatchGroup()
        let failures = Locked(0)
        for worker in 0..<16 {
            done.enter()
            spawnThread(name: "test") {
                defer { done.leave() }
                for version in Int64(1)...25 {
                    let s = SessionStoreContractTests.snapshot("w\(worker)", version)
                    do {
                        let basis = try store.latest("w\(worker)")?.basis
                        _ = try store.insert(s, after: basis)
                    } catch {
                        failures.withLock { $0 += 1 }
                    }
                }
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(failures.withLock { $0 }, 0)
        for worker in 0..<16 {
            XCTAssertEqual(try store.versions("w\(worker)", limit: 100, before: nil).map(\.version), Array((1...25).reversed()))
        }
        XCTAssertEqual(store.commitBatches.writes, 400)
    }
}
