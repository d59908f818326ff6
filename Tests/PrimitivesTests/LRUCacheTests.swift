import Foundation
import XCTest
@testable import Primitives

final class LRUCacheTests: XCTestCase {
    func testEvictsTheLeastRecentlyUsed() {
        let cache = LRUCache<String, Int>(capacity: 3, shards: 1)
        cache.set("a", 1); cache.set("b", 2); cache.set("c", 3)
        XCTAssertEqual(cache.get("a"), 1)  // a is now the most recent
        cache.set("d", 4)  // evicts b
        XCTAssertNil(cache.get("b"))
        XCTAssertEqual(cache.get("a"), 1)
        XCTAssertEqual(cache.get("c"), 3)
        XCTAssertEqual(cache.get("d"), 4)
        XCTAssertEqual(cache.count, 3)
    }

    func testUpdateRemoveAndReuse() {
        let cache = LRUCache<String, Int>(capacity: 2, shards: 1)
        cache.set("a", 1); cache.set("a", 5)
        XCTAssertEqual(cache.get("a"), 5)
        XCTAssertEqual(cache.count, 1)
        cache.remove("a"); cache.remove("missing")
        XCTAssertNil(cache.get("a"))
        for i in 0..<100 { cache.set("k\(i)", i) }
        XCTAssertEqual(cache.count, 2)
        XCTAssertEqual(cache.get("k99"), 99)
        XCTAssertEqual(cache.get("k98"), 98)
    }

    func testConditionalSetKeepsTheNewest() {
        let cache = LRUCache<String, Int>(capacity: 4)
        cache.set("a", 5, if: { ($0 ?? 0) < 5 })
        cache.set("a", 3, if: { ($0 ?? 0) < 3 })
        XCTAssertEqual(cache.get("a"), 5)
    }

    func testCapacityZeroKeepsNothing_andTheLimitHoldsAcrossShards() {
        let off = LRUCache<Int, Int>(capacity: 0)
        off.set(1, 1)
        XCTAssertNil(off.get(1))
        XCTAssertEqual(off.count, 0)
        let cache = LRUCache<Int, Int>(capacity: 100)
        for i in 0..<10_000 { cache.set(i, i) }
        XCTAssertLessThanOrEqual(cache.count, 100)
        XCTAssertGreaterThan(cache.count, 50)
    }

    func testConcurrentUse() {
        let cache = LRUCache<Int, Int>(capacity: 64)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<5_000 {
                let k = (i * 7 + t) % 200
                if i % 3 == 0 { cache.remove(k) } else { cache.set(k, k) }
                if let v = cache.get(k) { XCTAssertEqual(v, k) }
            }
        }
        XCTAssertLessThanOrEqual(cache.count, 64)
    }
}
