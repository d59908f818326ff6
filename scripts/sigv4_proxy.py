#!/usr/bin/env python3
"""A test proxy that checks the AWS SigV4 signature of every request, as AWS would.

Why: moto and DynamoDB Local never check signatures, so nothing else proves that real AWS
accepts what libcurl's CURLOPT_AWS_SIGV4 produces (libcurl has had bugs signing headers it
then does not send, e.g. a suppressed `Expect:`). This proxy sits in front of moto and, for
each request, rebuilds the canonical request from exactly the bytes that arrived (method,
path and query, the header lines named in SignedHeaders, the body), signs it with botocore's
own SigV4Auth using the request's X-Amz-Date and the secret of its access key, and compares.
A mismatch gets AWS's InvalidSignatureException (HTTP 400) and the canonical request it
computed on stderr; a match is forwarded unchanged (minus hop-by-hop headers) upstream, and
the answer relayed. The service and region come from the credential scope, so DynamoDB, KMS,
STS (or anything else SigV4-signed) are checked alike.

Also checked: every header in SignedHeaders is present (once per line as sent), SignedHeaders
is in canonical form and includes host and x-amz-date, the scope's date is X-Amz-Date's and
that is within --max-skew of now, a present X-Amz-Security-Token is signed (and, when the
access key was given with a token, present and equal to it), and a present
X-Amz-Content-SHA256 is the body's hash.

Usage:
  sigv4_proxy.py UPSTREAM_URL HOST PORT [--credentials AKID:SECRET[:TOKEN][,...]]
  sigv4_proxy.py --self-test
Credentials may also come from SIGV4_PROXY_CREDENTIALS (same format). On SIGTERM/SIGINT it
prints `sigv4_proxy: N accepted, M rejected` (and per-service counts) to stderr and exits.
GET /__sigv4_proxy__/stats answers the counts as JSON (not counted itself).
"""
import argparse
import datetime
import hashlib
import http.client
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
              "te", "trailer", "transfer-encoding", "upgrade", "expect"}
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 +Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request\s*,\s*"
    r"SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})$")
DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
STATS_PATH = "/__sigv4_proxy__/stats"
MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")


class VerifyingSigV4Auth(SigV4Auth):
    """botocore's signer, made to verify: the headers signed are exactly those the request
    names in SignedHeaders (botocore would otherwise pick its own set, e.g. drop user-agent,
    add host), and the timestamp is the request's X-Amz-Date, not now."""

    def __init__(self, credentials, service, region, signed_header_names, timestamp):
        super().__init__(credentials, service, region)
        self._names = signed_header_names
        self._timestamp = timestamp

    def headers_to_sign(self, request):
        chosen = HTTPHeaders()
        for name in self._names:
            for value in request.headers.get_all(name) or []:
                chosen[name] = value
        return chosen

    def compute(self, request):
        request.context["timestamp"] = self._timestamp
        canonical = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical)
        return canonical, string_to_sign, self.signature(string_to_sign, request)


class Rejected(Exception):
    def __init__(self, message, canonical=None, status=400, kind="InvalidSignatureException"):
        super().__init__(message)
        self.message, self.canonical, self.status, self.kind = message, canonical, status, kind


def parse_head(raw_head):
    """Header lines exactly as sent: [(name, value)] in order, values with their outer
    whitespace stripped only (SigV4 trims and collapses them anyway)."""
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise Rejected("obsolete line folding in the request head", status=400, kind="BadRequest")
        name, sep, value = line.partition(":")
        if not sep:
            raise Rejected(f"malformed header line {line!r}", status=400, kind="BadRequest")
        headers.append((name, value.strip(" \t")))
    return lines[0], headers


