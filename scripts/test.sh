#!/usr/bin/env bash
# Runs every test. On a fresh Debian machine it installs what is missing, starts the real
# servers the tests need (moto_server as a DynamoDB-compatible endpoint on a free loopback
# port), runs the unit/integration suite, the system suite against the release binary, the
# OpenAPI contract (schemathesis) on both stores, and the unit suite again under TSan and
# ASan, then stops the servers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps
ensure_packages curl

# A venv with boto3, moto's server and Google's protobuf (to read what we stored with
# protoc-generated code). --system-site-packages reuses what the machine already has.
VENV="$ROOT/.build-venv"
[[ -x "$VENV/bin/python" ]] || python3 -m venv --system-site-packages "$VENV"
# schemathesis and openapi-spec-validator check the service against openapi.yaml.
"$VENV/bin/python" -c 'import boto3, moto.server, flask_cors, google.protobuf, grpc_tools, schemathesis, openapi_spec_validator' 2>/dev/null \
  || "$VENV/bin/pip" install -q "moto[server]" boto3 protobuf grpcio-tools schemathesis openapi-spec-validator
GEN="$ROOT/.build-venv/gen"
mkdir -p "$GEN"
"$VENV/bin/python" -m grpc_tools.protoc -I"$ROOT/proto" --python_out="$GEN" "$ROOT/proto/dialog.proto"

MOTO_PORT="$(free_port)"
"$VENV/bin/python" scripts/moto_serial.py 127.0.0.1 "$MOTO_PORT" >"$ROOT/.build-venv/moto.log" 2>&1 &
MOTO_PID=$!
PROXY_PID=""
trap 'kill $MOTO_PID $PROXY_PID 2>/dev/null || true' EXIT
wait_http "http://127.0.0.1:$MOTO_PORT/" || { echo "moto_server did not start" >&2; cat "$ROOT/.build-venv/moto.log" >&2; exit 1; }

export MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export CHECK_PYTHON="$VENV/bin/python"
export CHECK_PYTHONPATH="$GEN"
# DynamoDB tests must run here, not skip: the suite fails if they are skipped.
export REQUIRE_DYNAMODB=1

LOGS="$(mktemp -d)"
# XCTest's closing line of a run: "Executed N tests, with [S tests skipped and] F failures".
xctest_counts() { grep -E "^[[:space:]]*Executed [0-9]+ tests?, with" "$1" | tail -1 \
  | sed -E 's/.*Executed ([0-9]+) tests?, with (([0-9]+) tests? skipped and )?([0-9]+) failures?.*/\1:\3:\4/'; }
PASSED=0; FAILED=0
tally() { # LOG: add that run's passed/failed to the totals
  # ':'-separated so an absent skip count stays an empty field (with spaces, `read` would
  # shift the failure count into the skip count and hide it).
  local n s f
  IFS=: read -r n s f <<<"$(xctest_counts "$1")"
  [[ -n "$n" ]] || { echo "no XCTest summary in $1" >&2; FAILED=$((FAILED + 1)); return; }
  PASSED=$((PASSED + n - ${s:-0} - ${f:-0})); FAILED=$((FAILED + ${f:-0}))
}

# 1. Unit and integration tests (real sockets, SQLite files, moto).
swift build --build-tests
swift test --skip-build --disable-swift-testing 2>&1 | tee "$LOGS/unit.log"
tally "$LOGS/unit.log"

# 1b. Signatures verified, not assumed: moto accepts any SigV4 signature, so the DynamoDB store
#     and outbox contract suites run again through scripts/sigv4_proxy.py, which recomputes every
#     request's signature with botocore (as AWS would) and rejects mismatches. Once with plain
#     keys, once with a session token (temporary credentials; the proxy then requires the
#     token, signed). Each run also fails unless the proxy verified some requests and rejected
#     none. Credentials the tests sign with against moto: test/test (Moto.client, the service),
#     k/s (DynamoDBAmbiguityTests, through their own Host-rewriting proxy, so not run here).
"$VENV/bin/python" scripts/sigv4_proxy.py --self-test >"$LOGS/sigv4-self-test.log" 2>&1 \
  && { PASSED=$((PASSED + 1)); echo "sigv4_proxy self-test passed"; } \
  || { FAILED=$((FAILED + 1)); cat "$LOGS/sigv4-self-test.log"; echo "sigv4_proxy self-test FAILED"; }
