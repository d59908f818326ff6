#!/usr/bin/env bash
# What a DynamoDB round trip costs the webhook, and what the snapshot cache saves: the
# service on DynamoDB (moto) behind scripts/latency_proxy.py adding DELAY_MS (default 5,
# about AWS in-region) to every request, with SNAPSHOT_CACHE_ENTRIES on (the default) and
# off, under the unique-event webhook load over 1000 conversations. Prints one RESULT line
# per mode and the DynamoDB requests per event from the service's own metrics.
#   scripts/bench_dynamodb.sh [DURATION_S=10] [CONNECTIONS=1]
# One connection by default: moto serves one request at a time, so more connections measure
# its queue, not the round trips.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps
ensure_packages wrk curl
swift build -c release --product cognigy-session >&2
DELAY_MS="${DELAY_MS:-5}"
# Conversations the load rotates over (fewer than the shared harness's 1000, so each gets
# several events in a short run at moto's pace).
export WEBHOOK_IDS="${WEBHOOK_IDS:-100}"
MOTO_PORT=$(free_port); PROXY_PORT=$(free_port)
python3 scripts/moto_serial.py 127.0.0.1 "$MOTO_PORT" >/dev/null 2>&1 & MOTO=$!
python3 scripts/latency_proxy.py "$PROXY_PORT" 127.0.0.1 "$MOTO_PORT" "$DELAY_MS" & PROXY=$!
trap 'kill $MOTO $PROXY 2>/dev/null || true' EXIT
wait_http "http://127.0.0.1:$MOTO_PORT/" || true
for mode in on off; do
  DATA=$(mktemp -d); PORT=$(free_port); TABLE="bench-$mode-$RANDOM"
  cache=(); [[ $mode == off ]] && cache=(SNAPSHOT_CACHE_ENTRIES=0)
  env HOST=127.0.0.1 PORT="$PORT" SESSION_STORE=dynamodb AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$PROXY_PORT" \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench DYNAMODB_TABLE="$TABLE" DYNAMODB_LINKS_TABLE="$TABLE-links" \
    DYNAMODB_CREATE_TABLE=true OUTBOX_PATH="$DATA/o.sqlite" LOG_LEVEL=error ACCESS_LOG=false "${cache[@]}" \
    "$ROOT/.build/release/cognigy-session" 2>"$DATA/log" & PID=$!
  wait_http "http://127.0.0.1:$PORT/ready" -f || { echo "the service did not start:" >&2; cat "$DATA/log" >&2; exit 1; }
  count() { # METRIC-PREFIX: the sum of the service's counters whose line starts with it
    curl -s "http://127.0.0.1:$PORT/metrics" | awk -v p="$1" 'index($0, p) == 1 {s += $NF} END {print s + 0}'
  }
  # Warm-up: every conversation gets its first event (a cache miss) before the measurement.
  wrk -t1 -c"${2:-1}" -d"${WARMUP_S:-3}s" --timeout 5s -s scripts/bench/webhook_unique.lua \
    "http://127.0.0.1:$PORT/webhook/dialog" >/dev/null
  requests_before=$(count 'cognigy_session_dynamodb_requests_total{')
  events_before=$(count 'cognigy_session_http_requests_total{route="/webhook/dialog"')
  out=$(RESULT_NAME="dynamodb_cache_$mode" wrk -t1 -c"${2:-1}" -d"${1:-10}s" --timeout 5s -s scripts/bench/webhook_unique.lua \
    "http://127.0.0.1:$PORT/webhook/dialog")
  requests=$(( $(count 'cognigy_session_dynamodb_requests_total{') - requests_before ))
  events=$(( $(count 'cognigy_session_http_requests_total{route="/webhook/dialog"') - events_before ))
  per_event=$(awk -v r="$requests" -v e="$events" 'BEGIN {printf "%.3f", e ? r / e : 0}')
  echo "$out" | grep '^RESULT' | sed "s/\$/ dynamodb_requests_per_event=$per_event delay_ms=$DELAY_MS/"
  kill -TERM $PID; wait $PID || true; rm -rf "$DATA"
done
