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
# type, to produce bytes with unknown fields the way real protoc code writes them.
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
  double score = 9;
  fixed32 flags = 10;
  Nested nested = 11;
  repeated int64 numbers = 12;
  sfixed64 big = 13;
  bytes blob = 536870911;
}
PROTO
"$VENV/bin/python" -m grpc_tools.protoc -I"$WORK" --python_out="$WORK" "$WORK/dialog.proto" "$WORK/future.proto"
PROTO_DIR="$WORK" PYTHONPATH="$WORK" "$VENV/bin/python" "$ROOT/scripts/golden_vectors.py" > "$ROOT/Tests/DialogWireTests/Fixtures/golden.json"
echo "wrote Tests/DialogWireTests/Fixtures/golden.json"
