import DialogWire
import Foundation

/// DynamoDB's AttributeValue in its JSON wire form (`{"S":"x"}`, `{"N":"1"}`, `{"B":"<base64>"}`, …).
public indirect enum AttributeValue: Equatable, Sendable {
    case s(String)
    /// Numbers travel as strings to keep their precision.
    case n(String)
    case b([UInt8])
    case m([String: AttributeValue])
    case l([AttributeValue])
    case bool(Bool)
    case null
    case ss([String])
    case ns([String])
    case bs([[UInt8]])

    public static func int(_ v: Int64) -> AttributeValue { .n(String(v)) }

    public var stringValue: String? { if case .s(let s) = self { return s } else { return nil } }
    public var int64Value: Int64? { if case .n(let n) = self { return Int64(n) } else { return nil } }
    public var bytesValue: [UInt8]? { if case .b(let b) = self { return b } else { return nil } }

    public func write(to w: inout JSONWriter) {
        w.beginObject()
        switch self {
        case .s(let s): w.key("S"); w.value(s)
        case .n(let n): w.key("N"); w.value(n)
        case .b(let b): w.key("B"); w.value(Data(b).base64EncodedString())
        case .bool(let b): w.key("BOOL"); w.value(b)
        case .null: w.key("NULL"); w.value(true)
        case .m(let m):
            w.key("M")
            Self.writeMap(m, to: &w)
        case .l(let l):
            w.key("L")
            w.beginArray()
            for v in l { v.write(to: &w) }
            w.endArray()
        case .ss(let a): w.key("SS"); w.beginArray(); for s in a { w.value(s) }; w.endArray()
        case .ns(let a): w.key("NS"); w.beginArray(); for s in a { w.value(s) }; w.endArray()
        case .bs(let a): w.key("BS"); w.beginArray(); for b in a { w.value(Data(b).base64EncodedString()) }; w.endArray()
        }
        w.endObject()
    }

    /// An item or key: a map of attribute names to values, keys in a stable order.
    public static func writeMap(_ m: [String: AttributeValue], to w: inout JSONWriter) {
        w.beginObject()
        for key in m.keys.sorted() {
            w.key(key)
            m[key]!.write(to: &w)
        }
        w.endObject()
    }

    public struct DecodingError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(json: JSONValue) throws(DecodingError) {
        guard case .object(let members) = json, members.count == 1 else {
            throw DecodingError(message: "an AttributeValue must be an object with exactly one type key")
        }
        let (type, value) = (members[0].key, members[0].value)
        func string(_ v: JSONValue) throws(DecodingError) -> String {
            guard case .string(let s) = v else { throw DecodingError(message: "\(type) must hold a string") }
            return s
        }
        func bytes(_ v: JSONValue) throws(DecodingError) -> [UInt8] {
            guard let d = Data(base64Encoded: try string(v)) else { throw DecodingError(message: "\(type) is not base64") }
            return [UInt8](d)
        }
        func array(_ v: JSONValue) throws(DecodingError) -> [JSONValue] {
            guard case .array(let a) = v else { throw DecodingError(message: "\(type) must hold an array") }
            return a
        }
        switch type {
        case "S": self = .s(try string(value))
        case "N":
            let n = try string(value)
            guard Double(n) != nil else { throw DecodingError(message: "N is not a number: \(n)") }
            self = .n(n)
        case "B": self = .b(try bytes(value))
        case "BOOL":
            guard case .bool(let b) = value else { throw DecodingError(message: "BOOL must hold true or false") }
            self = .bool(b)
        case "NULL": self = .null
        case "M": self = .m(try Self.map(value))
        case "L":
            var out: [AttributeValue] = []
            for v in try array(value) { out.append(try AttributeValue(json: v)) }
            self = .l(out)
        case "SS":
            var out: [String] = []
            for v in try array(value) { out.append(try string(v)) }
            self = .ss(out)
        case "NS":
            var out: [String] = []
            for v in try array(value) { out.append(try string(v)) }
            self = .ns(out)
        case "BS":
            var out: [[UInt8]] = []
            for v in try array(value) { out.append(try bytes(v)) }
            self = .bs(out)
        default: throw DecodingError(message: "unknown AttributeValue type \(type)")
        }
    }

    /// An item or key from its JSON object.
    public static func map(_ json: JSONValue) throws(DecodingError) -> [String: AttributeValue] {
        guard case .object(let members) = json else { throw DecodingError(message: "an item must be an object") }
        var out: [String: AttributeValue] = [:]
        for m in members { out[m.key] = try AttributeValue(json: m.value) }
        return out
    }
}
