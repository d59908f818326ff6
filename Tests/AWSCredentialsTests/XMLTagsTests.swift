import XCTest
@testable import AWSCredentials

/// The tag extractor on byte fixtures: what STS sends, and what it must not be fooled by.
final class XMLTagsTests: XCTestCase {
    private func text(_ name: String, _ xml: String) throws -> String { try XMLTags.text(name, in: Array(xml.utf8)[...]) }

    private func assertFails(_ name: String, _ xml: String, _ expected: XMLTags.Failure, line: UInt = #line) {
        XCTAssertThrowsError(try text(name, xml), line: line) { XCTAssertEqual($0 as? XMLTags.Failure, expected, line: line) }
    }

    func testText_exactNameOnly() throws {
        XCTAssertEqual(try text("Code", "<CodeX>no</CodeX><Code>yes</Code>"), "yes")
        XCTAssertEqual(try text("Code", #"<Code lang="en">yes</Code >"#), "yes")
        XCTAssertEqual(try text("Code", "<Code/>"), "")
        XCTAssertEqual(try text("Code", "<Code></Code>"), "")
    }

    func testText_decodesEntities() throws {
        XCTAssertEqual(try text("T", "<T>a&amp;b&lt;c&gt;&quot;&apos;&#65;&#x42;&#x1F600;</T>"), "a&b<c>\"'AB😀")
    }

    func testText_rejectsUnknownOrMalformedEntities() {
        for bad in ["&nbsp;", "&#0;", "&#xD800;", "&#x;", "&#+65;", "&amp", "&#99999999;", "&#x110000;"] {
            assertFails("T", "<T>a\(bad)b</T>", .badEntity("T"))
        }
    }

    func testMalformed_isAnErrorNotAGuess() {
        assertFails("T", "", .missing("T"))
        assertFails("T", "<T>abc", .unclosed("T"))
        assertFails("T", "<T>abc</T", .unclosed("T"))
        assertFails("T", "<T", .unclosed("T"))
        assertFails("T", "<T>a</T><T>b</T>", .repeated("T"))
        assertFails("T", "<T><T>a</T></T>", .repeated("T"))
        assertFails("T", "<T><b>x</b></T>", .unexpectedMarkup("T"))
        assertFails("T", "<T><![CDATA[x]]></T>", .unexpectedMarkup("T"))
    }

    func testElement_scopesTheSearch() throws {
        let xml = Array("<A><Code>inner</Code></A><Code>outer</Code>".utf8)[...]
        XCTAssertEqual(try XMLTags.text("Code", in: try XMLTags.element("A", in: xml)), "inner")
    }
}
