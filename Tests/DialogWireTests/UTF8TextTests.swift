import XCTest
@testable import DialogWire

final class UTF8TextTests: XCTestCase {
    func testValidInputsDecodeAsTheStandardLibraryDoes() {
        let valid: [[UInt8]] = [
            [], Array("conv-88a2c1f9".utf8), Array("München, 東京, 🚀".utf8), [0xEF, 0xBF, 0xBD],  // a literal U+FFFD
            Array(repeating: 0x41, count: 17) + [0xC3, 0xBC], [0xF4, 0x8F, 0xBF, 0xBF],  // U+10FFFF
        ]
        for bytes in valid {
            XCTAssertEqual(UTF8Text.validated(bytes), String(validating: bytes, as: UTF8.self), "\(bytes)")
            XCTAssertEqual(UTF8Text.validated(bytes[...]), String(validating: bytes, as: UTF8.self))
        }
    }

    func testInvalidInputsAreRefused() {
        let invalid: [[UInt8]] = [
            [0xFF], [0xC0, 0xAF],  // overlong "/"
            [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80],  // a UTF-16 surrogate
            [0xF4, 0x90, 0x80, 0x80],  // past U+10FFFF
            [0xC3], Array("abcdefgh".utf8) + [0x80], [0xE2, 0x82],  // truncated
            [0xEF, 0xBF],  // a truncated U+FFFD
        ]
        for bytes in invalid {
            XCTAssertNil(String(validating: bytes, as: UTF8.self), "fixture \(bytes) must be invalid")
            XCTAssertNil(UTF8Text.validated(bytes), "\(bytes)")
        }
    }

    func testASCIIWordCheck() {
        for n in 0..<40 {
            var bytes = Array(repeating: UInt8(ascii: "x"), count: n)
            XCTAssertTrue(bytes.withUnsafeBufferPointer { UTF8Text.isASCII($0) })
            if n > 0 {
                bytes[n - 1] = 0x80
                XCTAssertFalse(bytes.withUnsafeBufferPointer { UTF8Text.isASCII($0) }, "\(n)")
            }
        }
    }
}
