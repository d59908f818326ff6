#!/usr/bin/env python3
"""System tests: the release binary as real processes, driven over HTTP (issue 5).

Each scenario is bounded in time, asserts exact outcomes and prints one result line:
    SCENARIO <name> ok <numbers>      or      SCENARIO <name> FAILED <why>
The last line is "N passed, N failed". Exit status 0 only when all passed.

Usage: system_test.py --binary .build/release/cognigy-session [--moto-endpoint URL] [--only NAME,...]
Stdlib only. Servers bind 127.0.0.1; every load loop is bounded.

Every request goes through request(), which behaves as a real caller: a 503 with Retry-After
is retried after the given delay (at most RETRY_BUDGET_S per request, never past the
scenario's deadline). Scenarios that check a 503 itself pass retry_503=False.
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
import urllib.parse
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

    started = 0

    def __init__(self, env, workdir):
        self.port = free_port()
        self.workdir = workdir
        e = dict(os.environ)
        # Processes alternate between the webhook fast path and the default, so every
        # scenario run (replicas, kill -9, drains) covers both, and replicas mix them.
        Service.started += 1
        fast = "true" if Service.started % 2 else "false"
        e.update({"HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "warn", "WEBHOOK_FAST_PATH": fast})
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

    def alive(self):
        return self.proc.poll() is None

    def cpu_seconds(self):
        """utime + stime of the process so far (/proc/PID/stat fields 14 and 15)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stays_alive(self, seconds):
        """Watches the process for `seconds` (also asking /health); returns None or why it is not alive."""
        end = time.time() + seconds
        while time.time() < end:
            if not self.alive():
                return f"exited with {self.proc.returncode}: {self.last_error()}"
            try:
                status = request(self.port, "GET", "/health", timeout=2, retry_503=False)[0]
            except OSError as e:
                status = f"connection error {e}"
            if status != 200 and self.alive():
                return f"/health answered {status}"
            time.sleep(0.2)
        return None

    def last_error(self):
        """The line that says why the process died (Swift's "Fatal error: …"), else its last log line."""
        self.log.flush()
        with open(self.log.name, "rb") as f:
            lines = [l.strip() for l in f.read().decode(errors="replace").splitlines() if l.strip()]
        fatal = [l for l in lines if any(m in l for m in ("Fatal error", "runtime failure", "configuration error"))]
        return (fatal[0] if fatal else (lines or ["(no log)"])[-1])[:300]

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
# No 503 is retried past this point of the running scenario (main sets it), so a store that is
# gone for good fails the scenario in bounded time instead of 30 s per request.
SCENARIO_DEADLINE = [float("inf")]
SCENARIO_BUDGET_S = 180.0


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
    deadline = min(time.time() + budget, SCENARIO_DEADLINE[0])
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


def raw_exchange(port, payload, timeout=5, read=True):
    """Sends raw bytes on a new connection and reads the status line. Returns (status or None, seconds
    until the first answer byte); (None, timeout) when nothing came in time."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        if not read:
            return None, 0.0
        t = time.time()
        try:
            data = s.recv(4096)
        except socket.timeout:
            return None, timeout
        took = time.time() - t
        return (int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else None), took
    finally:
        s.close()


def versions_of(port, cid):
    """Every stored version of a conversation, newest first ([] on 404)."""
    out, before = [], None
    while True:
        path = f"/sessions/{cid}/versions?limit=25" + (f"&before={before}" if before else "")
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
            results = {"processed": 0, "duplicate": 0, "other": [], "retries": 0}
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
                        elif status == 200 and body["status"] == "duplicate":
                            # Every eventId is new, yet a DynamoDB write that timed out on the service's side
                            # can land: the service's own retry (or ours, after its 503) then finds the eventId
                            # and answers duplicate. The event is stored exactly once: count it as applied.
                            results["duplicate"] += 1
                            acked.add(key)
                        else:
                            results["other"].append((key, status, retries, body))
            t0 = time.time()
            run_threads(threads, worker)
            elapsed = time.time() - t0
            vs = versions_of(services[0].port, cid)
            numbers = sorted(v["sessionVersion"] for v in vs)
            n = results["processed"] + results["duplicate"]
            assert not results["other"], f"{len(results['other'])} events not acknowledged, e.g. {results['other'][:3]}"
            assert numbers == list(range(1, n + 1)), f"versions not 1..{n}: {numbers[:5]}… ({len(numbers)})"
            latest = max(vs, key=lambda v: v["sessionVersion"])
            missing = acked - set(latest["slots"])
            assert not missing, f"{len(missing)} acknowledged slots missing, e.g. {sorted(missing)[:3]}"
            return (f"{label}: 3 replicas, {threads * per_thread} events, versions 1..{n} contiguous, "
                    f"all {len(acked)} acknowledged slots present, {results['retries']} 503-retries "
                    f"({results['duplicate']} first deliveries answered duplicate: a timed-out write had landed), {elapsed:.1f}s")
        finally:
            for s in services:
                s.stop()


def scenario_replicas_sqlite():
    return replicas(lambda wd: {"SQLITE_PATH": os.path.join(wd, "shared.sqlite"), "SQLITE_BUSY_TIMEOUT_MS": "5000"}, "sqlite")


def scenario_replicas_sqlite_cached():
    """The same with SNAPSHOT_CACHE_ENTRIES on: every replica's cache is stale most of the time."""
    return replicas(lambda wd: {"SQLITE_PATH": os.path.join(wd, "shared.sqlite"), "SQLITE_BUSY_TIMEOUT_MS": "5000",
                                "SNAPSHOT_CACHE_ENTRIES": "1000"}, "sqlite, snapshot cache on")


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
                return raw_exchange(svc.port, payload, read=read)[0]
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

    def __init__(self, target_host, target_port, latency=0.0):
        self.latency = latency  # seconds added before each chunk sent back to the client
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
            for a, b, delay in ((client, upstream, 0.0), (upstream, client, self.latency)):
                threading.Thread(target=self._pipe, args=(a, b, delay), daemon=True).start()

    @staticmethod
    def _pipe(a, b, delay=0.0):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
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
        # shutdown() first: close() alone does not wake a thread blocked in accept(), which
        # then accepts (and proxies) one more connection after the cut.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
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


