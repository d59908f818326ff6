import DialogWire
import FuzzSupport

/// The strict JSON parser and the compact writer.
///
/// Invariants: anything that parses is written as JSON that parses to an equal value, and
/// writing is a fixed point (writing the re-parsed value gives the same text). A value
/// accepted at depth limit 8 is accepted at the default limit too, and to the same value.
enum FuzzJSON {
    static func run(_ input: [UInt8]) {
        guard let value = try? JSONParser.parse(input) else {
            // Rejected at the default limit: must be rejected at a lower one too.
            precondition((try? JSONParser.parse(input, maxDepth: 8)) == nil, "lower depth limit accepts more")
            return
        }
        let text = Array(JSONWriter.serialize(value).utf8)
        let again: JSONValue
        do { again = try JSONParser.parse(text) } catch {
            fatalError("written JSON does not parse (\(error)): \(show(input)) -> \(show(text))")
        }
        precondition(again == value, "JSON round trip differs: \(show(input)) -> \(show(text))")
        precondition(Array(JSONWriter.serialize(again).utf8) == text, "JSON writing is not a fixed point")
        if let shallow = try? JSONParser.parse(input, maxDepth: 8) {
            precondition(shallow == value, "depth limit changes the value")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzJSON.run(fuzzInput(data, size))
    return 0
}
