/// One value of Cognigy's `input.slots` as the single string a snapshot slot holds
/// (SPEC "Cognigy input mode").
///
/// Cognigy's NLU fills `input.slots` with arrays: lexicon slots as
/// `[{"keyphrase":"Munich","synonym":"München","tags":["city"],…}]`, `DATE` as
/// `[{"start":{"ISODate":"2024-06-15T00:00:00Z",…},"end":null}]`, `NUMBER` as `[100, 143]`,
/// `EMAIL` and `URL` as arrays of strings, `MONEY` as `[{"value":500,"unit":"$"}]`, and
/// `DURATION` as a plain object. A flow wants the value the user meant, not that structure.
public enum CognigySlot {
    /// The members of an object slot tried, in order, for the value a user meant: a lexicon
    /// match (`synonym`, then its `keyphrase`), then a date (`ISODate`, or a range's start).
    static let preferredStrings: [[String]] = [["synonym"], ["keyphrase"], ["ISODate"], ["start", "ISODate"]]

    /// - a string stays; a number keeps its JSON text (`1.50` stays "1.50"); a boolean becomes
    ///   `true`/`false`;
    /// - `null` and `[]` are dropped (nil): Cognigy's way of saying "nothing detected";
    /// - an array becomes its first element, normalised (the NLU's best match comes first);
    /// - an object becomes the first non-empty string among `synonym`, `keyphrase`,
    ///   `ISODate` and `start.ISODate`, else its `value` normalised (`MONEY`, `DISTANCE`),
    ///   else its JSON text (`DURATION`). An empty string is skipped so that a lexicon match
    ///   without a synonym still yields its keyphrase; a `value` that normalises to nothing
    ///   (`null`, `[]`) falls through to the JSON text, which keeps what was detected.
    public static func normalise(_ json: JSONValue) -> String? {
        switch json {
        case .string(let s): return s
        case .number(let text): return text
        case .bool(let b): return b ? "true" : "false"
        case .null: return nil
        case .array(let elements): return elements.first.flatMap(normalise)
        case .object:
            for path in preferredStrings {
                if case .string(let s)? = member(json, path), !s.isEmpty { return s }
            }
            if let value = json["value"], let normalised = normalise(value) { return normalised }
            return JSONWriter.serialize(json)
        }
    }

    private static func member(_ json: JSONValue, _ path: [String]) -> JSONValue? {
        var current: JSONValue? = json
        for key in path { current = current?[key] }
        return current
    }
}