class FakeCognigy:
    """A fake of Cognigy's context-inject endpoint (like scripts/fake_cognigy.py), one per scenario.

    mode: "ok" (200, after `delay` seconds), "down" (503) or "limited" (429 with
    `Retry-After: <retry_after>`). `attempts` counts every inject received; `delivered`
    lists (sessionId, body) of the ones answered 200, in the order they were answered."""

    def __init__(self, mode="ok", retry_after="1", delay=0.0):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.mode, self.retry_after, self.delay = mode, retry_after, delay
        self.delivered, self.attempts = [], 0
        self.lock = threading.Lock()
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with fake.lock:
                    fake.attempts += 1
                    mode, retry_after, delay = fake.mode, fake.retry_after, fake.delay
                if mode == "ok":
                    time.sleep(delay)
                    with fake.lock:
                        fake.delivered.append((self.path.split("/")[4], json.loads(body)))
                    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                elif mode == "limited":
                    out = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: %s\r\nContent-Length: 0\r\n\r\n" % retry_after.encode()
                else:
                    out = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        ThreadingHTTPServer.request_queue_size = 256
        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def deliveries(self, session_id=None):
        with self.lock:
            return [(s, b) for s, b in self.delivered if session_id is None or s == session_id]

    def shutdown(self):
        self.server.shutdown()
        self.server.server_close()


