/// Protocol Buffers binary wire format primitives (https://protobuf.dev/programming-guides/encoding/).
///
/// Pure code: no I/O. The reader validates every length before slicing and never traps on
/// malformed input; the writer produces what `protoc`-generated code produces with
/// deterministic serialization.

/// Why a byte sequence is not a valid message. Tests match the case, not a string.
public enum WireError: Error, Equatable, Sendable {
    /// The input ended inside a tag, a varint, a fixed-width value or a length-delimited field.
    case truncated
    /// A varint longer than 10 bytes.
    case malformedVarint
    /// Wire type 6 or 7 (they do not exist).
    case invalidWireType(UInt8)
    /// Field number 0, or above 2^29-1.
    case invalidFieldNumber
    /// A length prefix that points past the end of the enclosing message.
    case lengthPastEnd
    /// A `string` field whose bytes are not valid UTF-8 (proto3 requires it).
    case invalidUTF8(field: Int)
    /// An end-group tag without its start group, or groups nested too deep.
    case malformedGroup
    /// Sub-messages nested deeper than `WireReader.maxDepth`.
    case recursionLimit
}

/// The six wire types, two of which (3, 4: groups) are deprecated but must be skippable.
public enum WireType: UInt8, Sendable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
}

/// A decoded field key: field number plus wire type.
public struct FieldTag: Equatable, Sendable {
    public let number: Int
    public let wireType: WireType
}

/// Reads one message's fields from a byte buffer. A value type: sub-messages are read with
/// a new reader over the sub-range.
public struct WireReader {
    /// Nesting limit for sub-messages and groups (protoc's default is 100).
    public static let maxDepth = 100

    private let bytes: [UInt8]
    private(set) var position: Int
    private let end: Int
    let depth: Int

    public init(_ bytes: [UInt8]) {
        self.init(bytes: bytes, start: 0, end: bytes.count, depth: 0)
    }

    init(bytes: [UInt8], start: Int, end: Int, depth: Int) {
        self.bytes = bytes
        self.position = start
        self.end = end
        self.depth = depth
    }

    public var isAtEnd: Bool { position >= end }

    /// Reads the next tag, or returns nil at the end of the message.
    public mutating func nextTag() throws(WireError) -> FieldTag? {
        if position >= end { return nil }
        let key = try readVarint()
        let rawType = UInt8(truncatingIfNeeded: key & 7)
        guard let wireType = WireType(rawValue: rawType) else { throw .invalidWireType(rawType) }
        let number = key >> 3
        guard number >= 1, number <= 0x1FFF_FFFF else { throw .invalidFieldNumber }
        return FieldTag(number: Int(number), wireType: wireType)
    }

    /// Base-128 varint, at most 10 bytes (bits past 64 are dropped, as protoc does).
    public mutating func readVarint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for _ in 0..<10 {
            guard position < end else { throw .truncated }
            let byte = bytes[position]
            position += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw .malformedVarint
    }

    public mutating func readInt64() throws(WireError) -> Int64 {
        Int64(bitPattern: try readVarint())
    }

    /// A fixed64 value (8 bytes, little-endian).
    public mutating func readFixed64() throws(WireError) -> UInt64 {
        guard end - position >= 8 else { throw .truncated }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += 8
        return value
    }

    /// A packed repeated fixed64 field's values (its payload is 8 bytes per value).
    public mutating func readPackedFixed64() throws(WireError) -> [UInt64] {
        let range = try readLengthDelimitedRange()
        guard range.count % 8 == 0 else { throw .truncated }
        var inner = WireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound, depth: depth)
        var values: [UInt64] = []
        values.reserveCapacity(range.count / 8)
        while !inner.isAtEnd { values.append(try inner.readFixed64()) }
        return values
    }

    /// The bounds of a length-delimited field's payload; advances past it.
    mutating func readLengthDelimitedRange() throws(WireError) -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(end - position) else {
            // A length that runs past the end is "truncated" in spirit, but the distinct
            // case tells a caller the prefix itself was wrong.
            throw .lengthPastEnd
        }
        let start = position
        position += Int(length)
        return start..<position
    }

    public mutating func readBytes() throws(WireError) -> [UInt8] {
        let range = try readLengthDelimitedRange()
        return Array(bytes[range])
    }

    public mutating func readString(field: Int) throws(WireError) -> String {
        let range = try readLengthDelimitedRange()
        guard let string = UTF8Text.validated(bytes[range]) else {
            throw .invalidUTF8(field: field)
        }
        return string
    }

    /// A reader over the next length-delimited field (a sub-message).
    public mutating func readSubmessage() throws(WireError) -> WireReader {
        guard depth + 1 < Self.maxDepth else { throw .recursionLimit }
        let range = try readLengthDelimitedRange()
        return WireReader(bytes: bytes, start: range.lowerBound, end: range.upperBound, depth: depth + 1)
    }

    /// Skips a field this schema does not know (or knows with another wire type, which
    /// protoc-generated parsers also treat as unknown).
    public mutating func skip(_ tag: FieldTag) throws(WireError) {
        switch tag.wireType {
        case .varint: _ = try readVarint()
        case .fixed64: try advance(8)
        case .fixed32: try advance(4)
        case .lengthDelimited: _ = try readLengthDelimitedRange()
        case .endGroup: throw .malformedGroup
        case .startGroup:
            guard depth + 1 < Self.maxDepth else { throw .recursionLimit }
            var inner = WireReader(bytes: bytes, start: position, end: end, depth: depth + 1)
            while true {
                guard let innerTag = try inner.nextTag() else { throw .truncated }
                if innerTag.wireType == .endGroup {
                    guard innerTag.number == tag.number else { throw .malformedGroup }
                    break
                }
                try inner.skip(innerTag)
            }
            position = inner.position
        }
    }

    private mutating func advance(_ count: Int) throws(WireError) {
        guard end - position >= count else { throw .truncated }
        position += count
    }
}

