import DialogWire
import Identity
import Primitives
import SessionStore

/// Which conversation an event belongs to, and the links it leaves behind (SPEC "Identity
/// links"). Runs before the snapshot write: an explicit `conversationId` wins; otherwise
/// the event's links are looked up in order and the first live one wins; with none, a new
/// conversation. Then every link of the event that is missing (or dead) is written with a
/// conditional write, the first writer winning. A replica that made up a new conversation
/// and loses a link write to another replica takes back what it wrote and resolves again,
/// so racing first events of one person end in one conversation.
public final class LinkResolver: Sendable {
    public struct Limits: Sendable {
        /// A link this young counts as live even while its conversation has no version yet:
        /// the replica that wrote it is about to write that conversation's first version.
        public var pendingGraceMs: Int64 = 60_000
        /// Resolution rounds after lost link races before the event goes where it is.
        public var maxRounds = 4
        public var sessionTTLSeconds: Int64 = 604_800
        /// Links this process knows point at a conversation (it wrote, read or renewed them):
        /// an event of that conversation does not read them again for `knownLinkMaxAgeMs`.
        /// Lookups without a conversation id always read the store. 0 entries: off.
        public var knownLinkEntries = 10_000
        public var knownLinkMaxAgeMs: Int64 = 600_000
        public init() {}
    }

    /// A link seen pointing at `conversationId`, and when.
    struct KnownLink: Sendable {
        let conversationId: String
        let expiresAt: Int64
        let checkedAtMs: Int64
    }

    /// Where an event goes and how it got there.
    public struct Resolution: Sendable, Equatable {
        public let conversationId: String
        /// `conversationId`, `identity:<kind>`, `user` or `new`.
        public let linkedBy: String
        /// Links of the event that point at another live conversation, left alone.
        public let conflicts: [String]
    }

    let links: any LinkStore
    let store: any SessionStore
    let hasher: LinkHasher
    let limits: Limits
    let logger: Logger
    private let clockMs: @Sendable () -> Int64
    let known: LRUCache<String, KnownLink>
    /// The service's snapshot cache (shared): a conversation this process wrote or read
    /// recently, and that has not expired, is live without a store read. A stale entry
    /// (erased elsewhere) only sends the event to a conversation whose write then
    /// conflicts and starts afresh; its links were erased with it.
    let latestCache: LRUCache<String, StoredVersion>?

    public init(
        links: any LinkStore, store: any SessionStore, hasher: LinkHasher, limits: Limits, logger: Logger,
        latestCache: LRUCache<String, StoredVersion>? = nil,
        clockMs: @escaping @Sendable () -> Int64 = DialogService.wallClockMs
    ) {
        self.latestCache = latestCache
        self.links = links
        self.store = store
        self.hasher = hasher
        self.limits = limits
        self.logger = logger
        self.clockMs = clockMs
        self.known = LRUCache(capacity: limits.knownLinkEntries)
    }

    /// After an erasure (here, or detected from another replica) nothing remembered about
    /// links can be trusted; erasures are rare, so all of it goes.
    public func forgetKnownLinks() { known.removeAll() }

    /// The link key of each subject, in order.
    public func keys(_ subjects: [LinkSubject]) -> [(subject: LinkSubject, key: String)] {
        subjects.map { ($0, hasher.linkKey($0)) }
    }

    /// Whether every link of `subjects` is known to point at `conversationId` recently
    /// enough that `resolve(conversationId:subjects:)` would neither read nor write one:
    /// its resolution is then `conversationId`, with no conflicts. Never touches the store.
    public func knowsAll(_ subjects: [LinkSubject], pointAt conversationId: String) -> Bool {
        let now = clockMs()
        let ttl = limits.sessionTTLSeconds
        return keys(subjects).allSatisfy { isKnown($0.key, pointAt: conversationId, nowMs: now, ttlSeconds: ttl) }
    }

    /// The known-link rule of `Round.link`: seen pointing at the conversation within
    /// `knownLinkMaxAgeMs`, and alive for at least half a TTL more (else it is renewed).
    func isKnown(_ key: String, pointAt conversationId: String, nowMs now: Int64, ttlSeconds ttl: Int64) -> Bool {
        guard let k = known.get(key) else { return false }
        return k.conversationId == conversationId && now - k.checkedAtMs < limits.knownLinkMaxAgeMs
            && k.expiresAt >= now / 1000 + ttl - ttl / 2
    }

    public func resolve(conversationId explicit: String, subjects: [LinkSubject]) throws(StoreError) -> Resolution {
        let keyed = keys(subjects)
        var number = 1
        while true {
            var round = Round(resolver: self)
            let (conversationId, linkedBy) = try round.choose(explicit: explicit, keyed)
            // In the last round a lost race is kept as a conflict rather than retreated from.
            let retreat = linkedBy == "new" && number < limits.maxRounds
            switch try round.link(keyed, to: conversationId, retreatOnLoss: retreat) {
            case .done(let conflicts):
                return Resolution(conversationId: conversationId, linkedBy: linkedBy, conflicts: conflicts)
            case .lostRace:
                logger.debug("lost a link race; resolving again", [("round", .int(Int64(number)))])
                number += 1
            }
        }
    }