def verify(method, target, headers, body, credentials, max_skew, now=None):
    """Returns (access key, service, has token) if the signature is AWS-valid; raises Rejected."""
    by_name = {}
    for name, value in headers:
        by_name.setdefault(name.lower(), []).append(value)
    auth = by_name.get("authorization", [])
    if not auth:
        raise Rejected("Missing Authentication Token", status=403, kind="MissingAuthenticationTokenException")
    if len(auth) > 1:
        raise Rejected("more than one Authorization header", kind="IncompleteSignatureException")
    m = AUTH_RE.match(auth[0].strip())
    if not m:
        raise Rejected(f"Authorization header is not AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…: "
                       f"{auth[0]!r}", kind="IncompleteSignatureException")
    akid, scope_date, region, service, signed, given = m.groups()
    names = signed.split(";")
    if names != sorted(set(names)) or any(n != n.lower() or not n for n in names):
        raise Rejected(f"SignedHeaders {signed!r} is not lowercase, sorted and unique", kind="IncompleteSignatureException")
    for required in ("host", "x-amz-date"):
        if required not in names:
            raise Rejected(f"'{required}' must be a signed header (SignedHeaders={signed})", kind="IncompleteSignatureException")
    if akid not in credentials:
        raise Rejected(f"The security token included in the request is invalid (unknown access key {akid!r}).",
                       status=400, kind="UnrecognizedClientException")
    secret, token = credentials[akid]
    amz_date = by_name["x-amz-date"]
    if len(amz_date) != 1 or not DATE_RE.match(amz_date[0]):
        raise Rejected(f"X-Amz-Date must appear once as YYYYMMDDTHHMMSSZ, got {amz_date}")
    amz_date = amz_date[0]
    if scope_date != amz_date[:8]:
        raise Rejected(f"Credential scope date {scope_date} is not X-Amz-Date's {amz_date[:8]}")
    stamp = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs((now - stamp).total_seconds()) > max_skew:
        raise Rejected(f"Signature expired: {amz_date} is more than {max_skew}s from {now:%Y%m%dT%H%M%SZ}")
    sent_token = by_name.get("x-amz-security-token")
    if sent_token is not None and "x-amz-security-token" not in names:
        raise Rejected("X-Amz-Security-Token is sent but not signed")
    if token is not None and sent_token != [token]:
        raise Rejected("The security token included in the request is invalid (expected the session token of "
                       f"{akid!r}, got {'none' if sent_token is None else 'another'}).", kind="UnrecognizedClientException")
    sha = by_name.get("x-amz-content-sha256")
    if sha is not None and (len(sha) != 1 or sha[0] != hashlib.sha256(body).hexdigest()):
        raise Rejected(f"X-Amz-Content-SHA256 {sha} is not the body's SHA-256 {hashlib.sha256(body).hexdigest()}")

    # An AWSRequest rebuilt from what arrived; only the signed names are read from it.
    def sign(extra=()):
        wire = HTTPHeaders()
        for name, value in list(headers) + list(extra):
            wire[name.lower()] = value
        request = AWSRequest(method=method, url=f"http://{by_name['host'][0]}{target}", headers=wire, data=body)
        return VerifyingSigV4Auth(Credentials(akid, secret, token), service, region, names, amz_date).compute(request)

    missing = [n for n in names if n not in by_name]
    if missing:
        # AWS answers this with a mismatch too. Say whether the client signed them as empty
        # headers it then did not send (libcurl < 8.3 does that with a suppressed "Expect:").
        canonical, string_to_sign, as_empty = sign((n, "") for n in missing)
        why = (" The signature given is over these headers with empty values: the client signed headers it did "
               "not send." if as_empty == given else "")
        raise Rejected(f"SignedHeaders lists {missing} but the request does not carry them (SignedHeaders={signed}).{why}",
                       canonical=f"{canonical}\n--- (with {missing} as empty headers)")
    canonical, string_to_sign, expected = sign()
    if expected != given:
        raise Rejected(MISMATCH, canonical=f"{canonical}\n--- string to sign ---\n{string_to_sign}\n"
                                           f"--- signature expected {expected}, given {given}")
    return akid, service, sent_token is not None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0
        self.by_service = {}

    def add(self, ok, service=None, token=False):
        with self.lock:
            if ok:
                self.accepted += 1
                key = f"{service}+token" if token else service
                self.by_service[key] = self.by_service.get(key, 0) + 1
            else:
                self.rejected += 1

    def snapshot(self):
        with self.lock:
            return {"accepted": self.accepted, "rejected": self.rejected, "byService": dict(self.by_service)}

    def summary(self):
        s = self.snapshot()
        services = ", ".join(f"{k}={v}" for k, v in sorted(s["byService"].items())) or "none"
        return f"sigv4_proxy: {s['accepted']} accepted, {s['rejected']} rejected (accepted by service: {services})"


