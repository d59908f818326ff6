import Crypto

/// Pure rules of SPEC "Identity links": which links an event has, how their values are
/// normalised, and how a link's key is derived. No I/O.

/// Why an identity of an event is refused (→ 400).
public enum IdentityError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidKind(String)
    case invalidPhone(kind: String)
    case invalidEmail(kind: String)
    case controlCharacter(kind: String)
    case tooLong(kind: String, limit: Int)

    public var description: String {
        switch self {
        case .invalidKind(let k):
            return "Identity kind '\(k.prefix(40))' is invalid; kinds match [a-z][a-z0-9_]{0,31}."
        case .invalidPhone(let k):
            return "Identity '\(k)' is not a phone number: 6 to 15 digits after dropping spaces, '-', '.', '(', ')' and a leading '+' or '00'."
        case .invalidEmail(let k):
            return "Identity '\(k)' is not an e-mail address: it needs exactly one '@' with text on both sides."
        case .controlCharacter(let k):
            return "Identity '\(k)' contains a control character."
        case .tooLong(let k, let limit):
            return "Identity '\(k)' is longer than \(limit) characters."
        }
    }
}

/// One link of an event: a normalised identity, or the channel user.
public enum LinkSubject: Equatable, Hashable, Sendable {
    case identity(kind: String, value: String)
    case user(channel: String, userId: String)

    /// How the webhook answer names it (`linkedBy`, `linkConflicts`).
    public var label: String {
        switch self {
        case .identity(let kind, _): return "identity:\(kind)"
        case .user: return "user"
        }
    }

    /// The bytes hashed into the link key. The two shapes start with different tags and
    /// separate their parts with a newline, which no part may contain (control characters
    /// are refused), so two different subjects never hash the same input.
    var hashInput: [UInt8] {
        switch self {
        case .identity(let kind, let value): return Array("identity\n\(kind)\n\(value)".utf8)
        case .user(let channel, let userId): return Array("user\n\(channel)\n\(userId)".utf8)
        }
    }
}

public enum IdentityRules {
    /// SPEC: `kind` matches `[a-z][a-z0-9_]{0,31}`.
    public static func isValidKind(_ kind: String) -> Bool {
        let b = Array(kind.utf8)
        guard (1...32).contains(b.count), (0x61...0x7A).contains(b[0]) else { return false }
        return b.dropFirst().allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    /// The normalised value, nil when it is empty (Cognigy sends empty profile fields).
    public static func normalize(kind: String, value: String, maxLength: Int = 512) throws(IdentityError) -> String? {
        guard isValidKind(kind) else { throw .invalidKind(kind) }
        guard !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { throw .controlCharacter(kind: kind) }
        let trimmed = trim(value)
        if trimmed.isEmpty { return nil }
        guard trimmed.unicodeScalars.count <= maxLength else { throw .tooLong(kind: kind, limit: maxLength) }
        switch kind {
        case "phone": return try phone(trimmed, kind: kind)
        case "email": return try email(trimmed, kind: kind)
        default: return trimmed
        }
    }

    /// Digits only, after dropping spaces, `-`, `.`, `(`, `)` and a leading `+` or `00`;
    /// then 6–15 digits (E.164's longest number is 15).
    static func phone(_ value: String, kind: String) throws(IdentityError) -> String {
        var digits: [UInt8] = []
        var sawPlus = false
        for c in value.utf8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits.append(c)
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"): continue
            case UInt8(ascii: "+") where digits.isEmpty && !sawPlus: sawPlus = true
            default: throw .invalidPhone(kind: kind)
            }
        }
        if !sawPlus, digits.starts(with: [0x30, 0x30]) { digits.removeFirst(2) }
        guard (6...15).contains(digits.count) else { throw .invalidPhone(kind: kind) }
        return String(decoding: digits, as: UTF8.self)
    }

    /// Trimmed (already) and lower-cased, exactly one `@` with something on both sides.
    static func email(_ value: String, kind: String) throws(IdentityError) -> String {
        let lowered = value.lowercased()
        // By scalars: as Characters, an "@" followed by a combining mark is not an "@".
        let parts = lowered.unicodeScalars.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
            !lowered.unicodeScalars.contains(where: { $0.properties.isWhitespace })
        else { throw .invalidEmail(kind: kind) }
        return lowered
    }

    static func trim(_ s: String) -> String {
        var scalars = Substring(s).unicodeScalars[...]
        while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() }
        while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }

    /// The event's links in resolution order (SPEC): its identities in bytewise key order,
    /// then the channel user when it has a `userId`. Empty identity values are skipped.
    public static func subjects(
        identities: [String: String], channel: String, userId: String, maxLength: Int = 512
    ) throws(IdentityError) -> [LinkSubject] {
        var out: [LinkSubject] = []
        // Swift's String `<` compares by Unicode scalars, which for valid kinds (ASCII)
        // is bytewise; an invalid kind is refused below anyway.
        for kind in identities.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            if let value = try normalize(kind: kind, value: identities[kind]!, maxLength: maxLength) {
                out.append(.identity(kind: kind, value: value))
            }
        }
        if !userId.isEmpty { out.append(.user(channel: channel, userId: userId)) }
        return out
    }
}

/// Derives the stored key of a link: HMAC-SHA256 under `IDENTITY_HASH_KEY`, or plain
/// SHA-256 without one (SPEC), as 64 lowercase hex digits. Links never hold the value.
public struct LinkHasher: Sendable {
    private let key: [UInt8]?

    public init(key: [UInt8]?) {
        self.key = key.flatMap { $0.isEmpty ? nil : $0 }
    }

    public var isKeyed: Bool { key != nil }

    public func linkKey(_ subject: LinkSubject) -> String {
        let digest = key.map { HMACSHA256.mac(key: $0, message: subject.hashInput) } ?? SHA256.hash(subject.hashInput)
        return Hex.lower(digest)
    }
}

/// SPEC: a new conversation is `c-<32 lowercase hex>` from 128 random bits.
public enum ConversationIds {
    public static func generate() throws(CryptoError) -> String {
        "c-" + Hex.lower(try randomBytes(16))
    }
}
