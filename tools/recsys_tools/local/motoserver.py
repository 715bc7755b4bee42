"""The embedded AWS as a child process: moto's server on a loopback port.

Run by the stack as ``python -m recsys_tools.local.motoserver --port N``; prints ``READY port=N`` once
it accepts connections and serves until SIGTERM/SIGINT (or until the stack dies).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Optional

from recsys_tools.local.ports import PortInUse, bind_listener
from recsys_tools.local.processes import READY_PREFIX, die_with_parent


def cheap_transaction_backups() -> None:
    """Make moto's TransactWriteItems back up only the items a transaction addresses.

    moto deep-copies every table a transaction touches so it can roll back; with a few thousand
    user histories that is seconds per ``POST /events``, past the handlers' DynamoDB timeout.
    The backup here deep-copies the addressed items and shares the others (a transaction
    cannot change an item it does not address), so a failed transaction still rolls back to
    exactly the state before it.
    """
    import copy
    import threading

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    addressed = threading.local()
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list) -> None:
        keys: dict = {}
        for item in transact_items:
            op = next(iter(item.values()), None) or {}
            table = self.tables.get(op.get("TableName") or "")
            key = op.get("Key") or op.get("Item") or {}
            if table is not None and table.hash_key_attr in key:
                keys.setdefault(table.name, set()).add(DynamoType(key[table.hash_key_attr]))
        addressed.keys = keys
        try:
            original(self, transact_items)
        finally:
            addressed.keys = None

    def backup(table: Any) -> Any:
        touched = addressed.keys.get(table.name, set())
        clone = copy.copy(table)
        clone.items = copy.copy(table.items)
        for hash_key in touched:
            if hash_key in table.items:
                clone.items[hash_key] = copy.deepcopy(table.items[hash_key])
        if table.range_key_attr is not None:  # {hash: {range: item}}: new range keys may appear
            for hash_key, inner in table.items.items():
                if hash_key not in touched:
                    clone.items[hash_key] = dict(inner)
        return clone

    class CopyModule:
        """``copy`` for moto's dynamodb models: table backups as above, the rest unchanged."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        def deepcopy(self, obj: Any, memo: Optional[dict] = None) -> Any:
            if isinstance(obj, Table) and getattr(addressed, "keys", None) is not None:
                return backup(obj)
            return copy.deepcopy(obj, memo)

    models.copy = CopyModule()  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def serialised_dynamodb() -> None:
    """Answer one DynamoDB request at a time, so transactions are atomic as on DynamoDB.

    moto applies a transaction's items one by one and rolls a cancelled one back by restoring
    whole tables: with concurrent writers (werkzeug serves each request on its own thread) a
    write landing in between was lost, or a condition was checked against a state about to
    change. Thirty concurrent PutEvents left 26 events in a history while all 30 were ACCEPTED.
    A lock around every DynamoDB action makes each request, transactions included, atomic and
    isolated, so the handlers' optimistic concurrency behaves as against DynamoDB.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def main(argv: Optional[list[str]] = None) -> int:
    """Serve moto on ``--host:--port`` until signalled; 2 if the port is taken."""
    parser = argparse.ArgumentParser(prog="python -m recsys_tools.local.motoserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    args = parser.parse_args(argv)
    die_with_parent()

    # One access-log line per AWS call would drown the stack's own output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:  # before importing moto (seconds): a taken port fails at once
        sock = bind_listener(args.host, args.port, "embedded AWS")
    except PortInUse as exc:
        print(f"error: {exc}", flush=True)
        return 2
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    cheap_transaction_backups()
    serialised_dynamodb()
    app = DomainDispatcherApplication(create_backend_app)
    # werkzeug serves our socket (it would print a paragraph and exit on a taken port itself)
    server = make_server(args.host, sock.getsockname()[1], app, threaded=True,
                         request_handler=MotoRequestHandler, fd=sock.fileno())
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    print(f"{READY_PREFIX}port={sock.getsockname()[1]}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
