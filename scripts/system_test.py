#!/usr/bin/env python3
"""System tests: the release binary as real processes, driven over HTTP (issue 5).

Each scenario is bounded in time, asserts exact outcomes and prints one result line:
    SCENARIO <name> ok <numbers>      or      SCENARIO <name> FAILED <why>
The last line is "N passed, N failed". Exit status 0 only when all passed.

Usage: system_test.py --binary .build/release/cognigy-session [--moto-endpoint URL] [--only NAME,...]
Stdlib only. Servers bind 127.0.0.1; every load loop is bounded.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

ARGS = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Service:
    """One cognigy-session process."""

    def __init__(self, env, workdir):
        self.port = free_port()
        self.workdir = workdir
        e = dict(os.environ)
        e.update({"HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "warn"})
        e.update(env)
        self.log = open(os.path.join(workdir, f"service-{self.port}.log"), "wb")
        self.proc = subprocess.Popen([ARGS.binary, "--config", os.path.join(workdir, "empty.json")], env=e,
                                     stdout=self.log, stderr=self.log, cwd=workdir)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if request(self.port, "GET", "/health", timeout=1, retry_503=False)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}: {self.tail()}")
            time.sleep(0.05)
        raise RuntimeError("service did not answer /health in 20 s")

    def tail(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# How long the suite, like a real caller, keeps retrying a 503 that carries Retry-After.
RETRY_BUDGET_S = 30.0


def retry_after_seconds(value, default=1.0):
    """A Retry-After in delay-seconds; anything else (absent, negative, an HTTP-date, garbage) → default."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds >= 0 else default


def request(port, method, path, body=None, headers=None, timeout=10, retry_503=True, budget=RETRY_BUDGET_S):
    """The suite's one HTTP client. Returns (status, body, response); JSON bodies are decoded.

    Like a real caller it honours `503` + `Retry-After` (the store is busy or out): it waits
    as told and sends the same request again, for at most `budget` seconds in all, then hands
    back the last 503. `response.retries` counts the retries. Scenarios that check the 503
    itself (store outage, /ready, limits) pass retry_503=False. Connection errors are raised."""
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else (body.encode() if isinstance(body, str) else body)
        h.setdefault("Content-Type", "application/json")
    deadline = time.time() + budget
    retries = 0
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        r.retries = retries
        decoded = json.loads(raw) if raw and r.getheader("Content-Type", "").startswith("application/json") else raw
        retry_after = r.getheader("Retry-After")
        if not (retry_503 and r.status == 503 and retry_after is not None):
            return r.status, decoded, r
        wait = retry_after_seconds(retry_after)
        if time.time() + wait > deadline:
            return r.status, decoded, r
        retries += 1
        time.sleep(wait)


def post_event(port, event, retry_503=True, headers=None, timeout=10):
    """POST /webhook/dialog as a real caller (503 retried, see request). Returns (status, body, retries);
    status None when the connection failed (the process died)."""
    try:
        status, body, resp = request(port, "POST", "/webhook/dialog", event, headers=headers, timeout=timeout, retry_503=retry_503)
    except OSError:
        return None, None, 0
    return status, body, resp.retries


def get_json(port, path):
    """GET an admin resource (503 retried): (status, body)."""
    status, body, _ = request(port, "GET", path)
    return status, body


def versions_of(port, cid):
    """Every stored version of a conversation, newest first ([] on 404)."""
    out, before = [], None
    while True:
        path = f"/sessions/{cid}/versions?limit=100" + (f"&before={before}" if before else "")
        status, body = get_json(port, path)
        if status == 404:
            return out
        assert status == 200, (path, status, body)
        out += body["versions"]
        before = body["nextBefore"]
        if before is None:
            return out


def run_threads(n, target):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


