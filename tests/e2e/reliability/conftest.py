"""The reliability suite's local stack: started once per session, shared by the schema fuzzing
and load tests of this folder (the option ``--fuzz-examples`` and the markers ``fuzz``/``soak``
are registered in ``tests/e2e/conftest.py`` so ``pytest tests/e2e -m fuzz --fuzz-examples=N``
parses)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from recsys_tools.local.ports import free_port

from ..test_local_stack import StackProcess

DEFAULT_FUZZ_EXAMPLES = 5  # per operation in `make test`; `make fuzz` passes 500
DEFAULT_SOAK_SECONDS = 10.0  # `make soak` sets SOAK_SECONDS=60

# Figures the tests measured, printed at the end of the run (docs/RELIABILITY.md quotes them).
FIGURES: dict = {}


@pytest.fixture(scope="package")
def reliability_stack(tmp_path_factory):
    """One `recsys local up` (small synthetic data) for the whole reliability suite.

    The stack of ``test_local_stack.py`` is module-scoped there (its last tests break and restart
    it), so it cannot be shared; this one is package-scoped, so it is stopped when this folder's
    tests end and never runs beside that one.
    ``RELIABILITY_STACK_DIR=<work dir>`` uses a stack already running there instead (debugging).
    """
    running = os.environ.get("RELIABILITY_STACK_DIR")
    if running:
        state = json.loads((Path(running) / "run" / "stack.json").read_text())
        yield {"proc": None, "state": state, "url": state["gateway_url"], "work_dir": Path(running)}
        return
    work_dir = tmp_path_factory.mktemp("reliability") / "work"
    work_dir.mkdir()
    proc = StackProcess(work_dir, free_port(), "reliability")
    try:
        state = proc.wait_ready()
    except BaseException:
        proc.stop(signal.SIGKILL)
        raise
    yield {"proc": proc, "state": state, "url": proc.url, "work_dir": work_dir}
    code = proc.stop()
    assert code == 0, f"stack exited {code}:\n{proc.output()[-3000:]}"


# Read before the fuzz module is imported: schemathesis builds its tests at collection time.
FUZZ = {"examples": DEFAULT_FUZZ_EXAMPLES}


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--fuzz-examples", default=None)
    if value:
        FUZZ["examples"] = int(value)


@pytest.fixture(scope="session")
def soak_seconds() -> float:
    """How long the sustained-rate test runs (``SOAK_SECONDS``)."""
    return float(os.environ.get("SOAK_SECONDS") or DEFAULT_SOAK_SECONDS)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name}: {json.dumps(value, sort_keys=True)}")
    out = os.environ.get("RELIABILITY_FIGURES")
    if out:
        Path(out).write_text(json.dumps(FIGURES, indent=1, sort_keys=True) + "\n")