    /// Whether a link stands: not expired, and its conversation has a live version or the
    /// link is young enough for its writer to be about to write one.
    func isLive(_ link: StoredLink, nowMs: Int64) throws(StoreError) -> Bool {
        if link.isExpired(nowSeconds: nowMs / 1000) { return false }
        if nowMs - link.createdAt < limits.pendingGraceMs { return true }
        if let cached = latestCache?.get(link.conversationId), !cached.isExpired(nowSeconds: nowMs / 1000) { return true }
        guard let latest = try store.latest(link.conversationId) else { return false }
        return !latest.isExpired(nowSeconds: nowMs / 1000)
    }

    /// One resolution attempt: the links read, so each is read once per round.
    struct Round {
        let resolver: LinkResolver
        private var read: [String: StoredLink?] = [:]
        private var live: [String: Bool] = [:]

        init(resolver: LinkResolver) { self.resolver = resolver }

        enum Outcome {
            case done(conflicts: [String])
            /// A new conversation lost a link to another writer; its own links were taken back.
            case lostRace
        }

        mutating func stored(_ key: String) throws(StoreError) -> StoredLink? {
            if let cached = read[key] { return cached }
            let found = try resolver.links.link(key)
            read[key] = .some(found)
            return found
        }

        mutating func isLive(_ link: StoredLink, nowMs: Int64) throws(StoreError) -> Bool {
            let id = "\(link.key)\n\(link.conversationId)\n\(link.createdAt)"
            if let known = live[id] { return known }
            let answer = try resolver.isLive(link, nowMs: nowMs)
            live[id] = answer
            return answer
        }

        mutating func choose(explicit: String, _ keyed: [(subject: LinkSubject, key: String)]) throws(StoreError) -> (String, String) {
            if !explicit.isEmpty { return (explicit, "conversationId") }
            let now = resolver.clockMs()
            for (subject, key) in keyed {
                if let link = try stored(key), try isLive(link, nowMs: now) { return (link.conversationId, subject.label) }
            }
            do { return (try ConversationIds.generate(), "new") } catch {
                throw .unavailable("no random bytes for a new conversation id: \(error)")
            }
        }

        mutating func link(
            _ keyed: [(subject: LinkSubject, key: String)], to conversationId: String, retreatOnLoss: Bool
        ) throws(StoreError) -> Outcome {
            let now = resolver.clockMs()
            let ttl = resolver.limits.sessionTTLSeconds
            let expiresAt = now / 1000 + ttl
            var conflicts: [String] = []
            var created: [StoredLink] = []
            func knownToPoint(_ key: String, expiresAt linkExpiry: Int64) {
                resolver.known.set(key, KnownLink(conversationId: conversationId, expiresAt: linkExpiry, checkedAtMs: now))
            }
            for (subject, key) in keyed {
                if resolver.isKnown(key, pointAt: conversationId, nowMs: now, ttlSeconds: ttl) { continue }
                let mine = StoredLink(key: key, conversationId: conversationId, createdAt: now, expiresAt: expiresAt)
                let existing = try stored(key)
                if let existing, existing.conversationId == conversationId, !existing.isExpired(nowSeconds: now / 1000) {
                    // Ours already: keep it alive as long as the conversation (one write per half TTL).
                    if existing.expiresAt < expiresAt - ttl / 2 {
                        try resolver.links.touchLink(key, conversationId: conversationId, expiresAt: expiresAt)
                        knownToPoint(key, expiresAt: expiresAt)
                    } else {
                        knownToPoint(key, expiresAt: existing.expiresAt)
                    }
                    continue
                }
                if let existing, try isLive(existing, nowMs: now) {
                    // Another live conversation holds it. For a conversation made up this
                    // round, that is a race lost since the lookup: go where it points.
                    if retreatOnLoss { return try retreat(created) }
                    conflicts.append(subject.label)
                    continue
                }
                if try resolver.links.putLink(mine, replacing: existing) {
                    created.append(mine)
                    read[key] = .some(mine)
                    knownToPoint(key, expiresAt: expiresAt)
                    continue
                }
                // Lost: someone wrote this link since we read it. It may be our own retried
                // write, or a writer that agrees with us.
                read[key] = nil
                if let current = try stored(key), current.conversationId == conversationId {
                    knownToPoint(key, expiresAt: current.expiresAt)
                    continue
                }
                if retreatOnLoss { return try retreat(created) }
                conflicts.append(subject.label)
            }
            return .done(conflicts: conflicts)
        }

        /// Takes back the links a made-up conversation wrote this round (each only while it
        /// is still as written), so the next round finds the winner's links instead.
        private func retreat(_ created: [StoredLink]) throws(StoreError) -> Outcome {
            for link in created {
                resolver.known.remove(link.key)
                _ = try resolver.links.deleteLink(link)
            }
            return .lostRace
        }
    }
}