def scenario_cognigy_outage():
    fake = FakeCognigy(mode="down")
    with Workdir() as wd:
        svc = Service({"SQLITE_PATH": os.path.join(wd, "s.sqlite"), "OUTBOX_PATH": os.path.join(wd, "o.sqlite"),
                       "COGNIGY_API_BASE_URL": fake.url, "COGNIGY_API_KEY": "k",
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
                        fake.set(mode="limited")  # rate limiting for the second half
            run_threads(8, worker)
            assert all(o == "queued" for o in outcomes.values()), set(outcomes.values())
            deleted = [f"switch-{c}" for c in range(0, n, 10)]
            for cid in deleted:
                assert request(svc.port, "DELETE", f"/sessions/{cid}")[0] == 204
            attempts_during = fake.attempts
            fake.set(mode="ok")
            recovered_at = time.time()
            expected = {f"wa-{c}" for c in range(n)} - {f"wa-{c}" for c in range(0, n, 10)}
            while time.time() - recovered_at < 60:
                got = {s for s, _ in fake.deliveries()}
                if got >= expected:
                    break
                time.sleep(0.2)
            took = time.time() - recovered_at
            time.sleep(1.0)  # anything still to come would be a duplicate
            sessions = [s for s, _ in fake.deliveries()]
            assert set(sessions) == expected, f"missing {sorted(expected - set(sessions))[:5]}, extra {sorted(set(sessions) - expected)[:5]}"
            assert len(sessions) == len(expected), f"{len(sessions) - len(expected)} delivered twice"
            body = next(b for s, b in fake.deliveries() if s == "wa-1")
            assert body["context"]["k"] == "1" and body["context"]["restoredFrom"] == "web-chat", body
            return (f"{n} channel switches during 503s then 429s: all queued; {len(deleted)} sessions deleted; "
                    f"{attempts_during} refused attempts; after recovery {len(expected)}/{len(expected)} delivered exactly once "
                    f"in {took:.1f}s, none for deleted sessions")
        finally:
            svc.stop()
            fake.shutdown()


# ---------------------------------------------------------------------------------------
# Scenarios for issue 10: each one fails against a service without the matching fix.

def sqlite_env(wd, **extra):
    env = {"SQLITE_PATH": os.path.join(wd, "s.sqlite"), "OUTBOX_PATH": os.path.join(wd, "o.sqlite")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cognigy_env(fake, inline_ms):
    return {"COGNIGY_API_BASE_URL": fake.url, "COGNIGY_API_KEY": "k", "RESTORE_INLINE_TIMEOUT_MS": str(inline_ms)}


def switch(port, cid, session_id, slots=None, channel="whatsapp"):
    """The web-chat conversation shows up on `channel` with a Cognigy user and session: (status, body)."""
    ev = {"conversationId": cid, "channel": channel, "userId": "u-" + session_id, "sessionId": session_id}
    if slots:
        ev["slots"] = slots
    status, body, _ = post_event(port, ev)
    return status, body


def wait_until(predicate, timeout, interval=0.1):
    """Polls predicate() until it is truthy or `timeout` seconds passed; returns its last value."""
    end = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() >= end:
            return value
        time.sleep(interval)


def scenario_retry_after_crash_loop():
    """SPEC Semantics: any Retry-After (huge, negative, garbage) is clamped or ignored; no upstream
    answer may crash the process, neither inline nor in the background nor after a restart."""
    problems, notes = [], []
    for value in ["99999999999999999999", "-5", "garbage"]:
        fake = FakeCognigy(mode="limited", retry_after=value)
        try:
            with Workdir() as wd:
                env = dict(sqlite_env(wd), **cognigy_env(fake, 500))
                svc = Service(env, wd)
                try:
                    cid = "ra-" + uuid.uuid4().hex[:8]
                    first = post_event(svc.port, {"conversationId": cid, "channel": "web-chat", "slots": {"a": "1"}})
                    assert first[0] == 200, (value, first)
                    t = time.time()
                    status, body = switch(svc.port, cid, "wa-ra")
                    took = time.time() - t
                    if status is None:
                        try:
                            code = svc.proc.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            code = None
                        problems.append(f"Retry-After {value}: the channel-switch webhook got no answer; " +
                                        (f"the process exited with {code}: {svc.last_error()}" if code is not None else "the process is alive"))
                    elif (status, body.get("restore") if isinstance(body, dict) else body) != (200, "queued"):
                        problems.append(f"Retry-After {value}: switch answered {status} {body}")
                    elif took > 3.0:
                        problems.append(f"Retry-After {value}: the switch took {took:.1f}s (inline limit 0.5 s)")
                    else:
                        # The background worker's first retry comes RESTORE_INLINE_TIMEOUT_MS + ~2 s after queueing.
                        why = svc.stays_alive(4.0)
                        if why:
                            problems.append(f"Retry-After {value}: after queueing, {why}")
                finally:
                    svc.stop()
                again = Service(env, wd)  # same data and outbox: the queued restore is picked up again
                try:
                    why = again.stays_alive(4.0)
                    if why:
                        problems.append(f"Retry-After {value}: after a restart on the same outbox, {why}")
                    else:
                        notes.append(f"{value}: queued in {took:.2f}s, alive 4 s, alive 4 s after restart ({fake.attempts} attempts)")
                finally:
                    again.stop()
        except RuntimeError as e:  # the restarted process died at start-up
            problems.append(f"Retry-After {value}: restart failed: {e}")
        finally:
            fake.shutdown()
    assert not problems, "; ".join(problems)
    return "429 + Retry-After huge/-5/garbage: " + "; ".join(notes)


def delete_during_writers(store_env, label, cycles, per_writer, writers=8, admin_env=None):
    """SPEC DELETE: no event in flight at the time of the DELETE can bring back anything acknowledged
    before the DELETE was sent; a later event starts a new history at version 1 (contiguous).

    The writers post to one replica; with admin_env a second replica on the same store sends the
    DELETE and does the reads."""
    with Workdir() as wd:
        svc = Service(store_env(wd), wd)
        admin = Service(admin_env(wd), wd) if admin_env else svc
        try:
            cid = "erase-" + uuid.uuid4().hex[:8]
            lock = threading.Lock()
            acked_before = set()   # slots whose 200 arrived before some DELETE was sent
            must_keep = set()      # slots of events sent after the last DELETE's 204 (no erasure after them)
            stats = {"acked": 0, "other": [], "retries": 0, "erased": 0}
            for cycle in range(cycles):
                state = {"delete_sent": False, "delete_done": False, "acks": 0}
                cycle_before, cycle_after = set(), set()

                def worker(i):
                    for k in range(per_writer):
                        key = f"c{cycle}_w{i}_{k}"
                        with lock:
                            sent_after_delete = state["delete_done"]
                        status, body, retries = post_event(svc.port, {"conversationId": cid, "channel": "web",
                                                                      "eventId": uuid.uuid4().hex, "slots": {key: "1"}})
                        with lock:
                            stats["retries"] += retries
                            # "duplicate" after a retried 503 is an acknowledgement too (the first try was applied).
                            if status == 200 and body["status"] in ("processed", "duplicate"):
                                state["acks"] += 1
                                stats["acked"] += 1
                                if not state["delete_sent"]:
                                    cycle_before.add(key)
                                if sent_after_delete:
                                    cycle_after.add(key)
                            else:
                                stats["other"].append((key, status, body))
                threads = [threading.Thread(target=worker, args=(i,)) for i in range(writers)]
                for t in threads:
                    t.start()
                total = writers * per_writer
                wait_until(lambda: state["acks"] >= total * 0.4, 60, 0.002)
                with lock:
                    state["delete_sent"] = True  # every ack recorded before this line arrived before the DELETE was sent
                status = request(admin.port, "DELETE", f"/sessions/{cid}")[0]
                with lock:
                    state["delete_done"] = True
                assert status == 204, f"cycle {cycle}: DELETE answered {status}"
                for t in threads:
                    t.join(timeout=120)
                assert not any(t.is_alive() for t in threads), f"cycle {cycle}: writers still running after 120 s"
                assert not stats["other"], f"cycle {cycle}: {len(stats['other'])} events not processed, e.g. {stats['other'][:2]}"
                acked_before |= cycle_before
                stats["erased"] += len(cycle_before)
                must_keep = cycle_after
                # Read back: every version and the latest (a 404 is a fully erased conversation).
                vs = versions_of(admin.port, cid)
                numbers = sorted(v["sessionVersion"] for v in vs)
                back = {}
                for v in vs:
                    for key in set(v["slots"]) & acked_before:
                        back.setdefault(key, v["sessionVersion"])
                latest_status, latest = get_json(admin.port, f"/sessions/{cid}")
                assert latest_status in (200, 404), (latest_status, latest)
                latest_slots = set(latest["slots"]) if latest_status == 200 else set()
                back_latest = latest_slots & acked_before
                problems = []
                if back or back_latest:
                    problems.append(
                        f"{len(set(back) | back_latest)} slots acknowledged before the DELETE was sent are readable after it "
                        f"(e.g. {sorted(set(back) | back_latest)[:2]}, in versions {sorted(set(back.values()))[:4]}, "
                        f"{len(back_latest)} of them in the latest)")
                if numbers != list(range(1, len(numbers) + 1)):
                    problems.append(f"versions not contiguous from 1: {numbers[:4]}…{numbers[-2:]} ({len(numbers)} versions)")
                assert not problems, f"cycle {cycle} (DELETE sent after {len(cycle_before)} acks): " + "; ".join(problems)
                lost = must_keep - latest_slots
                assert not lost, f"cycle {cycle}: {len(lost)} events sent after the DELETE's 204 and acknowledged are missing, e.g. {sorted(lost)[:3]}"
            return (f"{label}: {cycles} DELETEs amid {writers} writers: {stats['acked']} events acknowledged, "
                    f"{stats['erased']} of them before a DELETE was sent and none readable after it; versions contiguous from 1; "
                    f"{stats['retries']} 503-retries")
        finally:
            svc.stop()
            if admin is not svc:
                admin.stop()


def scenario_delete_during_writers_sqlite():
    return delete_during_writers(lambda wd: sqlite_env(wd), "sqlite", cycles=5, per_writer=25)


def scenario_delete_during_writers_dynamodb():
    if not ARGS.moto_endpoint:
        raise SkipScenario("no --moto-endpoint")
    # moto applies one request at a time, which leaves an in-flight write little room between its
    # read and its conditional put. The writers' replica reaches moto through a proxy that adds
    # 30 ms to each answer (a replica farther from the store), so the DELETE, sent by a second
    # replica with a direct path, can complete between a writer's read and its put.
    host, port = ARGS.moto_endpoint.split("//")[1].split(":")
    proxy = Proxy(host, int(port), latency=0.03)
    table = "erase-" + uuid.uuid4().hex[:8]
    try:
        return delete_during_writers(lambda wd: dynamo_env(table, f"http://127.0.0.1:{proxy.port}"), "dynamodb",
                                     cycles=4, per_writer=10, admin_env=lambda wd: dynamo_env(table))
    finally:
        proxy.cut()


def expired_latest(store_env, label):
    """SPEC Expiry: a conversation whose latest version is past expiresAt is empty whether or not the
    sweeper (or DynamoDB's TTL) removed it: reads answer 404, the next event starts from an empty state."""
    with Workdir() as wd:
        svc = Service(dict(store_env(wd), SESSION_TTL_SECONDS="2", SWEEP_INTERVAL_SECONDS="3600"), wd)
        try:
            cid = "exp-" + uuid.uuid4().hex[:8]
            status, body, _ = post_event(svc.port, {"conversationId": cid, "channel": "web", "slots": {"a": "1"}})
            assert status == 200, (status, body)
            written = time.time()
            status, snap = get_json(svc.port, f"/sessions/{cid}")
            assert status == 200, (status, snap)
            # Past expiresAt (epoch seconds) whatever the rounding: 3 s after the write and 1 s after expiresAt.
            time.sleep(max(0.0, max(written + 3.0, snap["expiresAt"] + 1.0) - time.time()))
            latest = get_json(svc.port, f"/sessions/{cid}")
            versions = get_json(svc.port, f"/sessions/{cid}/versions")
            assert (latest[0], versions[0]) == (404, 404), (
                f"expired conversation (expiresAt {snap['expiresAt']}, now {time.time():.1f}) still readable: "
                f"GET /sessions/{{id}} → {latest[0]}, /versions → {versions[0]}")
            status, body, _ = post_event(svc.port, {"conversationId": cid, "channel": "web", "slots": {"b": "2"}})
            assert status == 200, (status, body)
            assert "a" not in body["context"] and body["context"].get("b") == "2", f"new event built on the expired state: {body['context']}"
            return (f"{label}: TTL 2 s, no sweep: after expiry latest and versions 404; the next event "
                    f"(v{body['sessionVersion']}) has only b")
        finally:
            svc.stop()


def scenario_expired_latest():
    return expired_latest(lambda wd: sqlite_env(wd), "sqlite")


def scenario_expired_latest_dynamodb():
    if not ARGS.moto_endpoint:
        raise SkipScenario("no --moto-endpoint")
    table = "exp-" + uuid.uuid4().hex[:8]
    return expired_latest(lambda wd: dynamo_env(table), "dynamodb")


def scenario_stale_restore():
    """SPEC Semantics: a queued restore is delivered with the conversation's latest context at delivery
    time, never an older sessionVersion after a newer one into the same session."""
    fake = FakeCognigy(mode="down")
    with Workdir() as wd:
        svc = Service(dict(sqlite_env(wd), **cognigy_env(fake, 300)), wd)
        try:
            cid = "stale-" + uuid.uuid4().hex[:8]
            assert post_event(svc.port, {"conversationId": cid, "channel": "web-chat", "slots": {"x": "1"}})[0] == 200
            status, body = switch(svc.port, cid, "wa-stale")
            assert (status, body["restore"], body["sessionVersion"]) == (200, "queued", 2), (status, body)
            status, body = switch(svc.port, cid, "wa-stale", slots={"y": "2"})
            assert (status, body["channelSwitched"], body["sessionVersion"]) == (200, False, 3), (status, body)
            fake.set(mode="ok")
            recovered = time.time()
            assert wait_until(lambda: fake.deliveries("wa-stale"), 60, 0.2), "no restore delivered within 60 s of recovery"
            took = time.time() - recovered
            time.sleep(2.0)  # anything still queued for this session would arrive now
            got = [(b["context"].get("sessionVersion"), b["context"].get("x"), b["context"].get("y")) for _, b in fake.deliveries("wa-stale")]
            stale = [g for g in got if g != (3, "1", "2")]
            assert not stale, (f"deliveries into wa-stale (sessionVersion, x, y) in order: {got}; latest at delivery "
                               f"time was (3, '1', '2')")
            return f"switch queued at v2, v3 written meanwhile: {len(got)} delivery {took:.1f}s after recovery, all sessionVersion 3 with y=2"
        finally:
            svc.stop()
            fake.shutdown()


def scenario_shared_outbox_lease():
    """SPEC SQLite: several processes may share one file; the outbox (shared too) must not let two of
    them deliver the same restore."""
    fake = FakeCognigy(mode="down")
    with Workdir() as wd:
        env = dict(sqlite_env(wd), **cognigy_env(fake, 300))
        services = [Service(env, wd), Service(env, wd)]
        try:
            n = 10
            outcomes = []
            for c in range(n):
                a, b = services[c % 2], services[(c + 1) % 2]
                cid = f"lease-{c}-" + uuid.uuid4().hex[:6]
                assert post_event(a.port, {"conversationId": cid, "channel": "web-chat", "slots": {"k": str(c)}})[0] == 200
                status, body = switch(b.port, cid, f"wa-lease-{c}")
                outcomes.append((status, body.get("restore") if isinstance(body, dict) else body))
            assert outcomes == [(200, "queued")] * n, outcomes
            # Back, answering in 0.5 s (a loaded Cognigy): a restore being delivered by one process stays
            # queued that long, so a process that does not lease it sees it due and sends it too.
            fake.set(mode="ok", delay=0.5)
            recovered = time.time()
            expected = {f"wa-lease-{c}" for c in range(n)}
            wait_until(lambda: {s for s, _ in fake.deliveries()} >= expected, 60, 0.2)
            took = time.time() - recovered
            time.sleep(3.0)  # a second process holding the same restore would send it now
            counts = {}
            for s, _ in fake.deliveries():
                counts[s] = counts.get(s, 0) + 1
            missing = expected - set(counts)
            twice = {s: k for s, k in counts.items() if k > 1}
            assert not missing, f"{len(missing)} of {n} sessions never got their restore within 60 s: {sorted(missing)[:3]}"
            assert not twice, f"{len(twice)} of {n} sessions got more than one inject: {twice}"
            return f"2 processes, one SQLite file and outbox: {n}/{n} queued restores delivered exactly once, {took:.1f}s after recovery"
        finally:
            for s in services:
                s.stop()
            fake.shutdown()


def scenario_outbox_replica_killed_dynamodb():
    """Issue 13: with SESSION_STORE=dynamodb the outbox lives in DynamoDB (OUTBOX_STORE follows it), so a replica
    that dies for good loses nothing. Replica A (its own working folder: nothing shared but DynamoDB) queues
    restores while Cognigy answers 503, some conversations move on to a newer version, A is killed with -9 (its
    inline leases may still be held) and never restarted; Cognigy recovers; replica B must deliver every queued
    restore exactly once, each with the conversation's latest sessionVersion, and leave the outbox empty."""
    if not ARGS.moto_endpoint:
        raise SkipScenario("no --moto-endpoint")
    fake = FakeCognigy(mode="down")
    suffix = uuid.uuid4().hex[:8]
    env = dict(dynamo_env("sys-" + suffix), DYNAMODB_OUTBOX_TABLE="sys-outbox-" + suffix, **cognigy_env(fake, 300))
    with Workdir() as wd_a, Workdir() as wd_b:
        a = Service(env, wd_a)
        b = Service(env, wd_b)
        try:
            n = 16
            expected, outcomes, lock = {}, [], threading.Lock()

            def worker(i):
                for c in range(i, n, 4):
                    cid = f"kill9-{c}-{suffix}"
                    assert post_event(a.port, {"conversationId": cid, "channel": "web-chat", "slots": {"k": str(c)}})[0] == 200
                    status, body = switch(a.port, cid, f"wa-kill9-{c}")
                    version = body["sessionVersion"]
                    if c % 2:  # a newer version after the switch: delivery must carry it
                        status2, body2 = switch(a.port, cid, f"wa-kill9-{c}", slots={"later": "yes"})
                        assert status2 == 200 and not body2["channelSwitched"], body2
                        version = body2["sessionVersion"]
                    with lock:
                        outcomes.append((status, body.get("restore")))
                        expected[f"wa-kill9-{c}"] = version
            run_threads(4, worker)
            assert outcomes == [(200, "queued")] * n, outcomes
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
            a.log.close()
            refused = fake.attempts
            fake.set(mode="ok")
            recovered = time.time()
            wait_until(lambda: {s for s, _ in fake.deliveries()} >= set(expected), 90, 0.2)
            took = time.time() - recovered
            time.sleep(3.0)  # a second sender of any of them would deliver now
            counts, versions = {}, {}
            for s, body in fake.deliveries():
                counts[s] = counts.get(s, 0) + 1
                versions.setdefault(s, []).append(body["context"].get("sessionVersion"))
            missing = set(expected) - set(counts)
            twice = {s: k for s, k in counts.items() if k > 1}
            stale = {s: versions[s] for s in counts if versions[s] != [expected[s]]}
            assert not missing, f"{len(missing)} of {n} queued restores never delivered by B within 90 s: {sorted(missing)[:3]}"
            assert not twice, f"{len(twice)} of {n} sessions got more than one inject: {twice}"
            assert not stale, f"deliveries not at the latest sessionVersion: {stale} (expected {expected})"
            status, metrics = request(b.port, "GET", "/metrics")[:2]
            text = metrics.decode() if isinstance(metrics, bytes) else str(metrics)
            depth = [l for l in text.splitlines() if l.startswith("cognigy_session_outbox_depth ")] if status == 200 else []
            assert depth == ["cognigy_session_outbox_depth 0"], depth or status
            assert b.alive(), b.last_error()
            return (f"{n} switches queued on A during 503s ({refused} refused attempts), A killed -9 and gone; "
                    f"B delivered {n}/{n} exactly once {took:.1f}s after recovery, "
                    f"{sum(1 for v in expected.values() if v == 3)} at a version written after the switch; outbox depth 0")
        finally:
            if a.alive():
                a.stop(signal.SIGKILL)
            b.stop()
            fake.shutdown()


def encode_dialog_event(fields):
    """A binary DialogEvent of string fields: {field number: str}."""
    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    out = b""
    for number, value in sorted(fields.items()):
        data = value.encode()
        out += varint(number << 3 | 2) + varint(len(data)) + data
    return out


def scenario_hostile_ids():
    """SPEC HTTP API: ids containing control characters → 400, in JSON, form and protobuf bodies; and
    no input may crash, hang or spin the process."""
    import urllib.parse
    with Workdir() as wd:
        svc = Service(sqlite_env(wd), wd)
        try:
            numbers = {"conversationId": 1, "channel": 2, "intent": 3, "userId": 6, "sessionId": 7, "eventId": 8}
            wrong = []
            sent = 0
            for field in ["conversationId", "userId", "sessionId", "channel", "eventId", "intent"]:
                for ch in ["\u0000", "\n", "\u007f", "\u001f"]:
                    ev = {"conversationId": "hid-" + uuid.uuid4().hex[:8], "channel": "web", "userId": "u1", "sessionId": "s1",
                          "eventId": uuid.uuid4().hex, "intent": "greet"}
                    ev[field] = f"a{ch}b"
                    bodies = {
                        "json": (json.dumps(ev), "application/json"),
                        "form": (urllib.parse.urlencode(ev), "application/x-www-form-urlencoded"),
                        "protobuf": (encode_dialog_event({numbers[k]: v for k, v in ev.items()}), "application/x-protobuf"),
                    }
                    for kind, (data, ctype) in bodies.items():
                        status, body, _ = request(svc.port, "POST", "/webhook/dialog", data, headers={"Content-Type": ctype}, timeout=5)
                        sent += 1
                        if status != 400:
                            wrong.append(f"{field}={ch!r} as {kind} → {status}")
            health = request(svc.port, "GET", "/health", timeout=5)[0]
            normal = post_event(svc.port, {"conversationId": "hid-normal", "channel": "web"})[0]
            time.sleep(0.3)
            cpu0 = svc.cpu_seconds()
            time.sleep(2.0)
            cpu = svc.cpu_seconds() - cpu0
            problems = []
            if wrong:
                problems.append(f"{len(wrong)} of {sent} hostile ids not refused with 400, e.g. {wrong[:4]}")
            if not svc.alive() or (health, normal) != (200, 200):
                problems.append(f"afterwards: alive={svc.alive()} /health {health}, a normal event {normal} ({svc.last_error()})")
            if cpu >= 0.2:
                problems.append(f"the idle process used {cpu:.2f}s of CPU in 2 s after the hostile ids (a worker spins)")
            assert not problems, "; ".join(problems) + f" (idle CPU {cpu:.2f}s in 2 s)"
            return f"{sent} events with NUL/LF/DEL/US in ids (JSON, form, protobuf) → 400; healthy after; {cpu:.2f}s CPU in the next 2 s"
        finally:
            svc.stop()


def scenario_early_answers():
    """SPEC: a request whose head already decides the answer (unknown route, wrong method, missing or
    bad credentials, Content-Length over the limit) is answered without reading its body."""
    with Workdir() as wd:
        svc = Service(sqlite_env(wd, WEBHOOK_API_KEY="sekret"), wd)  # MAX_BODY_BYTES 1 MiB: 500000 is allowed
        try:
            key = b"X-API-Key: sekret\r\n"
            cases = [
                ("no key", 401, b"POST /webhook/dialog HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n"),
                ("wrong key", 401, b"POST /webhook/dialog HTTP/1.1\r\nHost: x\r\nX-API-Key: nope\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n"),
                ("unknown route", 404, b"POST /nowhere HTTP/1.1\r\nHost: x\r\n" + key + b"Content-Type: application/json\r\nContent-Length: 500000\r\n\r\n"),
                ("wrong method", 405, b"PUT /webhook/dialog HTTP/1.1\r\nHost: x\r\n" + key + b"Content-Type: application/json\r\nContent-Length: 500000\r\n\r\n"),
                ("over MAX_BODY_BYTES", 413, b"POST /webhook/dialog HTTP/1.1\r\nHost: x\r\n" + key + b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"),
            ]
            results, wrong = [], []
            for name, expected, head in cases:
                status, took = raw_exchange(svc.port, head + b'{"conv', timeout=3.0)
                results.append(f"{name} {status} in {took * 1000:.0f} ms")
                if status != expected or took > 1.0:
                    wrong.append(f"{name}: expected {expected} within 1 s, got " +
                                 (f"{status} after {took:.2f}s" if status else f"no answer in {took:.0f} s (body awaited)"))
            assert not wrong, "; ".join(wrong)
            return "heads that decide the answer, body never sent: " + ", ".join(results)
        finally:
            svc.stop()


def scenario_ready_during_drain():
    """SPEC Shutdown: on SIGTERM /ready answers 503 at once while in-flight requests finish."""
    fake = FakeCognigy(mode="ok", delay=3.0)
    with Workdir() as wd:
        svc = Service(dict(sqlite_env(wd, DRAIN_TIMEOUT_MS=10000), **cognigy_env(fake, 5000)), wd)
        try:
            cid = "drain-" + uuid.uuid4().hex[:8]
            assert post_event(svc.port, {"conversationId": cid, "channel": "web-chat", "slots": {"x": "1"}})[0] == 200
            inflight = {}

            def slow_switch():
                inflight["answer"] = switch(svc.port, cid, "wa-drain")
            t = threading.Thread(target=slow_switch)
            t.start()
            assert wait_until(lambda: fake.attempts >= 1, 10, 0.02), "the inline restore never reached Cognigy"
            svc.proc.send_signal(signal.SIGTERM)
            signalled = time.time()
            seen = []
            while time.time() - signalled < 0.5:
                try:
                    status = request(svc.port, "GET", "/ready", timeout=0.5, retry_503=False)[0]
                except OSError as e:  # socket.timeout is "no answer in 0.5 s"; refused is a closed listener
                    status = "no answer" if isinstance(e, socket.timeout) else type(e).__name__
                if not seen or seen[-1][0] != status:
                    seen.append((status, round(time.time() - signalled, 3)))
                if status == 503:
                    break
                time.sleep(0.02)
            t.join(timeout=15)
            code = svc.proc.wait(timeout=15)
            answer = inflight.get("answer")
            problems = []
            if not (seen and seen[-1][0] == 503):
                problems.append(f"GET /ready on new connections in the 0.5 s after SIGTERM: {seen} (answer, s after SIGTERM)")
            if not (answer and answer[0] == 200 and answer[1]["restore"] == "sent"):
                problems.append(f"in-flight switch answered {answer[0] if answer else None} "
                                f"restore={answer[1].get('restore') if answer and isinstance(answer[1], dict) else None}")
            if code != 0:
                problems.append(f"exit code {code}")
            assert not problems, "; ".join(problems)
            return (f"SIGTERM with an inline restore in flight: /ready 503 after {seen[-1][1] * 1000:.0f} ms, "
                    f"the in-flight switch answered 200 restore=sent, exit 0")
        finally:
            svc.stop()
            fake.shutdown()


def identity_race(store_env, label, per_thread=4):
    """SPEC Identity links: three replicas receive the first events of one new person at once (same
    phone, no conversationId, 16 threads each). Exactly one conversation must hold every acknowledged
    event: versions contiguous, no slot lost, one conversation id in all answers."""
    with Workdir() as wd:
        env = dict(store_env(wd))
        services = [Service(env, wd) for _ in range(3)]
        try:
            phone = "+44 7700 9" + str(uuid.uuid4().int % 100000).zfill(5)
            lock = threading.Lock()
            ids, acked, other, linked_by = {}, set(), [], {}
            start = threading.Barrier(48)

            def worker(i):
                svc = services[i % 3]
                start.wait(timeout=30)
                for k in range(per_thread):
                    key = f"s{i}_{k}"
                    ev = {"channel": ["webchat", "whatsapp", "voice"][i % 3], "identities": {"phone": phone},
                          "eventId": f"e-{i}-{k}", "slots": {key: "v"}}
                    status, body, _ = post_event(svc.port, ev)
                    with lock:
                        if status == 200 and body["status"] in ("processed", "duplicate"):
                            ids[body["conversationId"]] = ids.get(body["conversationId"], 0) + 1
                            linked_by[body["linkedBy"]] = linked_by.get(body["linkedBy"], 0) + 1
                            acked.add(key)
                        else:
                            other.append((key, status, body))
            t0 = time.time()
            run_threads(48, worker)
            elapsed = time.time() - t0
            assert not other, f"{len(other)} events not acknowledged, e.g. {other[:3]}"
            assert len(ids) == 1, f"one person ended in {len(ids)} conversations: {ids}"
            cid = next(iter(ids))
            vs = versions_of(services[0].port, cid)
            numbers = sorted(v["sessionVersion"] for v in vs)
            assert numbers == list(range(1, len(acked) + 1)), f"versions not 1..{len(acked)}: {numbers[:5]}… ({len(numbers)})"
            latest = max(vs, key=lambda v: v["sessionVersion"])
            missing = acked - set(latest["slots"])
            assert not missing, f"{len(missing)} acknowledged slots missing, e.g. {sorted(missing)[:3]}"
            status, body = get_json(services[1].port, "/links?kind=phone&value=" + urllib.parse.quote(phone))
            assert (status, body.get("conversationId")) == (200, cid), (status, body)
            return (f"{label}: 3 replicas x 16 threads, {len(acked)} events of one new person -> 1 conversation, "
                    f"versions 1..{len(acked)} contiguous, no slot lost, linkedBy {linked_by}, {elapsed:.1f}s")
        finally:
            for s in services:
                s.stop()


def scenario_identity_race_sqlite():
    return identity_race(lambda wd: {"SQLITE_PATH": os.path.join(wd, "shared.sqlite"), "SQLITE_BUSY_TIMEOUT_MS": "5000"},
                         "sqlite")


def scenario_identity_race_dynamodb():
    if not ARGS.moto_endpoint:
        raise SkipScenario("no --moto-endpoint")
    table = "sys-" + uuid.uuid4().hex[:8]
    # Two events a thread: the race is on the first ones. 48 writers on one conversation through
    # moto (one request at a time) are slow enough that more events only test moto's patience.
    return identity_race(lambda wd: dict(dynamo_env(table), DYNAMODB_LINKS_TABLE=table + "-links"), "dynamodb",
                         per_thread=2)


def scenario_identity_switch_restore():
    """A WhatsApp event carrying only the phone number (no conversationId) restores the web chat's
    slots into the WhatsApp session, then the voice channel finds it by the e-mail."""
    fake = FakeCognigy(mode="ok")
    with Workdir() as wd:
        svc = Service(dict(sqlite_env(wd), **cognigy_env(fake, 3000)), wd)
        try:
            status, web, _ = post_event(svc.port, {
                "channel": "webchat", "userId": "visitor-1", "sessionId": "web-1",
                "identities": {"phone": "+49 151 1111 2222", "email": "Ann@Example.com"},
                "slots": {"flight": "LH400", "name": "Ann"}})
            assert status == 200 and web["linkedBy"] == "new", (status, web)
            status, wa, _ = post_event(svc.port, {
                "channel": "whatsapp", "userId": "4915111112222", "sessionId": "wa-1",
                "identities": {"phone": "4915111112222"}})
            assert status == 200, (status, wa)
            assert (wa["conversationId"], wa["linkedBy"], wa["channelSwitched"], wa["restore"]) == \
                (web["conversationId"], "identity:phone", True, "sent"), wa
            got = fake.deliveries("wa-1")
            assert len(got) == 1 and got[0][1]["context"].get("flight") == "LH400", got
            status, voice, _ = post_event(svc.port, {
                "channel": "voice", "userId": "+4930123456", "sessionId": "voice-1", "identities": {"email": "ann@example.COM"}})
            assert (voice["conversationId"], voice["linkedBy"], voice["restore"]) == \
                (web["conversationId"], "identity:email", "sent"), voice
            return (f"web chat -> WhatsApp by phone only -> voice by e-mail: one conversation, "
                    f"{len(fake.deliveries('wa-1')) + len(fake.deliveries('voice-1'))} restores with flight=LH400")
        finally:
            svc.stop()
            fake.shutdown()


class SkipScenario(Exception):
    pass


SCENARIOS = [
    ("replicas_sqlite", scenario_replicas_sqlite),
    ("replicas_sqlite_cached", scenario_replicas_sqlite_cached),
    ("replicas_dynamodb", scenario_replicas_dynamodb),
    ("duplicates", scenario_duplicates),
    ("crash", scenario_crash),
    ("hostile_clients", scenario_hostile_clients),
    ("graceful_shutdown", scenario_graceful_shutdown),
    ("store_outage", scenario_store_outage),
    ("cognigy_outage", scenario_cognigy_outage),
    ("retry_after_crash_loop", scenario_retry_after_crash_loop),
    ("delete_during_writers_sqlite", scenario_delete_during_writers_sqlite),
    ("delete_during_writers_dynamodb", scenario_delete_during_writers_dynamodb),
    ("expired_latest", scenario_expired_latest),
    ("expired_latest_dynamodb", scenario_expired_latest_dynamodb),
    ("stale_restore", scenario_stale_restore),
    ("shared_outbox_lease", scenario_shared_outbox_lease),
    ("outbox_replica_killed_dynamodb", scenario_outbox_replica_killed_dynamodb),
    ("hostile_ids", scenario_hostile_ids),
    ("early_answers", scenario_early_answers),
    ("ready_during_drain", scenario_ready_during_drain),
    ("identity_race_sqlite", scenario_identity_race_sqlite),
    ("identity_race_dynamodb", scenario_identity_race_dynamodb),
    ("identity_switch_restore", scenario_identity_switch_restore),
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
        SCENARIO_DEADLINE[0] = t + SCENARIO_BUDGET_S
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