class RecordingReader:
    """Wraps the connection's rfile and keeps every byte read, so the request head is seen
    exactly as it arrived."""

    def __init__(self, raw):
        self.raw, self.buf = raw, bytearray()

    def readline(self, *a):
        line = self.raw.readline(*a)
        self.buf += line
        return line

    def read(self, *a):
        data = self.raw.read(*a)
        self.buf += data
        return data

    def __getattr__(self, name):
        return getattr(self.raw, name)


def make_handler(upstream, credentials, stats, max_skew, log):
    up = urllib.parse.urlsplit(upstream)
    up_conn = http.client.HTTPSConnection if up.scheme == "https" else http.client.HTTPConnection

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as libcurl expects
        disable_nagle_algorithm = True  # head and body are separate writes: no 40 ms stalls

        def setup(self):
            super().setup()
            self.rfile = RecordingReader(self.rfile)

        def handle_one_request(self):
            self.rfile.buf.clear()
            super().handle_one_request()

        def handle_expect_100(self):
            # Checked later, on the whole request; say continue so the body comes.
            return super().handle_expect_100()

        def log_message(self, fmt, *args):
            if log:
                sys.stderr.write("sigv4_proxy: " + (fmt % args) + "\n")

        def _read_body(self):
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _answer(self, status, headers, body):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self):
            head_end = bytes(self.rfile.buf).find(b"\r\n\r\n")
            raw_head = bytes(self.rfile.buf[:head_end if head_end >= 0 else len(self.rfile.buf)])
            body = self._read_body()
            if self.command == "GET" and self.path == STATS_PATH:
                return self._answer(200, [("Content-Type", "application/json")], json.dumps(stats.snapshot()).encode())
            try:
                request_line, headers = parse_head(raw_head)
                method, target = request_line.split(" ")[0], request_line.split(" ")[1]
                akid, service, token = verify(method, target, headers, body, credentials, max_skew)
            except Rejected as e:
                stats.add(False)
                sys.stderr.write(f"sigv4_proxy: REJECTED {self.command} {self.path}: {e.message}\n"
                                 f"--- request head as received ---\n{raw_head.decode('latin-1')}\n"
                                 f"--- body sha256 {hashlib.sha256(body).hexdigest()} ({len(body)} bytes)\n")
                if e.canonical:
                    sys.stderr.write(f"--- canonical request computed ---\n{e.canonical}\n")
                sys.stderr.flush()
                msg = json.dumps({"__type": f"com.amazon.coral.service#{e.kind}", "message": e.message}).encode()
                return self._answer(e.status, [("Content-Type", "application/x-amz-json-1.0"),
                                               ("x-amzn-ErrorType", f"{e.kind}:")], msg)
            stats.add(True, service, token)
            path = (up.path.rstrip("/") + target) if up.path not in ("", "/") else target
            # One keep-alive upstream connection per client connection; a reused one the
            # upstream has meanwhile closed is retried once on a fresh one (nothing was sent).
            for attempt in (0, 1):
                reused = getattr(self, "_upstream", None) is not None
                if not reused:
                    self._upstream = up_conn(up.hostname, up.port, timeout=60)
                    try:
                        self._upstream.connect()
                        self._upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    except OSError as e:
                        self._close_upstream()
                        return self._answer(502, [("Content-Type", "text/plain")], f"upstream: {e}".encode())
                conn = self._upstream
                try:
                    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                    chunked = False
                    for name, value in headers:
                        lname = name.lower()
                        if lname in HOP_BY_HOP:
                            chunked |= lname == "transfer-encoding"
                            continue
                        conn.putheader(name, value)
                    if chunked:
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body if body else None)
                    answer = conn.getresponse()
                    data = answer.read()
                    if answer.will_close:
                        self._close_upstream()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                    self._close_upstream()
                    if reused and attempt == 0:
                        continue
                    return self._answer(502, [("Content-Type", "text/plain")], f"upstream: {e}".encode())
                except OSError as e:
                    self._close_upstream()
                    return self._answer(502, [("Content-Type", "text/plain")], f"upstream: {e}".encode())
                relay = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
                return self._answer(answer.status, relay, data)

        def _close_upstream(self):
            if getattr(self, "_upstream", None) is not None:
                self._upstream.close()
                self._upstream = None

        def finish(self):
            self._close_upstream()
            super().finish()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def parse_credentials(text):
    out = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        parts = item.split(":", 2)
        if len(parts) < 2:
            raise SystemExit(f"credentials entry {item!r} is not AKID:SECRET[:TOKEN]")
        out[parts[0]] = (parts[1], parts[2] if len(parts) == 3 else None)
    return out


