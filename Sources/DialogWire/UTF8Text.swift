/// Bytes → `String` when they are valid UTF-8, nil otherwise: the one validating decoder of
/// the codecs. `String(validating:as:)` is generic and not specialised in the standard
/// library, so each call looked up generic metadata at run time (5% of a webhook's CPU).
/// Here: ASCII (every id, most slots) is checked a word at a time and decoded directly;
/// anything else is decoded with repair and accepted only if repair changed nothing, which
/// holds exactly when the input was valid UTF-8.
public enum UTF8Text {
    @inline(__always)
    public static func validated(_ bytes: ArraySlice<UInt8>) -> String? {
        bytes.withUnsafeBufferPointer { validated($0) }
    }

    @inline(__always)
    public static func validated(_ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { validated($0) }
    }

    public static func validated(_ buffer: UnsafeBufferPointer<UInt8>) -> String? {
        let s = String(decoding: buffer, as: UTF8.self)
        if isASCII(buffer) { return s }
        return s.utf8.elementsEqual(buffer) ? s : nil
    }

    public static func isASCII(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = buffer.baseAddress else { return true }
        let count = buffer.count
        var i = 0
        let raw = UnsafeRawPointer(base)
        while i + 8 <= count {
            if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            i += 8
        }
        while i < count {
            if base[i] & 0x80 != 0 { return false }
            i += 1
        }
        return true
    }
}