class Workdir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="systest-")
        with open(os.path.join(self.path, "empty.json"), "w") as f:
            f.write("{}")
        return self.path

    def __exit__(self, *a):
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------------------
def replicas(store_env, label):
    with Workdir() as wd:
        env = dict(store_env(wd))
        services = [Service(env, wd) for _ in range(3)]
        try:
            cid = "replica-" + uuid.uuid4().hex[:8]
            events, per_thread, threads = [], 25, 12
            lock = threading.Lock()
            results = {"processed": 0, "duplicate": 0, "other": 0, "retries": 0}
            acked = set()

            def worker(i):
                svc = services[i % 3]
                for k in range(per_thread):
                    key = f"s{i}_{k}"
                    ev = {"conversationId": cid, "channel": ["web-chat", "whatsapp", "voice"][(i + k) % 3],
                          "eventId": f"e-{i}-{k}", "slots": {key: "v"}}
                    status, body, retries = post_event(svc.port, ev)
                    with lock:
                        results["retries"] += retries
                        if status == 200 and body["status"] == "processed":
                            results["processed"] += 1
                            acked.add(key)
                        elif status == 200:
                            results["duplicate"] += 1
                        else:
                            results["other"] += 1
            t0 = time.time()
            run_threads(threads, worker)
            elapsed = time.time() - t0
            vs = versions_of(services[0].port, cid)
            numbers = sorted(v["sessionVersion"] for v in vs)
            n = results["processed"]
            assert results["other"] == 0, results
            assert numbers == list(range(1, n + 1)), f"versions not 1..{n}: {numbers[:5]}… ({len(numbers)})"
            latest = max(vs, key=lambda v: v["sessionVersion"])
            missing = acked - set(latest["slots"])
            assert not missing, f"{len(missing)} acknowledged slots missing, e.g. {sorted(missing)[:3]}"
            return (f"{label}: 3 replicas, {threads * per_thread} events, versions 1..{n} contiguous, "
                    f"all {len(acked)} acknowledged slots present, {results['retries']} 503-retries, {elapsed:.1f}s")
        finally:
            for s in services:
                s.stop()


def scenario_replicas_sqlite():
    return replicas(lambda wd: {"SQLITE_PATH": os.path.join(wd, "shared.sqlite"), "SQLITE_BUSY_TIMEOUT_MS": "5000"}, "sqlite")


def scenario_replicas_dynamodb():
    if not ARGS.moto_endpoint:
        raise SkipScenario("no --moto-endpoint")
    table = "sys-" + uuid.uuid4().hex[:8]
    return replicas(lambda wd: dynamo_env(table), "dynamodb")


def dynamo_env(table, endpoint=None):
    return {"SESSION_STORE": "dynamodb", "AWS_ENDPOINT_URL_DYNAMODB": endpoint or ARGS.moto_endpoint,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "DYNAMODB_TABLE": table,
            "DYNAMODB_CREATE_TABLE": "true", "DYNAMODB_DEADLINE_MS": "1500", "DYNAMODB_REQUEST_TIMEOUT_MS": "500"}


def scenario_duplicates():
    with Workdir() as wd:
        svc = Service({"SQLITE_PATH": os.path.join(wd, "s.sqlite")}, wd)
        try:
            cid = "dup-" + uuid.uuid4().hex[:8]
            ev = {"conversationId": cid, "channel": "web-chat", "eventId": "only-once", "slots": {"a": "1"}}
            first = post_event(svc.port, ev)[1]["status"]
            again = post_event(svc.port, ev)[1]["status"]
            assert (first, again) == ("processed", "duplicate"), (first, again)
            ev2 = dict(ev, eventId="concurrent")
            statuses, lock = [], threading.Lock()

            def worker(i):
                s, body, _ = post_event(svc.port, ev2)
                with lock:
                    statuses.append(body["status"] if s == 200 else s)
            run_threads(20, worker)
            assert statuses.count("processed") == 1 and statuses.count("duplicate") == 19, statuses
            vs = versions_of(svc.port, cid)
            assert len(vs) == 2, f"{len(vs)} versions"
            return "re-delivery → duplicate; 20 concurrent deliveries → 1 processed, 19 duplicate; 2 versions in all"
        finally:
            svc.stop()


