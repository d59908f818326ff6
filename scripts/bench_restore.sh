#!/usr/bin/env bash
# The latency a restore adds to the webhook: the same channel-switch load
# (scripts/bench/webhook_switch.lua) with Cognigy off, then with a local fake Cognigy that
# answers at once (scripts/fake_cognigy.py). Prints two RESULT lines.
#   scripts/bench_restore.sh [DURATION_S=10] [CONNECTIONS=32]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps
ensure_packages wrk
swift build -c release --product cognigy-session >&2
FAKE_PORT=$(free_port)
python3 scripts/fake_cognigy.py "$FAKE_PORT" --quiet & FAKE=$!
trap 'kill $FAKE 2>/dev/null || true' EXIT
for mode in off on; do
  DATA=$(mktemp -d); PORT=$(free_port)
  extra=()
  [[ $mode == on ]] && extra=(COGNIGY_API_BASE_URL="http://127.0.0.1:$FAKE_PORT" COGNIGY_API_KEY=bench)
  env HOST=127.0.0.1 PORT="$PORT" SQLITE_PATH="$DATA/s.sqlite" OUTBOX_PATH="$DATA/o.sqlite" LOG_LEVEL=error "${extra[@]}" \
    "$ROOT/.build/release/cognigy-session" 2>"$DATA/log" & PID=$!
  wait_http "http://127.0.0.1:$PORT/health" -f || { echo "the service did not start:" >&2; cat "$DATA/log" >&2; exit 1; }
  RESULT_NAME="restore_$mode" wrk -t1 -c"${2:-32}" -d"${1:-10}s" --timeout 5s -s scripts/bench/webhook_switch.lua \
    "http://127.0.0.1:$PORT/webhook/dialog" | grep '^RESULT'
  kill -TERM $PID; wait $PID || true; rm -rf "$DATA"
done
