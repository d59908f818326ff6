/// Why an `ENCRYPTED_SLOTS` value was rejected.
public enum SlotPatternError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing at all (unset means `*`; set-but-empty is more likely a mistake than "none").
    case empty
    /// Nothing between two commas (or before the first / after the last).
    case emptyEntry(position: Int)
    /// A '*' anywhere but at the end of an entry (`ca*rd`, `**`).
    case misplacedWildcard(String)

    public var description: String {
        switch self {
        case .empty: "ENCRYPTED_SLOTS: empty (use * for every slot)"
        case .emptyEntry(let p): "ENCRYPTED_SLOTS: entry \(p) is empty"
        case .misplacedWildcard(let e): "ENCRYPTED_SLOTS: \(String(reflecting: e)): '*' is only allowed at the end"
        }
    }
}

/// Which slot names are encrypted (`ENCRYPTED_SLOTS`): `*` for all, or a comma list of
/// exact names and prefixes written with a trailing `*` (`iban,card*`). Case-sensitive,
/// like slot names themselves.
public struct SlotPattern: Sendable, Equatable {
    private let matchesAll: Bool
    private let names: Set<String>
    private let prefixes: [String]

    /// `*`: every slot, the default when `ENCRYPTED_SLOTS` is unset.
    public static let all = SlotPattern(matchesAll: true, names: [], prefixes: [])

    private init(matchesAll: Bool, names: Set<String>, prefixes: [String]) {
        self.matchesAll = matchesAll
        self.names = names
        self.prefixes = prefixes
    }

    /// Parses `ENCRYPTED_SLOTS`; whitespace around entries is ignored.
    public init(parsing text: String) throws(SlotPatternError) {
        guard !text.allSatisfy(\.isWhitespace) else { throw .empty }
        var all = false
        var names: Set<String> = []
        var prefixes: [String] = []
        for (index, raw) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let entry = raw.trimmingWhitespace()
            guard !entry.isEmpty else { throw .emptyEntry(position: index + 1) }
            let stem = entry.hasSuffix("*") ? entry.dropLast() : entry
            guard !stem.contains("*") else { throw .misplacedWildcard(String(entry)) }
            if stem.isEmpty {
                all = true
            } else if stem.count < entry.count {
                prefixes.append(String(stem))
            } else {
                names.insert(String(stem))
            }
        }
        self.init(matchesAll: all, names: names, prefixes: prefixes)
    }

    /// Whether the slot `slotName` is stored encrypted. A prefix matches the name itself too
    /// (`card*` matches `card`).
    public func matches(_ slotName: String) -> Bool {
        // A prefix matches by characters or by bytes: `card*` must still cover "card\u{301}…",
        // whose first Character is not "d". When in doubt, encrypt.
        matchesAll || names.contains(slotName)
            || prefixes.contains { slotName.hasPrefix($0) || slotName.utf8.starts(with: $0.utf8) }
    }
}
