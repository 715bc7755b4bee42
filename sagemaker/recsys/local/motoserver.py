"""The embedded AWS as a child process: moto's server on a loopback port.

Run by the stack as ``python -m recsys.local.motoserver --port N``; prints ``READY port=N`` once
it accepts connections and serves until SIGTERM/SIGINT (or until the stack dies).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Optional

from recsys.local.ports import PortInUse, bind_listener
from recsys.local.processes import READY_PREFIX, die_with_parent


def main(argv: Optional[list[str]] = None) -> int:
    """Serve moto on ``--host:--port`` until signalled; 2 if the port is taken."""
    parser = argparse.ArgumentParser(prog="python -m recsys.local.motoserver")
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
