/// Decoding a `DialogEvent` from the three body formats the webhook accepts, per the proto3
/// JSON mapping (https://protobuf.dev/programming-guides/json/): lowerCamel or original
/// field names, `null` as the default value, int64 as a number or a string. Unknown fields
/// are ignored (Cognigy flows often post their whole context); a field given twice, under
/// either spelling, is an error rather than a silent choice.
///
/// A JSON body with an `input` object is read in Cognigy input mode (SPEC "POST
/// /webhook/dialog"): the object is Cognigy's Input object, as an HTTP Request node posts it
/// with `{"input": {"$cs":{"script":"input","type":"object"}}}`, and top-level fields win
/// over what it says.

public enum EventDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidJSON(JSONError)
    case notAnObject
    case duplicateField(String)
    case wrongType(field: String, expected: String)
    case invalidTimestamp(String)
    case invalidProtobuf(WireError)
    case invalidForm(String)

    public var description: String {
        switch self {
        case .invalidJSON(let e): return "Body is not valid JSON: \(e)."
        case .notAnObject: return "Body must be a JSON object."
        case .duplicateField(let f): return "Field '\(f)' is given more than once."
        case .wrongType(let f, let expected): return "Field '\(f)' must be \(expected)."
        case .invalidTimestamp(let why): return "Field 'timestamp' \(why)."
        case .invalidProtobuf(let e): return "Body is not a valid protobuf DialogEvent (\(e))."
        case .invalidForm(let why): return "Form body is invalid: \(why)."
        }
    }
}

/// The fields of `DialogEvent` by both JSON names.
private enum EventField: String {
    case conversationId, channel, intent, slots, timestamp, userId, sessionId, eventId, identities

    init?(jsonName: String) {
        switch jsonName {
        case "conversationId", "conversation_id": self = .conversationId
        case "channel": self = .channel
        case "intent": self = .intent
        case "slots": self = .slots
        case "timestamp": self = .timestamp
        case "userId", "user_id": self = .userId
        case "sessionId", "session_id": self = .sessionId
        case "eventId", "event_id", "inputId": self = .eventId
        case "identities": self = .identities
        default: return nil
        }
    }
}

extension DialogEvent {
    /// Decodes an `application/json` body.
    public init(jsonBytes bytes: [UInt8], maxDepth: Int = JSONParser.defaultMaxDepth) throws(EventDecodingError) {
        let json: JSONValue
        do { json = try JSONParser.parse(bytes, maxDepth: maxDepth) } catch { throw .invalidJSON(error) }
        guard case .object(let members) = json else { throw .notAnObject }
        let input = try Self.cognigyInput(members)
        self.init()
        let style: SlotStyle = input == nil ? .jsonText : .cognigy
        var seen: Set<String> = []
        for member in members {
            guard let field = EventField(jsonName: member.key) else { continue }
            guard seen.insert(field.rawValue).inserted else { throw .duplicateField(field.rawValue) }
            try set(field, json: member.value, name: field.rawValue, slotStyle: style)
        }
        if let input { try fillIn(fromCognigyInput: input) }
    }

    /// How the JSON values of `slots` become strings.
    enum SlotStyle {
        /// Plain proto3 JSON bodies: a string stays, anything else is stored as its JSON text.
        case jsonText
        /// Cognigy input mode: `CognigySlot.normalise` (arrays → first element, objects → their
        /// `synonym`, `keyphrase` or date …, `null` and `[]` dropped).
        case cognigy
    }

    /// The members of the body's `input` object, or nil when the body is not in Cognigy input
    /// mode (no `input`, or `input: null`, which proto3 JSON reads as "not given").
    private static func cognigyInput(_ members: [JSONMember]) throws(EventDecodingError) -> [JSONMember]? {
        var found: [JSONMember]?
        var seen = false
        for member in members where member.key == "input" {
            guard !seen else { throw .duplicateField("input") }
            seen = true
            switch member.value {
            case .object(let inputMembers): found = inputMembers
            case .null: continue
            default: throw .wrongType(field: "input", expected: "an object (Cognigy's Input object)")
            }
        }
        return found
    }

