"""Loopback ports: find free ones, check that a wanted one is free."""

from __future__ import annotations

import contextlib
import errno
import socket
import time


class PortInUse(OSError):
    """A port the stack needs is already bound by another process."""

    def __init__(self, host: str, port: int, what: str) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"port {port} on {host} ({what}) is already in use: stop the process holding it "
            f"(another `recsys local up`?) or choose another port",
        )
        self.host = host
        self.port = port
        self.what = what

    def __str__(self) -> str:
        return str(self.strerror)


def bind_listener(host: str, port: int, what: str, backlog: int = 128) -> socket.socket:
    """Bind and listen on ``host:port`` (0 = any free port).

    SO_REUSEADDR lets a restart bind straight after a clean shutdown (sockets in TIME_WAIT) while
    still failing when a live process listens there.

    Raises:
        PortInUse: when another process holds the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PortInUse(host, port, what) from None
        raise
    sock.listen(backlog)
    sock.set_inheritable(False)
    return sock


def check_free(host: str, port: int, what: str) -> None:
    """Raise :class:`PortInUse` if ``host:port`` can't be bound now (0 always passes)."""
    if port:
        bind_listener(host, port, what).close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the kernel picks it)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_closed(host: str, port: int, timeout: float = 10.0) -> bool:
    """Wait until nothing accepts connections on ``host:port``; True if it closed in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_listening(host, port, timeout=0.2):
            return True
        time.sleep(0.05)
    return False
