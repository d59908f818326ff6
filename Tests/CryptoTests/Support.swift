import XCTest

/// Bytes from a hex fixture (spaces and newlines allowed, as the specs print them).
func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8.filter { !($0 == 32 || $0 == 10) })
    precondition(digits.count % 2 == 0, "odd hex fixture")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Asserts that `body` throws exactly `expected` (typed throws keep the error's type).
func assertThrows<T, E: Error & Equatable>(
    _ expected: E, _ message: String = "", file: StaticString = #filePath, line: UInt = #line, _ body: () throws(E) -> T
) {
    do {
        let value = try body()
        XCTFail("expected \(expected), got \(value) \(message)", file: file, line: line)
    } catch {
        XCTAssertEqual(error, expected, message, file: file, line: line)
    }
}
