#!/usr/bin/env bash
# Benchmarks cognigy-session on the SQLite store with the shared wrk harness:
#   scripts/bench.sh [DURATION_S=10] [CONNECTIONS=32]
# Starts a release build on a free loopback port with a fresh database, runs
# ../shared/bench/http_load.sh (GET /health, then POST /webhook/dialog over 1000
# conversations), then ../shared/bench/sqlite_limit.py (the raw SQLite floor).
# Then scripts/bench/webhook_unique.lua: the same webhook load with a unique eventId per
# request. The shared script re-sends identical events, which SPEC's de-duplication answers
# without writing; the unique variant measures the write path.
# Prints the RESULT lines. Set BENCH_DIR to use another copy of the harness.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps
ensure_packages wrk curl
BENCH_DIR="${BENCH_DIR:-$ROOT/../shared/bench}"
[[ -x "$BENCH_DIR/http_load.sh" || -r "$BENCH_DIR/http_load.sh" ]] || { echo "no harness at $BENCH_DIR" >&2; exit 2; }
swift build -c release --product cognigy-session >&2
DATA="$(mktemp -d)"
PORT="${PORT:-$(free_port)}"
HOST=127.0.0.1 PORT="$PORT" SQLITE_PATH="$DATA/sessions.sqlite" OUTBOX_PATH="$DATA/outbox.sqlite" LOG_LEVEL=warn \
  "$ROOT/.build/release/cognigy-session" 2>"$DATA/server.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
bash "$BENCH_DIR/http_load.sh" "http://127.0.0.1:$PORT" "${1:-10}" "${2:-32}"
wrk -t1 -c"${2:-32}" -d"${1:-10}s" --timeout 5s -s "$ROOT/scripts/bench/webhook_unique.lua" \
  "http://127.0.0.1:$PORT/webhook/dialog" | grep '^RESULT'
kill -TERM $PID; wait $PID || true
python3 "$BENCH_DIR/sqlite_limit.py"
