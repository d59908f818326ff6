import XCTest
@testable import DialogWire

/// Malformed input must be a typed error, never a crash. Fixtures are byte literals.
final class WireFormatTests: XCTestCase {
    private func assertEventDecodeFails(
        _ bytes: [UInt8], _ expected: WireError, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try DialogEvent(serializedBytes: bytes), file: file, line: line) { error in
            XCTAssertEqual(error as? WireError, expected, file: file, line: line)
        }
    }

    func testDecode_truncatedTag() { assertEventDecodeFails([0x80], .truncated) }
    func testDecode_truncatedVarintValue() { assertEventDecodeFails([0x28, 0xFF], .truncated) }
    func testDecode_varintOfElevenBytes() {
        assertEventDecodeFails([0x28] + [UInt8](repeating: 0xFF, count: 10) + [0x01], .malformedVarint)
    }
    func testDecode_tenByteVarintIsAccepted() throws {
        // -1 as int64 is ten bytes on the wire.
        let event = try DialogEvent(serializedBytes: [0x28] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
        XCTAssertEqual(event.timestamp, -1)
    }
    func testDecode_wireType6() { assertEventDecodeFails([0x0E], .invalidWireType(6)) }
    func testDecode_wireType7() { assertEventDecodeFails([0x0F], .invalidWireType(7)) }
    func testDecode_fieldZero() { assertEventDecodeFails([0x00, 0x01], .invalidFieldNumber) }
    func testDecode_lengthPastEnd() { assertEventDecodeFails([0x0A, 0x05, 0x61, 0x62], .lengthPastEnd) }
    func testDecode_hugeLength() {
        assertEventDecodeFails([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x61], .lengthPastEnd)
    }
    func testDecode_invalidUTF8InString() { assertEventDecodeFails([0x12, 0x02, 0xC3, 0x28], .invalidUTF8(field: 2)) }
    func testDecode_invalidUTF8InMapKey() {
        assertEventDecodeFails([0x22, 0x05, 0x0A, 0x01, 0xFF, 0x12, 0x00], .invalidUTF8(field: 4))
    }
    func testDecode_mapEntryLengthPastEnclosingMessage() {
        assertEventDecodeFails([0x22, 0x03, 0x0A, 0x05, 0x61], .lengthPastEnd)
    }
    func testDecode_truncatedFixed64AndFixed32() {
        assertEventDecodeFails([0x49, 1, 2, 3], .truncated)
        assertEventDecodeFails([0x55, 1, 2], .truncated)
    }
    func testDecode_endGroupWithoutStart() { assertEventDecodeFails([0x4C], .malformedGroup) }
    func testDecode_unterminatedGroup() { assertEventDecodeFails([0x4B, 0x08, 0x01], .truncated) }
    func testDecode_groupIsSkipped() throws {
        // field 9 start group, inner varint field 1 = 1, field 9 end group, then channel "x".
        let event = try DialogEvent(serializedBytes: [0x4B, 0x08, 0x01, 0x4C, 0x12, 0x01, 0x78])
        XCTAssertEqual(event.channel, "x")
    }
    func testDecode_mismatchedGroupEnd() { assertEventDecodeFails([0x4B, 0x54], .malformedGroup) }
    func testDecode_deepGroupsHitRecursionLimit() {
        assertEventDecodeFails([UInt8](repeating: 0x4B, count: 200), .recursionLimit)
    }
    func testDecode_knownFieldWithOtherWireTypeIsSkippedAsUnknown() throws {
        // conversation_id (field 1) sent as a varint: protoc code treats it as unknown.
        let event = try DialogEvent(serializedBytes: [0x08, 0x05, 0x12, 0x01, 0x78])
        XCTAssertEqual(event.conversationId, "")
        XCTAssertEqual(event.channel, "x")
    }
    func testDecode_snapshotWithTruncatedChannelState() {
        XCTAssertThrowsError(try SessionSnapshot(serializedBytes: [0x3A, 0x03, 0x12, 0x01, 0x18])) { error in
            XCTAssertEqual(error as? WireError, .truncated)
        }
    }

    func testVarintSize() {
        XCTAssertEqual(WireWriter.varintSize(0), 1)
        XCTAssertEqual(WireWriter.varintSize(127), 1)
        XCTAssertEqual(WireWriter.varintSize(128), 2)
        XCTAssertEqual(WireWriter.varintSize(UInt64.max), 10)
    }

    func testSerializedSizeMatchesBytes() {
        var s = SessionSnapshot()
        s.conversationId = "c"
        s.sessionVersion = -3
        s.slots = ["a": String(repeating: "x", count: 200)]
        s.channels = ["web": ChannelState(userId: "u", sessionId: "", lastSeen: 9)]
        s.recentEventIds = ["", "e"]
        s.recentEventDigests = [0, .max, 42]
        XCTAssertEqual(s.serializedSize(), s.serializedBytes().count)
    }

    /// A packed fixed64 payload that is not a whole number of values is malformed.
    func testPackedFixed64_partialValueIsTruncated() {
        // field 12, length-delimited, 9 bytes: one value and one stray byte.
        let bytes: [UInt8] = [0x62, 0x09] + [UInt8](repeating: 1, count: 9)
        XCTAssertThrowsError(try SessionSnapshot(serializedBytes: bytes)) { XCTAssertEqual($0 as? WireError, .truncated) }
        // field 12 as a single fixed64 cut short.
        XCTAssertThrowsError(try SessionSnapshot(serializedBytes: [0x61, 1, 2, 3])) { XCTAssertEqual($0 as? WireError, .truncated) }
        XCTAssertEqual(try SessionSnapshot(serializedBytes: [0x62, 0x00]).recentEventDigests, [], "empty packed field")
    }

    func testRandomBytesNeverCrash() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20000 {
            let bytes = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? DialogEvent(serializedBytes: bytes)
            _ = try? SessionSnapshot(serializedBytes: bytes)
        }
    }
}
