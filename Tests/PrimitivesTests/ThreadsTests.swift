import Dispatch
import Foundation
import XCTest

@testable import Primitives

final class ThreadsTests: XCTestCase {
    /// Named threads are what `top -H`, `ps -L` and `perf` show an operator; Linux keeps
    /// 15 bytes of a name.
    func testSpawnThread_namesTheThread() {
        let names = Locked<[String]>([])
        let done = DispatchSemaphore(value: 0)
        for name in ["sqlite-commit", "a-name-longer-than-fifteen-bytes"] {
            XCTAssertTrue(spawnThread(name: name) {
                // What ps and top read.
                let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
                names.withLock { $0.append(comm.trimmingCharacters(in: .newlines)) }
                done.signal()
            })
            XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        }
        XCTAssertEqual(names.withLock { $0 }, ["sqlite-commit", "a-name-longer-t"])
    }
}