def scenario_crash():
    with Workdir() as wd:
        db = os.path.join(wd, "s.sqlite")
        svc = Service({"SQLITE_PATH": db}, wd)
        cid = "crash-" + uuid.uuid4().hex[:8]
        acked, lock, stop = set(), threading.Lock(), threading.Event()

        def worker(i):
            k = 0
            while not stop.is_set() and k < 2000:
                key = f"w{i}_{k}"
                status, body, _ = post_event(svc.port, {"conversationId": cid, "channel": "web", "eventId": key, "slots": {key: "1"}}, retry_503=False)
                if status == 200:
                    with lock:
                        acked.add(key)
                k += 1
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        svc.proc.kill()  # kill -9 in the middle of the write load
        svc.proc.wait()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        svc.log.close()
        restarted = Service({"SQLITE_PATH": db}, wd)
        try:
            vs = versions_of(restarted.port, cid)
            latest = max(vs, key=lambda v: v["sessionVersion"])
            missing = acked - set(latest["slots"])
            assert acked and not missing, f"{len(missing)} of {len(acked)} acknowledged events lost"
            numbers = sorted(v["sessionVersion"] for v in vs)
            assert numbers == list(range(1, len(numbers) + 1)), "versions not contiguous after the crash"
            after = post_event(restarted.port, {"conversationId": cid, "channel": "web", "eventId": "after"})[1]
            assert after["sessionVersion"] == len(numbers) + 1
            return f"kill -9 after {len(acked)} acknowledged events: all present after restart, versions 1..{len(numbers)}, next write v{len(numbers) + 1}"
        finally:
            restarted.stop()


def scenario_hostile_clients():
    with Workdir() as wd:
        svc = Service({"SQLITE_PATH": os.path.join(wd, "s.sqlite"), "HEADER_TIMEOUT_MS": "3000", "MAX_BODY_BYTES": "65536"}, wd)
        socks = []
        try:
            # Hundreds of half-sent requests that stall.
            for i in range(300):
                s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
                s.sendall(b"POST /webhook/dialog HTTP/1.1\r\nHost: x\r\nContent-Le")
                socks.append(s)
            codes = {}

            def raw(payload, read=True):
                s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
                try:
                    s.sendall(payload)
                    if not read:
                        return None
                    data = s.recv(4096)
                    return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else None
                finally:
                    s.close()
            codes["oversized_header"] = raw(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
            codes["oversized_body"] = raw(b"POST /webhook/dialog HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
            codes["garbage"] = raw(os.urandom(512) + b"\r\n\r\n")
            raw(b"POST /webhook/dialog HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"conv", read=False)
            assert codes == {"oversized_header": 431, "oversized_body": 413, "garbage": 400}, codes
            # A normal client keeps getting answers within a second, meanwhile.
            worst = 0.0
            for i in range(50):
                t = time.time()
                status, body, _ = request(svc.port, "POST", "/webhook/dialog", {"conversationId": "normal", "channel": "web", "eventId": f"n{i}"}, timeout=5)
                worst = max(worst, time.time() - t)
                assert status == 200, status
            assert worst < 1.0, f"slowest normal answer {worst:.3f}s"
            # The stalled ones are cut off by the header timeout.
            time.sleep(3.5)
            closed = 0
            for s in socks:
                try:
                    s.settimeout(2)
                    data = s.recv(4096)
                    if data.startswith(b"HTTP/1.1 408") or data == b"":
                        closed += 1
                except OSError:
                    closed += 1
            assert closed == len(socks), f"only {closed} of {len(socks)} stalled connections were closed"
            return (f"300 stalled + oversized/garbage/abandoned clients → 431/413/400, stalled ones got 408 after the header timeout; "
                    f"normal client slowest answer {worst * 1000:.0f} ms over 50 requests")
        finally:
            for s in socks:
                s.close()
            svc.stop()


def scenario_graceful_shutdown():
    with Workdir() as wd:
        svc = Service({"SQLITE_PATH": os.path.join(wd, "s.sqlite"), "DRAIN_TIMEOUT_MS": "10000"}, wd)
        results, lock = [], threading.Lock()
        started = threading.Barrier(33)

        def worker(i):
            conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
            started.wait()
            # A chunked body sent slowly keeps the request in flight across the SIGTERM.
            conn.putrequest("POST", "/webhook/dialog")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            body = json.dumps({"conversationId": f"g{i}", "channel": "web"}).encode()
            conn.send(b"%x\r\n%s\r\n" % (len(body[:10]), body[:10]))
            time.sleep(0.8)
            conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body[10:]), body[10:]))
            r = conn.getresponse()
            r.read()
            with lock:
                results.append(r.status)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        started.wait()
        time.sleep(0.3)
        t0 = time.time()
        svc.proc.send_signal(signal.SIGTERM)
        code = svc.proc.wait(timeout=15)
        took = time.time() - t0
        for t in threads:
            t.join(timeout=10)
        svc.log.close()
        assert code == 0, f"exit code {code}"
        assert results == [200] * 32, results
        return f"SIGTERM with 32 requests in flight: all 32 answered 200, exit code 0 after {took:.2f}s"


