/// Just enough XML for the STS Query protocol's answers: the text of a named element
/// inside another. Not an XML parser, and careful about it: an element is matched by its
/// exact name (`<Name>` or `<Name attr…>`, never `<NameOther>`), its text may hold the
/// five predefined entities and character references and nothing else, and anything
/// unexpected (a nested element, CDATA, an unclosed or repeated element, an unknown
/// entity) is an error rather than a guess.
public enum XMLTags {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case missing(String)
        case unclosed(String)
        case repeated(String)
        case unexpectedMarkup(String)
        case badEntity(String)

        public var description: String {
            switch self {
            case .missing(let n): return "no <\(n)> element"
            case .unclosed(let n): return "<\(n)> is not closed"
            case .repeated(let n): return "<\(n)> appears more than once"
            case .unexpectedMarkup(let n): return "<\(n)> holds markup where text was expected"
            case .badEntity(let n): return "<\(n)> holds an unknown or malformed entity"
            }
        }
    }

    /// The bytes between `<name …>` and its `</name>`, for the one such element in `xml`.
    public static func element(_ name: String, in xml: ArraySlice<UInt8>) throws(Failure) -> ArraySlice<UInt8> {
        guard let first = try find(name, in: xml) else { throw .missing(name) }
        if try find(name, in: xml[first.end...]) != nil { throw .repeated(name) }
        return first.content
    }

    /// The decoded text of the one `<name>` element in `xml`.
    public static func text(_ name: String, in xml: ArraySlice<UInt8>) throws(Failure) -> String {
        let content = try element(name, in: xml)
        if content.contains(UInt8(ascii: "<")) { throw .unexpectedMarkup(name) }
        guard let decoded = decodeEntities(content) else { throw .badEntity(name) }
        return decoded
    }

    /// The text of an optional element: nil when it is absent.
    public static func optionalText(_ name: String, in xml: ArraySlice<UInt8>) throws(Failure) -> String? {
        do { return try text(name, in: xml) } catch .missing { return nil }
    }

    /// Finds the first `<name>` / `<name …>` start tag and its matching `</name>`; a
    /// self-closing `<name/>` has empty content. Elements of the same name do not nest in
    /// the answers read here, so a nested one is an error.
    private static func find(_ name: String, in xml: ArraySlice<UInt8>) throws(Failure) -> (content: ArraySlice<UInt8>, end: Int)? {
        guard let after = startTag(name, in: xml) else { return nil }
        guard let gt = xml[after...].firstIndex(of: UInt8(ascii: ">")) else { throw .unclosed(name) }
        if xml[gt - 1] == UInt8(ascii: "/") { return (xml[gt + 1..<gt + 1], gt + 1) }
        let close = Array("</\(name)".utf8)
        let contentStart = gt + 1
        var j = contentStart
        while let end = index(of: close, in: xml, from: j) {
            var k = end + close.count
            while k < xml.endIndex, isSpace(xml[k]) { k += 1 }
            guard k < xml.endIndex else { throw .unclosed(name) }
            guard xml[k] == UInt8(ascii: ">") else {
                j = end + close.count  // `</NameOther>`
                continue
            }
            let content = xml[contentStart..<end]
            if startTag(name, in: content) != nil { throw .repeated(name) }
            return (content, k + 1)
        }
        throw .unclosed(name)
    }

    /// The index just past `<name` of the first start tag of exactly that name.
    private static func startTag(_ name: String, in xml: ArraySlice<UInt8>) -> Int? {
        let open = Array("<\(name)".utf8)
        var i = xml.startIndex
        while let at = index(of: open, in: xml, from: i) {
            let after = at + open.count
            // At the very end: an unclosed tag of this name (the caller reports it).
            guard after < xml.endIndex else { return after }
            // `<AccessKeyIdX>` is another element: the name must end here.
            let next = xml[after]
            if next == UInt8(ascii: ">") || next == UInt8(ascii: "/") || isSpace(next) { return after }
            i = after
        }
        return nil
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    private static func index(of needle: [UInt8], in hay: ArraySlice<UInt8>, from: Int) -> Int? {
        guard !needle.isEmpty, hay.endIndex - from >= needle.count else { return nil }
        var i = from
        let last = hay.endIndex - needle.count
        while i <= last {
            if hay[i] == needle[0] {
                var k = 1
                while k < needle.count, hay[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// XML 1.0 §4.6 predefined entities and §4.1 character references; nil on anything else.
    static func decodeEntities(_ bytes: ArraySlice<UInt8>) -> String? {
        guard bytes.contains(UInt8(ascii: "&")) else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            guard b == UInt8(ascii: "&") else {
                out.append(b)
                i += 1
                continue
            }
            guard let semi = bytes[i...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { return nil }
            let name = String(decoding: bytes[(i + 1)..<semi], as: UTF8.self)
            switch name {
            case "amp": out.append(UInt8(ascii: "&"))
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                var value: UInt32?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    let hex = name.dropFirst(2)
                    if (1...6).contains(hex.count), hex.allSatisfy(\.isHexDigit) { value = UInt32(hex, radix: 16) }
                } else if name.hasPrefix("#") {
                    let dec = name.dropFirst()
                    if (1...7).contains(dec.count), dec.allSatisfy({ $0.isASCII && $0.isNumber }) { value = UInt32(dec) }
                }
                // A character reference must name a character XML allows (§2.2): no NUL, no surrogates.
                guard let v = value, v != 0, let scalar = Unicode.Scalar(v) else { return nil }
                out.append(contentsOf: String(Character(scalar)).utf8)
            }
            i = semi + 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
