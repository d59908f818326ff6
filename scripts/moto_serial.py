"""moto's DynamoDB-compatible server, applying one request at a time.

Why: moto_server is threaded, and its conditional PutItem reads the current item, parses and
evaluates the condition, then stores, with no lock (moto/dynamodb/models/table.py,
Table.put_item). Two concurrent `attribute_not_exists` writes of the same key can therefore
both succeed, which real DynamoDB never allows; our concurrency test caught it as a lost
update (319 versions for 320 acknowledged writes). A lock around the WSGI app restores the
atomicity the tests rely on; connections and keep-alive stay as moto_server has them.

Usage: moto_serial.py HOST PORT
"""
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialized(environ, start_response):
    with lock:
        # Materialise the body inside the lock: the request is applied and answered whole.
        return list(app(environ, start_response))


run_simple(host, port, serialized, threaded=True)
