"""Shared helpers of the local-stack tests: fake AWS credentials, process and port checks."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials: nothing in these tests may reach real AWS."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)


def child_env() -> dict:
    """Environment for a child Python: the repo's packages importable, output unbuffered."""
    env = dict(os.environ)
    paths = [str(REPO / "sagemaker"), str(REPO / "lambdas"), str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def python() -> str:
    return sys.executable


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``make fuzz`` passes ``--fuzz-examples`` (schemathesis examples per API operation)."""
    parser.addoption("--fuzz-examples", type=int, default=None,
                     help="schemathesis examples per operation in tests/e2e/reliability (default 5)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: schema fuzzing of the local stack (longer under make fuzz)")
    config.addinivalue_line("markers", "soak: sustained load on the local stack (longer under make soak)")