class Proxy:
    """A TCP proxy in front of DynamoDB that a scenario can cut and restore (same port)."""

    def __init__(self, target_host, target_port):
        self.port = free_port()
        self.target = (target_host, target_port)
        self.conns = []
        self.lock = threading.Lock()
        self.listener = None
        self.start()

    def start(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(128)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []


def scenario_store_outage():
    if not ARGS.moto_endpoint:
        raise SkipScenario("no --moto-endpoint")
    host, port = ARGS.moto_endpoint.split("//")[1].split(":")
    proxy = Proxy(host, int(port))
    with Workdir() as wd:
        table = "outage-" + uuid.uuid4().hex[:8]
        svc = Service(dynamo_env(table, f"http://127.0.0.1:{proxy.port}"), wd)
        try:
            ok = post_event(svc.port, {"conversationId": "o", "channel": "web", "eventId": "before"})
            assert ok[0] == 200, ok
            proxy.cut()
            worst, codes = 0.0, []
            for i in range(5):
                t = time.time()
                status, body, resp = request(svc.port, "POST", "/webhook/dialog", {"conversationId": "o", "channel": "web", "eventId": f"during{i}"},
                                             retry_503=False)
                worst = max(worst, time.time() - t)
                codes.append((status, resp.getheader("Retry-After")))
            assert all(c == (503, "1") for c in codes), codes
            assert worst < 3.0, f"503 took {worst:.2f}s"
            ready = request(svc.port, "GET", "/ready", retry_503=False)[0]
            health = request(svc.port, "GET", "/health")[0]
            assert (ready, health) == (503, 200), (ready, health)
            cut_at = time.time()
            proxy.start()
            recovered = None
            while time.time() - cut_at < 20:
                if request(svc.port, "POST", "/webhook/dialog", {"conversationId": "o", "channel": "web", "eventId": "after"},
                           retry_503=False)[0] == 200:
                    recovered = time.time() - cut_at
                    break
                time.sleep(0.1)
            assert recovered is not None, "writes did not recover"
            assert request(svc.port, "GET", "/ready", retry_503=False)[0] == 200
            vs = versions_of(svc.port, "o")
            assert sorted(v["sessionVersion"] for v in vs) == [1, 2], "nothing half-written during the outage"
            return (f"DynamoDB cut: 5/5 webhooks 503 + Retry-After: 1 (slowest {worst:.2f}s), /ready 503, /health 200; "
                    f"writes back {recovered:.2f}s after the endpoint returned; versions 1..2, nothing half-written")
        finally:
            svc.stop()
            proxy.cut()


class FakeCognigyHandler:
    """State for the Cognigy fake: 'ok', 'down' (503) or 'limited' (429, Retry-After: 1)."""
    mode = "ok"
    delivered = []
    attempts = 0
    lock = threading.Lock()


def start_fake_cognigy():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            st = FakeCognigyHandler
            with st.lock:
                st.attempts += 1
                mode = st.mode
                if mode == "ok":
                    st.delivered.append((self.path.split("/")[4], json.loads(body)))
            if mode == "ok":
                out = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
            elif mode == "limited":
                out = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
            else:
                out = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    ThreadingHTTPServer.request_queue_size = 256
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def scenario_cognigy_outage():
    fake = start_fake_cognigy()
    st = FakeCognigyHandler
    st.mode, st.delivered, st.attempts = "down", [], 0
    with Workdir() as wd:
        svc = Service({"SQLITE_PATH": os.path.join(wd, "s.sqlite"), "OUTBOX_PATH": os.path.join(wd, "o.sqlite"),
                       "COGNIGY_API_BASE_URL": f"http://127.0.0.1:{fake.server_address[1]}", "COGNIGY_API_KEY": "k",
                       "RESTORE_INLINE_TIMEOUT_MS": "300"}, wd)
        try:
            outcomes, lock = {}, threading.Lock()
            n = 60

            def worker(i):
                for c in range(i, n, 8):
                    cid = f"switch-{c}"
                    post_event(svc.port, {"conversationId": cid, "channel": "web-chat", "slots": {"k": str(c)}})
                    status, body, _ = post_event(svc.port, {"conversationId": cid, "channel": "whatsapp",
                                                           "userId": f"u{c}", "sessionId": f"wa-{c}"})
                    with lock:
                        outcomes[cid] = body["restore"]
                    if c == n // 2:
                        st.mode = "limited"  # rate limiting for the second half
            run_threads(8, worker)
            assert all(o == "queued" for o in outcomes.values()), set(outcomes.values())
            deleted = [f"switch-{c}" for c in range(0, n, 10)]
            for cid in deleted:
                assert request(svc.port, "DELETE", f"/sessions/{cid}")[0] == 204
            attempts_during = st.attempts
            st.mode = "ok"
            recovered_at = time.time()
            expected = {f"wa-{c}" for c in range(n)} - {f"wa-{c}" for c in range(0, n, 10)}
            while time.time() - recovered_at < 60:
                with st.lock:
                    got = {s for s, _ in st.delivered}
                if got >= expected:
                    break
                time.sleep(0.2)
            took = time.time() - recovered_at
            time.sleep(1.0)  # anything still to come would be a duplicate
            with st.lock:
                sessions = [s for s, _ in st.delivered]
            assert set(sessions) == expected, f"missing {sorted(expected - set(sessions))[:5]}, extra {sorted(set(sessions) - expected)[:5]}"
            assert len(sessions) == len(expected), f"{len(sessions) - len(expected)} delivered twice"
            body = next(b for s, b in st.delivered if s == "wa-1")
            assert body["context"]["k"] == "1" and body["context"]["restoredFrom"] == "web-chat", body
            return (f"{n} channel switches during 503s then 429s: all queued; {len(deleted)} sessions deleted; "
                    f"{attempts_during} refused attempts; after recovery {len(expected)}/{len(expected)} delivered exactly once "
                    f"in {took:.1f}s, none for deleted sessions")
        finally:
            svc.stop()
            fake.shutdown()


class SkipScenario(Exception):
    pass


SCENARIOS = [
    ("replicas_sqlite", scenario_replicas_sqlite),
    ("replicas_dynamodb", scenario_replicas_dynamodb),
    ("duplicates", scenario_duplicates),
    ("crash", scenario_crash),
    ("hostile_clients", scenario_hostile_clients),
    ("graceful_shutdown", scenario_graceful_shutdown),
    ("store_outage", scenario_store_outage),
    ("cognigy_outage", scenario_cognigy_outage),
]


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--moto-endpoint")
    p.add_argument("--only")
    ARGS = p.parse_args()
    ARGS.binary = os.path.abspath(ARGS.binary)
    only = set(ARGS.only.split(",")) if ARGS.only else None
    passed = failed = skipped = 0
    for name, fn in SCENARIOS:
        if only and name not in only:
            continue
        t = time.time()
        try:
            detail = fn()
            passed += 1
            print(f"SCENARIO {name} ok ({time.time() - t:.1f}s) {detail}", flush=True)
        except SkipScenario as e:
            skipped += 1
            print(f"SCENARIO {name} skipped: {e}", flush=True)
        except Exception as e:
            failed += 1
            print(f"SCENARIO {name} FAILED ({time.time() - t:.1f}s): {e}", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
