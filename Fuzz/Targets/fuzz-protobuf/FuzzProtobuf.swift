import DialogWire
import FuzzSupport

/// The protobuf decoder of both messages (DialogEvent, SessionSnapshot) on arbitrary bytes.
///
/// Invariants: a message that decodes re-encodes to exactly `serializedSize()` bytes, those
/// bytes decode to an equal value, and encoding that value again gives the same bytes
/// (deterministic serialization is a fixed point).
enum FuzzProtobuf {
    static func run(_ input: [UInt8]) {
        if let event = try? DialogEvent(serializedBytes: input) {
            let encoded = event.serializedBytes()
            precondition(encoded.count == event.serializedSize(), "DialogEvent size \(encoded.count) != \(event.serializedSize())")
            let again: DialogEvent
            do { again = try DialogEvent(serializedBytes: encoded) } catch {
                fatalError("re-encoded DialogEvent does not decode (\(error)): \(show(input)) -> \(show(encoded))")
            }
            precondition(again == event, "DialogEvent round trip differs: \(event) vs \(again)")
            precondition(again.serializedBytes() == encoded, "DialogEvent encoding is not deterministic")
        }
        if let snapshot = try? SessionSnapshot(serializedBytes: input) {
            let encoded = snapshot.serializedBytes()
            precondition(
                encoded.count == snapshot.serializedSize(),
                "SessionSnapshot size \(encoded.count) != \(snapshot.serializedSize())")
            let again: SessionSnapshot
            do { again = try SessionSnapshot(serializedBytes: encoded) } catch {
                fatalError("re-encoded SessionSnapshot does not decode (\(error)): \(show(input)) -> \(show(encoded))")
            }
            precondition(again == snapshot, "SessionSnapshot round trip differs: \(snapshot) vs \(again)")
            precondition(again.serializedBytes() == encoded, "SessionSnapshot encoding is not deterministic")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzProtobuf.run(fuzzInput(data, size))
    return 0
}
