#!/usr/bin/env bash
# Regenerates Tests/DialogWireTests/Fixtures/golden.json with the real protoc (grpcio-tools)
# and Google's protobuf runtime, so the hand-written codec is checked against protoc's own
# deterministic output. The fixtures are committed; this script is only needed when
# proto/dialog.proto or the cases change.
#
# Usage: scripts/gen-golden-vectors.sh            (creates a venv in .build-venv/ if needed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.build-venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import grpc_tools, google.protobuf' 2>/dev/null \
  || "$VENV/bin/pip" install -q grpcio-tools protobuf
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp "$ROOT/proto/dialog.proto" "$WORK/"
# A later revision of DialogEvent with fields this schema does not know, of every wire
# type proto3 writes (varint, 64-bit, length-delimited, 32-bit; groups are proto2 only),
# to produce bytes with unknown fields the way real protoc code writes them. Fields 1-9
# are dialog.proto's; the unknown ones start at 10 so they never collide with a field
# dialog.proto has (9 became `identities`).
cat > "$WORK/future.proto" <<'PROTO'
syntax = "proto3";
package cognigy.session.future;
message Nested { string note = 1; int32 n = 2; }
message DialogEventV2 {
  string conversation_id = 1;
  string channel = 2;
  string intent = 3;
  map<string, string> slots = 4;
  int64 timestamp = 5;
  string user_id = 6;
  string session_id = 7;
  string event_id = 8;
  map<string, string> identities = 9;
  double score = 10;
  fixed32 flags = 11;
  Nested nested = 12;
  repeated int64 numbers = 13;
  sfixed64 big = 14;
  uint64 level = 15;
  repeated sint32 deltas = 16 [packed = false];
  bytes blob = 536870911;
}
message SnapshotUnpacked {
  string conversation_id = 1;
  repeated fixed64 recent_event_digests = 12 [packed = false];
}
PROTO
"$VENV/bin/python" -m grpc_tools.protoc -I"$WORK" --python_out="$WORK" "$WORK/dialog.proto" "$WORK/future.proto"
PROTO_DIR="$WORK" PYTHONPATH="$WORK" "$VENV/bin/python" "$ROOT/scripts/golden_vectors.py" > "$ROOT/Tests/DialogWireTests/Fixtures/golden.json"
echo "wrote Tests/DialogWireTests/Fixtures/golden.json"