def serve(upstream, host, port, credentials, max_skew=900, log=False):
    stats = Stats()
    server = Server((host, port), make_handler(upstream, credentials, stats, max_skew, log))
    return server, stats


# ---------------------------------------------------------------------------------------------
# Self-test: the proxy must accept botocore's own signatures and reject every kind of tampering.

def _self_test():
    import subprocess

    class Upstream(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            out = json.dumps({"echo": hashlib.sha256(body).hexdigest()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST

        def log_message(self, *a):
            pass

    upstream = Server(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    creds = {"AKIDPLAIN": ("plain-secret", None), "AKIDTEMP": ("temp-secret", "the-session-token")}
    server, stats = serve(f"http://127.0.0.1:{upstream.server_address[1]}", "127.0.0.1", 0, creds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    host = f"127.0.0.1:{port}"

    def signed(akid="AKIDPLAIN", secret=None, token=None, service="dynamodb", body=b'{"TableName":"T"}',
               target="DynamoDB_20120810.GetItem", extra=(), path="/"):
        secret = secret or creds[akid][0]
        token = token if token is not None else creds[akid][1]
        req = AWSRequest(method="POST", url=f"http://{host}{path}", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target, **dict(extra)})
        SigV4Auth(Credentials(akid, secret, token), service, "us-east-1").add_auth(req)
        return [("Host", host)] + list(req.headers.items()), body, path

    def send(headers, body, path="/"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def replace(headers, name, value):
        return [(k, value if k.lower() == name.lower() else v) for k, v in headers]

    def drop(headers, name):
        return [(k, v) for k, v in headers if k.lower() != name.lower()]

    cases = []
    h, b, p = signed()
    cases.append(("botocore-signed, no token", h, b, p, 200))
    h2, b2, p2 = signed("AKIDTEMP")
    cases.append(("botocore-signed, session token", h2, b2, p2, 200))
    h3, b3, p3 = signed(service="kms", target="TrentService.Encrypt")
    cases.append(("botocore-signed kms", h3, b3, p3, 200))
    h4, b4, p4 = signed("AKIDTEMP", service="sts", body=b"Action=GetCallerIdentity&Version=2011-06-15",
                        target="x", path="/?a=1&b=two")
    cases.append(("botocore-signed sts with query, token", h4, b4, p4, 200))
    cases.append(("changed body", h, b'{"TableName":"U"}', p, 400))
    cases.append(("changed signed header value", replace(h, "X-Amz-Target", "DynamoDB_20120810.PutItem"), b, p, 400))
    cases.append(("header value re-spaced (same after trimming) still valid",
                  replace(h, "X-Amz-Target", "  DynamoDB_20120810.GetItem "), b, p, 200))
    cases.append(("changed path", h, b, "/other", 400))
    # libcurl's old bug: "expect:" signed (empty) though the suppressed header is never sent.
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    hx = [("Host", host), ("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Date", amz_date),
          ("X-Amz-Target", "DynamoDB_20120810.GetItem")]
    names = ["content-type", "expect", "host", "x-amz-date", "x-amz-target"]
    req = AWSRequest(method="POST", url=f"http://{host}/", data=b, headers=HTTPHeaders())
    for k, v in hx + [("Expect", "")]:
        req.headers[k.lower()] = v
    _, _, sig = VerifyingSigV4Auth(Credentials("AKIDPLAIN", "plain-secret"), "dynamodb", "us-east-1", names,
                                   amz_date).compute(req)
    scope = f"AKIDPLAIN/{amz_date[:8]}/us-east-1/dynamodb/aws4_request"
    hx.append(("Authorization", f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={';'.join(names)}, Signature={sig}"))
    cases.append(("control: the same, with the empty Expect: sent", hx + [("Expect", "")], b, "/", 200))
    cases.append(("SignedHeaders lists expect but it is not sent (libcurl's old bug)", hx, b, "/", 400))
    hy, by, py = signed(extra=[("X-Extra", "1")])
    cases.append(("signed header missing from the request", drop(hy, "X-Extra"), by, py, 400))
    cases.append(("wrong secret", *signed(secret="not-the-secret")[:3], 400))
    cases.append(("unknown access key", *signed("AKIDOTHER", secret="x", token="")[:3], 400))
    cases.append(("session token removed", drop(h2, "X-Amz-Security-Token"), b2, p2, 400))
    hz = h2 + [("X-Amz-Security-Token", "the-session-token")]
    cases.append(("session token sent twice (only once signed)", hz, b2, p2, 400))
    ht = [(k, v) for k, v in h + [("X-Amz-Security-Token", "t")]]
    cases.append(("unsigned session token added", ht, b, p, 400))
    cases.append(("wrong session token", *signed("AKIDTEMP", token="other")[:3], 400))
    hs, bs, ps = signed(extra=[("X-Amz-Content-SHA256", hashlib.sha256(b"something else").hexdigest())])
    cases.append(("x-amz-content-sha256 not the body's", hs, bs, ps, 400))
    hc, bc, pc = signed(extra=[("X-Amz-Content-SHA256", hashlib.sha256(b'{"TableName":"T"}').hexdigest())])
    cases.append(("x-amz-content-sha256 matching the body", hc, bc, pc, 200))
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    cases.append(("X-Amz-Date changed", replace(h, "X-Amz-Date", old), b, p, 400))
    cases.append(("no Authorization", drop(h, "Authorization"), b, p, 403))

    failures = 0
    sys.stderr.write("(rejections below are expected: each is one tampered request)\n")
    for name, headers, body, path, want in cases:
        status, data = send(headers, body, path)
        ok = status == want and (want != 400 or b"Exception" in data)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {status} (want {want}) {data[:120]!r}")

    # libcurl itself (curl --aws-sigv4), as the Swift client drives it: no "Expect:" header,
    # --expect100-timeout 0 (CURLOPT_EXPECT_100_TIMEOUT_MS), per service, with and without a
    # session token, and a body over 1 MiB (libcurl then adds an unsigned Expect: 100-continue).
    # Then the old way, `-H "Expect:"`: libcurl before 8.3 signs that header without sending
    # it (curl issue #11664), so it must be rejected there.
    try:
        version = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True).stdout
        libcurl = tuple(int(x) for x in re.search(r"libcurl/(\d+)\.(\d+)", version).groups())
    except (OSError, subprocess.CalledProcessError, AttributeError):
        libcurl = None
        print("skip curl --aws-sigv4 cases: no curl")
    big = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"sigv4-self-test-{os.getpid()}.json")
    with open(big, "w") as f:
        f.write('{"Item":"' + "x" * (1 << 20) + '"}')
    curl_cases = [
        ("dynamodb", "application/x-amz-json-1.0", "DynamoDB_20120810.ListTables", "{}", None, [], 200),
        ("dynamodb", "application/x-amz-json-1.0", "DynamoDB_20120810.PutItem", "@" + big, "the-session-token", [], 200),
        ("kms", "application/x-amz-json-1.1", "TrentService.ListKeys", "{}", None, [], 200),
        ("kms", "application/x-amz-json-1.1", "TrentService.ListKeys", "{}", "the-session-token", [], 200),
        ("sts", "application/x-www-form-urlencoded", None, "Action=GetCallerIdentity&Version=2011-06-15", None, [], 200),
        ("sts", "application/x-www-form-urlencoded", None, "Action=GetCallerIdentity&Version=2011-06-15",
         "the-session-token", [], 200),
        ("dynamodb", "application/x-amz-json-1.0", "DynamoDB_20120810.ListTables", "{}", None, ["-H", "Expect:"],
         200 if libcurl and libcurl >= (8, 3) else 400),
    ]
    for service, ctype, target, body, token, extra, want in curl_cases if libcurl else []:
        akid = "AKIDTEMP" if token else "AKIDPLAIN"
        cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--expect100-timeout", "0",
               "--aws-sigv4", f"aws:amz:us-east-1:{service}", "-u", f"{akid}:{creds[akid][0]}",
               "-H", f"Content-Type: {ctype}", "--data-binary", body, *extra]
        if target:
            cmd += ["-H", f"X-Amz-Target: {target}"]
        if token:
            cmd += ["-H", f"X-Amz-Security-Token: {token}"]
        status = subprocess.run(cmd + [f"http://{host}/"], capture_output=True, text=True).stdout
        ok = status == str(want)
        failures += not ok
        what = f"{service}{' with token' if token else ''}{' ' + ' '.join(extra) if extra else ''}" \
               f"{' (body > 1 MiB)' if body.startswith('@') else ''}"
        print(f"{'ok  ' if ok else 'FAIL'} curl --aws-sigv4 {what}: {status} (want {want}, libcurl {libcurl})")
    os.unlink(big)

    server.shutdown()
    upstream.shutdown()
    print(stats.summary())
    print(f"self-test: {'passed' if failures == 0 else f'{failures} FAILED'}")
    return 1 if failures else 0


def main():
    if "--self-test" in sys.argv[1:]:
        sys.exit(_self_test())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("upstream")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--credentials", default=os.environ.get("SIGV4_PROXY_CREDENTIALS", ""),
                    help="AKID:SECRET[:SESSION_TOKEN][,...] (default: $SIGV4_PROXY_CREDENTIALS)")
    ap.add_argument("--max-skew", type=int, default=900, help="seconds X-Amz-Date may be off (AWS: 15 minutes)")
    ap.add_argument("--log", action="store_true", help="log every request to stderr")
    args = ap.parse_args()
    credentials = parse_credentials(args.credentials)
    if not credentials:
        ap.error("no credentials: give --credentials AKID:SECRET[,...] or SIGV4_PROXY_CREDENTIALS")
    server, stats = serve(args.upstream, args.host, args.port, credentials, args.max_skew, args.log)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(f"sigv4_proxy: listening on {args.host}:{server.server_address[1]}, "
                     f"forwarding to {args.upstream}, keys {sorted(credentials)}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sys.stderr.write(stats.summary() + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    main()