    /// Applies the fields Cognigy's Input object carries where the body's top level left them
    /// unset (absent, `null` or empty: proto3's "not given"), and `input.slots` under the
    /// top-level slots (top level wins per key). Unknown fields of `input` (`text`, `data`,
    /// `entrypoint`, `URLToken` …) are ignored; a known one of the wrong type, or an id with a
    /// control character, is an error even where the top level wins.
    private mutating func fillIn(fromCognigyInput members: [JSONMember]) throws(EventDecodingError) {
        var input = DialogEvent()
        var seen: Set<String> = []
        for member in members {
            guard let field = Self.inputField(member.key) else { continue }
            guard seen.insert(member.key).inserted else { throw .duplicateField("input." + member.key) }
            // Checked here, where it is known which fields came from `input`, so that one is
            // refused even when the top level wins and it is never used (SPEC: ids with
            // control characters → 400). Used values get the service's checks as well.
            if field != .slots, case .string(let s) = member.value, s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                throw .wrongType(field: "input." + member.key, expected: "a string without control characters")
            }
            try input.set(field, json: member.value, name: "input." + member.key, slotStyle: .cognigy)
        }
        for path in [\DialogEvent.channel, \.intent, \.userId, \.sessionId, \.eventId] where self[keyPath: path].isEmpty {
            self[keyPath: path] = input[keyPath: path]
        }
        slots.merge(input.slots) { top, _ in top }
    }

    /// The Input object's fields that input mode reads, by their Cognigy names.
    private static func inputField(_ key: String) -> EventField? {
        switch key {
        case "sessionId": return .sessionId
        case "userId": return .userId
        case "channel": return .channel
        case "intent": return .intent
        case "inputId": return .eventId
        case "slots": return .slots
        default: return nil
        }
    }

    private mutating func set(
        _ field: EventField, json: JSONValue, name: String, slotStyle: SlotStyle = .jsonText
    ) throws(EventDecodingError) {
        if case .null = json { return }  // proto3 JSON: null means the default value
        switch field {
        case .slots:
            guard case .object(let members) = json else { throw .wrongType(field: name, expected: "an object") }
            for member in members {
                // Event wins per key; within one body the last duplicate wins, as for a map.
                switch slotStyle {
                case .jsonText:
                    if case .string(let s) = member.value {
                        slots[member.key] = s
                    } else {
                        slots[member.key] = JSONWriter.serialize(member.value)
                    }
                case .cognigy:
                    // A dropped value (null, []) gives the key no value at all, so a later
                    // duplicate or `input.slots` may still fill it.
                    if let value = CognigySlot.normalise(member.value) { slots[member.key] = value }
                }
            }
        case .identities:
            guard case .object(let members) = json else { throw .wrongType(field: name, expected: "an object") }
            for member in members {
                // A phone number posted as a JSON number is still a phone number. An integral
                // number is read as the integer it is (`4917012345678.0` and `4.917012345678e12`
                // are 4917012345678, as for proto3 JSON's integers and JSON Schema's
                // `integer`), so its digits do not depend on how the sender's JSON library
                // writes numbers; any other number keeps its text.
                switch member.value {
                case .string(let s): identities[member.key] = s
                case .number(let text): identities[member.key] = JSONInteger.int64(text).map { String($0) } ?? text
                case .null: continue
                default: throw .wrongType(field: "identities.\(member.key)", expected: "a string")
                }
            }
        case .timestamp:
            switch json {
            case .number(let text): timestamp = try Self.parseTimestampNumber(text)
            case .string(let text): timestamp = try Self.parseTimestampString(text)
            default: throw .wrongType(field: "timestamp", expected: "a number or a string")
            }
        default:
            guard case .string(let s) = json else { throw .wrongType(field: name, expected: "a string") }
            setString(field, s)
        }
    }

    private mutating func setString(_ field: EventField, _ s: String) {
        switch field {
        case .conversationId: conversationId = s
        case .channel: channel = s
        case .intent: intent = s
        case .userId: userId = s
        case .sessionId: sessionId = s
        case .eventId: eventId = s
        case .slots, .timestamp, .identities: break
        }
    }

    /// Decodes an `application/x-protobuf` body.
    public init(protobufBytes bytes: [UInt8]) throws(EventDecodingError) {
        do { try self.init(serializedBytes: bytes) } catch { throw .invalidProtobuf(error) }
    }

    /// Decodes an `application/x-www-form-urlencoded` body: the same field names, `slots`
    /// as a JSON object string, `timestamp` as digits or RFC 3339.
    public init(formBytes bytes: [UInt8], maxDepth: Int = JSONParser.defaultMaxDepth) throws(EventDecodingError) {
        self.init()
        var seen: Set<String> = []
        for pair in try FormURLEncoding.parse(bytes) {
            guard let field = EventField(jsonName: pair.name) else { continue }
            guard seen.insert(field.rawValue).inserted else { throw .duplicateField(field.rawValue) }
            switch field {
            case .slots, .identities:
                if pair.value.isEmpty { continue }
                let json: JSONValue
                do { json = try JSONParser.parse(Array(pair.value.utf8), maxDepth: maxDepth) } catch {
                    throw .wrongType(field: field.rawValue, expected: "a JSON object string (\(error))")
                }
                try set(field, json: json, name: field.rawValue)
            case .timestamp:
                if pair.value.isEmpty { continue }
                timestamp = try Self.parseTimestampString(pair.value)
            default:
                setString(field, pair.value)
            }
        }
    }

    // MARK: timestamp

    /// An integral number of epoch seconds: proto3 JSON accepts `1718409600`, `1718409600.0`
    /// and `1.7184096e9` for an int64, and rejects a fraction.
    static func parseTimestampNumber(_ text: String) throws(EventDecodingError) -> Int64 {
        guard let value = JSONInteger.int64(text) else {
            throw .invalidTimestamp("must be an integer number of epoch seconds (got \(text.prefix(40)))")
        }
        return value
    }

    /// Digits (epoch seconds) or an RFC 3339 date-time.
    static func parseTimestampString(_ text: String) throws(EventDecodingError) -> Int64 {
        if let value = Int64(text) { return value }
        if let value = RFC3339.epochSeconds(text) { return value }
        throw .invalidTimestamp("must be epoch seconds or an RFC 3339 date-time such as 2024-06-15T00:00:00Z")
    }
}