SIGV4_TOKEN="FwoGZXIvYXdzEXAMPLE/session+token=="
for variant in plain token; do
  if [[ "$variant" == token ]]; then creds="test:test:$SIGV4_TOKEN"; token="$SIGV4_TOKEN"; else creds="test:test,k:s"; token=""; fi
  PROXY_PORT="$(free_port)"
  "$VENV/bin/python" scripts/sigv4_proxy.py "$MOTO_ENDPOINT" 127.0.0.1 "$PROXY_PORT" --credentials "$creds" \
    >"$LOGS/sigv4-proxy-$variant.log" 2>&1 &
  PROXY_PID=$!
  wait_http "http://127.0.0.1:$PROXY_PORT/__sigv4_proxy__/stats" || { echo "sigv4_proxy did not start" >&2; cat "$LOGS/sigv4-proxy-$variant.log" >&2; exit 1; }
  # A failure is tallied (and the proxy's rejections shown) rather than ending the run.
  env MOTO_ENDPOINT="http://127.0.0.1:$PROXY_PORT" ${token:+MOTO_SESSION_TOKEN="$token"} \
    swift test --skip-build --disable-swift-testing --filter 'SessionStoreTests.DynamoDBStoreTests|SessionStoreTests.DynamoDBRestoreOutboxTests|SessionServiceTests.KMSKeyTests' 2>&1 \
    | tee "$LOGS/sigv4-$variant.log" || true
  tally "$LOGS/sigv4-$variant.log"
  kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true; PROXY_PID=""
  summary="$(grep -E '^sigv4_proxy: [0-9]+ accepted, [0-9]+ rejected' "$LOGS/sigv4-proxy-$variant.log" | tail -1)"
  read -r accepted rejected <<<"$(sed -E 's/^sigv4_proxy: ([0-9]+) accepted, ([0-9]+) rejected.*/\1 \2/' <<<"$summary")"
  echo "${summary:-sigv4_proxy: no summary} [$variant]"
  if [[ "${accepted:-0}" -gt 0 && "${rejected:-1}" -eq 0 ]]; then PASSED=$((PASSED + 1)); else
    FAILED=$((FAILED + 1)); grep -A40 REJECTED "$LOGS/sigv4-proxy-$variant.log" | head -200 || true
  fi
done

# 2. System tests: the release binary as real processes (scripts/system_test.py).
swift build -c release --product cognigy-session
python3 scripts/system_test.py --binary .build/release/cognigy-session --moto-endpoint "$MOTO_ENDPOINT" \
  | tee "$LOGS/system.log"
read -r sp sf <<<"$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGS/system.log" | tail -1 | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1 \2/')"
PASSED=$((PASSED + sp)); FAILED=$((FAILED + sf))

# 2b. The container files, without a Docker engine: hadolint, docker-compose config, and the
#     release binary's shared libraries against the Dockerfile's runtime packages.
bash scripts/check_container.sh --binary .build/release/cognigy-session --venv "$ROOT/.build-container-venv" | tee "$LOGS/container.log"
read -r cp cf <<<"$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGS/container.log" | tail -1 | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1 \2/')"
PASSED=$((PASSED + ${cp:-0})); FAILED=$((FAILED + ${cf:-1}))

# 3. The API contract: openapi.yaml validated, then schemathesis against the release binary
#    on each store (scripts/openapi_test.sh): every response must match the document.
for store in sqlite dynamodb; do
  bash scripts/openapi_test.sh --binary .build/release/cognigy-session --store "$store" --moto-endpoint "$MOTO_ENDPOINT" \
    | tee "$LOGS/openapi-$store.log"
  read -r op of <<<"$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGS/openapi-$store.log" | tail -1 | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1 \2/')"
  PASSED=$((PASSED + ${op:-0})); FAILED=$((FAILED + ${of:-1}))
done

# Fuzzing: each libFuzzer target (scripts/fuzz.sh) for FUZZ_SECONDS (default 20, 0 skips)
# on its seed corpus; a target that crashes or breaks an invariant counts as one failure.
if [[ "${FUZZ_SECONDS:-20}" != "0" ]]; then
  for target in fuzz-http fuzz-protobuf fuzz-json fuzz-event; do
    if bash scripts/fuzz.sh "$target" "${FUZZ_SECONDS:-20}"; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
  done
fi

# 4. The same unit tests under ThreadSanitizer and AddressSanitizer (XCTest itself leaks,
#    so leak detection is off). SKIP_SANITIZERS=1 skips this step for a quick local run.
if [[ "${SKIP_SANITIZERS:-0}" != "1" ]]; then
  swift test --sanitize=thread --scratch-path .build-tsan --disable-swift-testing 2>&1 | tee "$LOGS/tsan.log"
  tally "$LOGS/tsan.log"
  ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=address --scratch-path .build-asan --disable-swift-testing 2>&1 \
    | tee "$LOGS/asan.log"
  tally "$LOGS/asan.log"
fi
rm -rf "$LOGS"
# One closing line for the whole run (unit ×3 with the sanitizers, system scenarios, API contract).
echo "all: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
