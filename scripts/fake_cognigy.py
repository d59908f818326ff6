"""A local fake of Cognigy's context-inject endpoint, for trying restores by hand and for
scripts/bench_restore.sh. Answers POST /new/v2.0/sessions/{id}/context/inject with 200 at
once and prints each received body on stdout. Loopback only.

Usage: fake_cognigy.py PORT [--quiet]
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if "--quiet" not in sys.argv:
            print(self.path, self.headers.get("X-API-Key") or self.headers.get("Authorization"), body.decode(), flush=True)
        # One write for the whole answer: separate small writes for headers and body meet
        # Nagle's algorithm and the client's delayed ACK, a 40 ms stall per request.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
# socketserver listens with a backlog of 5: 32 clients connecting at once lose SYNs (1 s retransmits).
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
