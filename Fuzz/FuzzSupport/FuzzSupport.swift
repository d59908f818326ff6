/// Helpers shared by the libFuzzer targets in Fuzz/Targets. A target defines
///
///     @_cdecl("LLVMFuzzerTestOneInput")
///     public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32
///
/// and reports an invariant violation with `precondition`/`fatalError`, which libFuzzer
/// records as a crash (and saves the input).

/// The input libFuzzer passes to LLVMFuzzerTestOneInput, as an array (the pointer may be
/// null for the empty input).
@inline(__always)
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// A short printable rendering of bytes for invariant messages.
public func show(_ b: [UInt8]) -> String {
    var s = ""
    for c in b.prefix(200) {
        if c >= 0x20 && c < 0x7F && c != 0x5C { s.unicodeScalars.append(Unicode.Scalar(c)) }
        else { s += "\\x" + (c < 16 ? "0" : "") + String(c, radix: 16) }
    }
    return b.count > 200 ? s + "...(\(b.count) bytes)" : s
}
