#!/usr/bin/env bash
# The API contract test: validates openapi.yaml, then lets schemathesis exercise the real
# release binary with every check it has (responses match the document, status codes and
# headers documented, schema-valid requests accepted, invalid ones rejected, no 5xx,
# auth enforced, deleted sessions stay deleted, undocumented methods answer 405).
#
#   scripts/openapi_test.sh --binary PATH [--store sqlite|dynamodb --moto-endpoint URL]
#
# Needs the venv scripts/test.sh builds (schemathesis, openapi-spec-validator, and the
# protoc-generated dialog_pb2 in CHECK_PYTHONPATH for protobuf bodies).
# SCHEMATHESIS_MAX_EXAMPLES (default 100) and SCHEMATHESIS_SEED (default fixed, so CI is
# repeatable; set another to explore) tune the run; SCHEMATHESIS_EXTRA adds options (for
# example "--report har --report-har-path /tmp/run.har" to keep every exchange).
# Ends with one line "N passed, M failed" (one per operation, plus the stateful phase,
# the document's validation, and the service still being up).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
VENV="${VENV:-$ROOT/.build-venv}"
PY="$VENV/bin/python"
BINARY="" STORE=sqlite MOTO=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --store) STORE="$2"; shift 2 ;;
    --moto-endpoint) MOTO="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$BINARY" ]] || { echo "--binary must name the built cognigy-session" >&2; exit 2; }
export CHECK_PYTHONPATH="${CHECK_PYTHONPATH:-$VENV/gen}"

PASSED=0 FAILED=0
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# 1. The document itself is valid OpenAPI 3.1.
if "$PY" -m openapi_spec_validator "$ROOT/openapi.yaml"; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi

# 2. A local Cognigy so restores are really delivered (answers "sent"), and the service
#    with both keys set, so the document's security is what is tested.
COGNIGY_PORT="$(free_port)"
"$PY" "$ROOT/scripts/fake_cognigy.py" "$COGNIGY_PORT" --quiet >"$WORK/cognigy.log" 2>&1 &
PIDS+=($!)
PORT="$(free_port)"
export WEBHOOK_KEY="wk-$RANDOM$RANDOM" ADMIN_TOKEN="adm-$RANDOM$RANDOM"
printf '{}' >"$WORK/empty.json"  # no config/default.json: the defaults the document states
SERVICE_ENV=(HOST=127.0.0.1 PORT="$PORT" SQLITE_PATH="$WORK/sessions.sqlite" OUTBOX_PATH="$WORK/outbox.sqlite"
  WEBHOOK_API_KEY="$WEBHOOK_KEY" ADMIN_TOKEN="$ADMIN_TOKEN" COGNIGY_API_BASE_URL="http://127.0.0.1:$COGNIGY_PORT"
  COGNIGY_API_KEY=contract-test RESTORE_INLINE_TIMEOUT_MS=2000 LOG_LEVEL=warn CONFIG_FILE="$WORK/empty.json")
if [[ "$STORE" == dynamodb ]]; then
  [[ -n "$MOTO" ]] || { echo "--store dynamodb needs --moto-endpoint" >&2; exit 2; }
  SERVICE_ENV+=(SESSION_STORE=dynamodb AWS_ENDPOINT_URL_DYNAMODB="$MOTO" AWS_ACCESS_KEY_ID=test
    AWS_SECRET_ACCESS_KEY=test DYNAMODB_TABLE="contract-$RANDOM$RANDOM" DYNAMODB_CREATE_TABLE=true)
fi
env "${SERVICE_ENV[@]}" "$BINARY" 2>"$WORK/service.log" &
SERVICE_PID=$!
PIDS+=($SERVICE_PID)
wait_http "http://127.0.0.1:$PORT/ready" -f || { echo "service did not become ready" >&2; cat "$WORK/service.log" >&2; exit 1; }

# 3. schemathesis: every phase (examples, coverage, fuzzing, stateful through the
#    document's links), every check.
export PYTHONPATH="$ROOT/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks
# Run from the temp folder: schemathesis and hypothesis keep caches in the working directory.
set +e
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$ROOT/openapi.yaml" \
  --url "http://127.0.0.1:$PORT" --checks all --workers 1 \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" --seed "${SCHEMATHESIS_SEED:-20261121}" \
  --report junit --report-junit-path "$WORK/junit.xml" --output-truncate false ${SCHEMATHESIS_EXTRA:-})
ST_RC=$?
set -e
read -r tests failures errors < <("$PY" - "$WORK/junit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
    print(root.get("tests", 0), root.get("failures", 0), root.get("errors", 0))
except Exception:
    print(0, 0, 1)
EOF
)
if [[ "$ST_RC" -ne 0 && "$failures" -eq 0 && "$errors" -eq 0 ]]; then errors=1; fi
PASSED=$((PASSED + tests - failures - errors)); FAILED=$((FAILED + failures + errors))

# 4. The service survived all of it and still answers.
if kill -0 "$SERVICE_PID" 2>/dev/null && curl -fs -o /dev/null "http://127.0.0.1:$PORT/health"; then
  PASSED=$((PASSED + 1))
else
  FAILED=$((FAILED + 1))
  status=0; kill -0 "$SERVICE_PID" 2>/dev/null || { wait "$SERVICE_PID" || status=$?; }
  # 128+N: killed by signal N (15 TERM from outside, 11 SEGV, 6 ABRT from a Swift trap).
  echo "the service is no longer running (wait status $status); its log:" >&2; tail -50 "$WORK/service.log" >&2
fi
echo "openapi ($STORE): schemathesis exit $ST_RC"
echo "$PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
