# Shared by scripts/*.sh: find the Swift toolchain and install missing Debian packages.

# Swift may live outside PATH on a fresh machine.
if ! command -v swift >/dev/null 2>&1; then
  for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [[ -x "$d/swift" ]] && export PATH="$d:$PATH" && break
  done
fi
command -v swift >/dev/null 2>&1 || { echo "swift not found: install Swift 6 (https://swift.org/install)" >&2; exit 1; }

# ensure_packages PKG...: apt-get installs whichever are missing (once per run).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# free_port: prints a TCP port that is free on loopback now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL [CURL_OPTION...]: retries for up to 10 s until curl succeeds on URL (any
# HTTP answer; add -f to wait for a 2xx). Fails if it never does.
wait_http() {
  local url="$1"; shift
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  return 1
}

# The C libraries the package links (SQLite; libcurl for the HTTP client; OpenSSL's
# libcrypto for AES-256-GCM and HMAC in the Crypto target).
ensure_build_deps() {
  ensure_packages libsqlite3-dev libcurl4-openssl-dev libssl-dev
}