/// Appends fields in the order it is called; callers write fields in field-number order and
/// skip proto3 default values, which is what protoc-generated code does.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public static func varintSize(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    static func tagSize(_ number: Int) -> Int { varintSize(UInt64(number) << 3) }

    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func writeTag(_ number: Int, _ type: WireType) {
        writeVarint(UInt64(number) << 3 | UInt64(type.rawValue))
    }

    /// Writes a length-delimited field from UTF-8 or raw bytes.
    public mutating func writeLengthDelimited<C: Collection>(_ number: Int, _ payload: C) where C.Element == UInt8 {
        writeTag(number, .lengthDelimited)
        writeVarint(UInt64(payload.count))
        bytes.append(contentsOf: payload)
    }

    /// proto3 singular string: omitted when empty.
    public mutating func writeString(_ number: Int, _ value: String) {
        guard !value.isEmpty else { return }
        writeLengthDelimited(number, value.utf8)
    }

    /// proto3 singular int64: omitted when zero; negative values take 10 bytes.
    public mutating func writeInt64(_ number: Int, _ value: Int64) {
        guard value != 0 else { return }
        writeTag(number, .varint)
        writeVarint(UInt64(bitPattern: value))
    }

    /// proto3 repeated fixed64, packed (protoc's default): omitted when empty.
    public mutating func writePackedFixed64(_ number: Int, _ values: [UInt64]) {
        guard !values.isEmpty else { return }
        writeTag(number, .lengthDelimited)
        writeVarint(UInt64(values.count * 8))
        for value in values {
            for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
        }
    }

    /// A sub-message whose size is known before its bytes are written (size-then-write).
    public mutating func writeMessageHeader(_ number: Int, size: Int) {
        writeTag(number, .lengthDelimited)
        writeVarint(UInt64(size))
    }

    public mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }
}

/// Size of a length-delimited field (tag + length + payload).
@inline(__always)
func lengthDelimitedFieldSize(_ number: Int, _ payloadSize: Int) -> Int {
    WireWriter.tagSize(number) + WireWriter.varintSize(UInt64(payloadSize)) + payloadSize
}

/// Size of a proto3 string field (zero when empty: not written).
@inline(__always)
func stringFieldSize(_ number: Int, _ value: String) -> Int {
    let count = value.utf8.count
    return count == 0 ? 0 : lengthDelimitedFieldSize(number, count)
}

/// Size of a packed repeated fixed64 field of `count` values (zero when empty: not written).
@inline(__always)
func packedFixed64FieldSize(_ number: Int, count: Int) -> Int {
    count == 0 ? 0 : lengthDelimitedFieldSize(number, count * 8)
}

/// Size of a proto3 int64 field (zero when the value is zero: not written).
@inline(__always)
func int64FieldSize(_ number: Int, _ value: Int64) -> Int {
    value == 0 ? 0 : WireWriter.tagSize(number) + WireWriter.varintSize(UInt64(bitPattern: value))
}

/// Keys in the order deterministic serialization writes map entries: by UTF-8 bytes, as
/// C++ std::string and upb compare them (Swift's String `<` compares Unicode scalars
/// after normalization, which can differ).
func sortedMapKeys<V>(_ map: [String: V]) -> [String] {
    map.keys.sorted { a, b in a.utf8.lexicographicallyPrecedes(b.utf8) }
}
