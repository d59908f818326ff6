"""moto's DynamoDB-compatible server, applying one request at a time.

Why: moto_server is threaded, and its conditional PutItem reads the current item, parses and
evaluates the condition, then stores, with no lock (moto/dynamodb/models/table.py,
Table.put_item). Two concurrent `attribute_not_exists` writes of the same key can therefore
both succeed, which real DynamoDB never allows; our concurrency test caught it as a lost
update (319 versions for 320 acknowledged writes). A lock around the WSGI app restores the
atomicity the tests rely on; connections and keep-alive stay as moto_server has them.

moto's TransactWriteItems deep-copies every table it touches before applying, to roll back
on a failed condition: a cost that grows with the table (a 300-version contention test spent
seconds per transaction and timed out). Real DynamoDB has no such cost. Since requests are
applied one at a time here and our transactions only Put, Delete and ConditionCheck (which
replace or remove Item objects, never mutate them), a copy of the table's item dicts is an
exact rollback point; update_item's own deepcopy of one item is left as it is.

Usage: moto_serial.py HOST PORT
"""
import copy
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table


class _RollbackCopy:
    """Stands in for the `copy` module inside moto.dynamodb.models."""

    @staticmethod
    def deepcopy(obj, memo=None):
        if isinstance(obj, Table):
            clone = copy.copy(obj)
            clone.items = type(obj.items)(dict)
            for key, value in obj.items.items():
                clone.items[key] = dict(value) if isinstance(value, dict) else value
            return clone
        return copy.deepcopy(obj, memo)

    copy = staticmethod(copy.copy)


dynamodb_models.copy = _RollbackCopy

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
