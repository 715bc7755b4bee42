"""checkov in its own virtual environment, built on first use from ``constraints-checkov.txt``.

checkov cannot share ``.venv``: it pins boto3 1.35, packaging < 24, networkx < 2.7, cachetools < 6
and schema <= 0.7.5, all below the project's pins in ``constraints.txt``. So it lives in
``.venv/checkov`` (``make clean`` removes it with ``.venv``), rebuilt when its pins change, and
runs as a subprocess with JSON output.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from infra_env import REPO

CONSTRAINTS = REPO / "constraints-checkov.txt"
VENV = REPO / ".venv" / "checkov"
STAMP = VENV / ".constraints-sha256"
UV = Path(sys.executable).parent / "uv"


def _pinned_version() -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        if line.startswith("checkov=="):
            return line.split("==", 1)[1].strip()
    raise RuntimeError(f"{CONSTRAINTS} pins no checkov version")


def ensure_checkov() -> Path:
    """The checkov executable, installing it first if its venv is missing or out of date.

    Safe to call from concurrent test sessions: the build holds a file lock.
    """
    digest = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()
    executable = VENV / "bin" / "checkov"
    VENV.parent.mkdir(exist_ok=True)
    with open(VENV.parent / ".checkov.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if executable.exists() and STAMP.exists() and STAMP.read_text() == digest:
            return executable
        uv = str(UV) if UV.exists() else "uv"
        subprocess.run(
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(VENV)],
            check=True,
        )
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(VENV / "bin" / "python"),
                "-c",
                str(CONSTRAINTS),
                f"checkov=={_pinned_version()}",
            ],
            check=True,
        )
        STAMP.write_text(digest)
    return executable


def run_checkov(files: list[Path]) -> dict:
    """Run checkov's CloudFormation checks over ``files``; its JSON report (one framework).

    Offline: ``--skip-download`` (no platform policies) and no version check.
    """
    env = {
        **os.environ,
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "BC_SKIP_MAPPING": "TRUE",
        "CKV_IGNORE_HIDDEN_DIRECTORIES": "true",
        "LOG_LEVEL": "WARNING",
    }
    args = [str(ensure_checkov()), "--framework", "cloudformation", "--output", "json"]
    args += ["--skip-download", "--soft-fail"]  # the exit code is ours to decide, from the JSON
    for path in files:
        args += ["--file", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"checkov failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one entry per framework that found files
        (report,) = [r for r in report if r.get("check_type") == "cloudformation"]
    return report
