"""Child processes of the local stack: each in its own process group, stopped as a group.

A child runs in a new session so the terminal's Ctrl-C reaches only the stack, which then stops
its children in reverse start order (SIGTERM to the whole group, SIGKILL after a grace period):
no worker a child forked is left behind. Children written for the stack also ask the kernel to
signal them if the stack dies without cleaning up (:func:`die_with_parent`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Callable, Optional

READY_PREFIX = "READY "


class ChildFailed(RuntimeError):
    """A child process exited before it became ready, or with a non-zero status."""


def die_with_parent(parent_pid: Optional[int] = None, watch_thread: bool = True) -> None:
    """Make the calling process get SIGTERM when its parent dies (Linux ``prctl``), and watch it.

    Args:
        parent_pid: the parent to watch (default: the current parent).
        watch_thread: also poll the parent from a daemon thread (for systems without ``prctl``);
            a process that forks later passes False and polls :func:`parent_gone` itself, since
            forking with threads running is unsafe.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if not watch_thread:
        return
    watched = parent_pid if parent_pid is not None else os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != watched:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _pump(stream: IO[str], prefix: str, out: IO[str], lines: Optional[list[str]]) -> None:
    for line in iter(stream.readline, ""):
        if lines is not None:
            lines.append(line)
            del lines[:-200]
        try:
            out.write(f"{prefix}{line}" if prefix else line)
            out.flush()
        except (ValueError, OSError):  # our stdout closed during shutdown
            pass
    stream.close()


class Child:
    """One child process (and its process group).

    Args:
        name: short name used in messages and as the output prefix.
        argv: the command.
        env: the full environment of the child.
        cwd: working directory.
        echo: print the child's output, prefixed with ``[name]``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Optional[dict[str, str]] = None,
        cwd: Optional[str] = None,
        echo: bool = True,
        out: Optional[IO[str]] = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.echo = echo
        self.out = out or sys.stdout
        self.proc: Optional[subprocess.Popen] = None
        self.tail: list[str] = []
        self._pump_thread: Optional[threading.Thread] = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> Child:
        """Start the child in a new session, output piped (stderr merged into stdout)."""
        self.proc = subprocess.Popen(  # noqa: S603 - argv built by the stack, no shell
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float, is_ready: Optional[Callable[[], bool]] = None) -> str:
        """Wait for the child's ``READY ...`` line (echoing what comes before it).

        Returns:
            the rest of the READY line (e.g. ``"port=1234"``).

        Raises:
            ChildFailed: the child exited first or did not get ready in time.
        """
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        prefix = f"[{self.name}] "
        ready_line: list[str] = []

        def read_until_ready() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in iter(self.proc.stdout.readline, ""):
                if line.startswith(READY_PREFIX):
                    ready_line.append(line[len(READY_PREFIX):].strip())
                    return
                self.tail.append(line)
                del self.tail[:-200]
                if self.echo:
                    self.out.write(prefix + line)
                    self.out.flush()

        reader = threading.Thread(target=read_until_ready, daemon=True)
        reader.start()
        while reader.is_alive() and time.monotonic() < deadline:
            reader.join(0.1)
        if not ready_line:
            if not reader.is_alive():  # its output ended: it is exiting, get the status
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
            code = self.proc.poll()
            self.stop()
            why = f"exited with status {code}" if code is not None else f"not ready after {timeout:.0f}s"
            if self.echo:  # its output is already on screen
                raise ChildFailed(f"{self.name} {why} (its output is above)")
            raise ChildFailed(f"{self.name} {why}; last output:\n" + "".join(self.tail[-15:]))
        self._pump_thread = threading.Thread(
            target=_pump,
            args=(self.proc.stdout, prefix if self.echo else "", self.out if self.echo else open(os.devnull, "w"), self.tail),  # noqa: SIM115
            name=f"pump-{self.name}",
            daemon=True,
        )
        self._pump_thread.start()
        return ready_line[0]

    def run_to_end(self) -> int:
        """Stream the child's output until it exits; return its exit status."""
        assert self.proc is not None and self.proc.stdout is not None
        prefix = f"[{self.name}] "
        for line in iter(self.proc.stdout.readline, ""):
            self.tail.append(line)
            del self.tail[:-200]
            if self.echo:
                self.out.write(prefix + line)
                self.out.flush()
        return self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds; idempotent."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the child leads its own group
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        # The leader may be gone while workers it forked linger: kill what is left of the group.
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        _wait_group_gone(pgid, grace)
        if self._pump_thread is not None:
            self._pump_thread.join(1.0)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``; Linux reads /proc."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def _wait_group_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def python_child_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The stack's environment for a Python child: unbuffered output, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env
