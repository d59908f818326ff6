/// A bounded least-recently-used map, safe to share between threads: entries are spread
/// over shards by key hash, each shard an LRU list of its own under its own lock, so
/// concurrent requests for different keys rarely wait for each other. Capacity 0 disables
/// it (every lookup misses, nothing is kept).
public final class LRUCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let shards: [Locked<Shard>]
    public let capacity: Int

    public init(capacity: Int, shards count: Int = 16) {
        self.capacity = max(0, capacity)
        let n = max(1, min(count, max(1, capacity)))
        // The shards' capacities add up to exactly `capacity`.
        shards = (0..<n).map { i in Locked(Shard(capacity: capacity / n + (i < capacity % n ? 1 : 0))) }
    }

    private func shard(_ key: Key) -> Locked<Shard> {
        var hasher = Hasher()
        hasher.combine(key)
        let h = UInt(bitPattern: hasher.finalize())
        return shards[Int(h % UInt(shards.count))]
    }

    /// The value, marked most recently used; nil when absent.
    public func get(_ key: Key) -> Value? {
        guard capacity > 0 else { return nil }
        return shard(key).withLock { $0.get(key) }
    }

    /// Stores the value as most recently used, evicting the least recently used entry of
    /// its shard when full.
    public func set(_ key: Key, _ value: Value) {
        guard capacity > 0 else { return }
        shard(key).withLock { $0.set(key, value) }
    }

    /// Stores `value` only if `shouldReplace(current)` says so (current is nil when absent):
    /// e.g. keep the newest of two versions written by racing threads.
    public func set(_ key: Key, _ value: Value, if shouldReplace: (Value?) -> Bool) {
        guard capacity > 0 else { return }
        shard(key).withLock { shard in
            if shouldReplace(shard.peek(key)) { shard.set(key, value) }
        }
    }

    public func remove(_ key: Key) {
        guard capacity > 0 else { return }
        shard(key).withLock { $0.remove(key) }
    }

    /// Forgets everything (for rare events that invalidate entries one cannot enumerate).
    public func removeAll() {
        for shard in shards { shard.withLock { $0 = Shard(capacity: $0.capacity) } }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.withLock { $0.count } } }

    /// One shard: a dictionary into a doubly linked list kept in arrays (no per-entry
    /// allocation after warm-up; freed slots are reused).
    struct Shard {
        struct Node {
            var key: Key?
            var value: Value?
            var prev = -1
            var next = -1
        }

        let capacity: Int
        var index: [Key: Int] = [:]
        var nodes: [Node] = []
        var free: [Int] = []
        var head = -1  // most recently used
        var tail = -1  // least recently used

        init(capacity: Int) {
            self.capacity = capacity
            index.reserveCapacity(min(capacity, 4096))
        }

        var count: Int { index.count }

        func peek(_ key: Key) -> Value? { index[key].flatMap { nodes[$0].value } }

        mutating func get(_ key: Key) -> Value? {
            guard let i = index[key] else { return nil }
            moveToFront(i)
            return nodes[i].value
        }

        mutating func set(_ key: Key, _ value: Value) {
            guard capacity > 0 else { return }
            if let i = index[key] {
                nodes[i].value = value
                moveToFront(i)
                return
            }
            if index.count >= capacity, tail >= 0, let old = nodes[tail].key { remove(old) }
            let i: Int
            if let reused = free.popLast() {
                i = reused
                nodes[i] = Node(key: key, value: value)
            } else {
                i = nodes.count
                nodes.append(Node(key: key, value: value))
            }
            index[key] = i
            linkFront(i)
        }

        mutating func remove(_ key: Key) {
            guard let i = index.removeValue(forKey: key) else { return }
            unlink(i)
            nodes[i] = Node()
            free.append(i)
        }

        private mutating func moveToFront(_ i: Int) {
            guard head != i else { return }
            unlink(i)
            linkFront(i)
        }

        private mutating func linkFront(_ i: Int) {
            nodes[i].prev = -1
            nodes[i].next = head
            if head >= 0 { nodes[head].prev = i }
            head = i
            if tail < 0 { tail = i }
        }

        private mutating func unlink(_ i: Int) {
            let p = nodes[i].prev, n = nodes[i].next
            if p >= 0 { nodes[p].next = n } else { head = n }
            if n >= 0 { nodes[n].prev = p } else { tail = p }
            nodes[i].prev = -1
            nodes[i].next = -1
        }
    }
}