/// RFC 3339 §5.6 date-time → epoch seconds (fractions truncated toward the past).
public enum RFC3339 {
    public static func epochSeconds(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard b.count - i >= n else { return nil }
            var v = 0
            for _ in 0..<n {
                let c = b[i]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
                i += 1
            }
            return v
        }
        func expect(_ c: UInt8...) -> Bool {
            guard i < b.count, c.contains(b[i]) else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
            let day = digits(2), expect(UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")),
            let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2), expect(UInt8(ascii: ":")),
            let second = digits(2)
        else { return nil }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            guard i > start else { return nil }
        }
        var offset = 0
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"): i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = digits(2), expect(UInt8(ascii: ":")), let om = digits(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        default: return nil
        }
        guard i == b.count, (1...12).contains(month), hour < 24, minute < 60, second <= 60 else { return nil }
        guard (1...daysInMonth(year, month)).contains(day) else { return nil }
        let days = daysFromCivil(year, month, day)
        return Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offset)
    }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Howard Hinnant's days_from_civil: days since 1970-01-01 in the proleptic Gregorian calendar.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}

/// `application/x-www-form-urlencoded` per the WHATWG URL standard: `&`-separated
/// `name=value` pairs, `+` as space, `%XX` escapes, UTF-8.
public enum FormURLEncoding {
    public struct Pair: Equatable, Sendable {
        public let name: String
        public let value: String
    }

    public static func parse(_ bytes: [UInt8]) throws(EventDecodingError) -> [Pair] {
        var pairs: [Pair] = []
        for part in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = part.firstIndex(of: UInt8(ascii: "="))
            let rawName = eq.map { part[part.startIndex..<$0] } ?? part[...]
            let rawValue = eq.map { part[part.index(after: $0)...] } ?? []
            pairs.append(Pair(name: try decode(rawName), value: try decode(rawValue)))
        }
        return pairs
    }

    public static func decode(_ bytes: ArraySlice<UInt8>) throws(EventDecodingError) -> String {
        do { return try PercentDecoding.decode(bytes, plusIsSpace: true) } catch {
            switch error {
            case .badEscape: throw .invalidForm("bad percent-escape")
            case .invalidUTF8: throw .invalidForm("not UTF-8")
            }
        }
    }
}

/// `%XX` escapes (RFC 3986 §2.1) over UTF-8, the one decoder for form bodies, query strings
/// and path segments; `+` is a space only where the form encoding says so.
public enum PercentDecoding {
    public enum Failure: Error, Equatable, Sendable {
        case badEscape
        case invalidUTF8
    }

    public static func decode<C: Collection>(_ bytes: C, plusIsSpace: Bool) throws(Failure) -> String
    where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                let h1 = bytes.index(after: i)
                guard h1 != bytes.endIndex else { throw .badEscape }
                let h2 = bytes.index(after: h1)
                guard h2 != bytes.endIndex, let hi = hexValue(bytes[h1]), let lo = hexValue(bytes[h2]) else {
                    throw .badEscape
                }
                out.append(hi << 4 | lo)
                i = bytes.index(after: h2)
                continue
            }
            out.append(plusIsSpace && b == UInt8(ascii: "+") ? 0x20 : b)
            i = bytes.index(after: i)
        }
        guard let s = UTF8Text.validated(out) else { throw .invalidUTF8 }
        return s
    }

    /// The value of one hexadecimal digit, either case.
    public static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - 0x30
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - 0x61 + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - 0x41 + 10
        default: return nil
        }
    }
}
