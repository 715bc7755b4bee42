"""The example Personalize export (examples/personalize) trains and serves through the local stack
with no edits: ``recsys local up --events interactions.csv --items items.csv --users users.csv``.

One small stack for the module (150 users, 120 items, about 3,200 interactions, ``dim=16``), the
same way test_local_stack.py starts its own; then the API answers for the export's own ids.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from recsys_tools.local.ports import free_port
from recsys_tools.local.training import CODE_VERSION_ENV

from .conftest import REPO, child_env, python

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples" / "personalize"
START_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("personalize") / "work"
    work_dir.mkdir()
    port = free_port()
    log_path = work_dir.parent / "stack.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [python(), "-m", "recsys_tools.local", "up", "--port", str(port), "--work-dir", str(work_dir),
             "--events", str(EXAMPLES / "interactions.csv"), "--items", str(EXAMPLES / "items.csv"),
             "--users", str(EXAMPLES / "users.csv"), "-H", "dim=16"],
            env={**child_env(), CODE_VERSION_ENV: "e2e-personalize"}, cwd=str(REPO), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while f"READY {url}" not in log_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"stack not ready (exit {proc.poll()}):\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
            state = json.loads((work_dir / "run" / "stack.json").read_text())
            yield {"url": url, "state": state, "log": log_path}
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _column(name: str, column: str) -> list:
    with open(EXAMPLES / name, newline="") as fh:
        return [row[column] for row in csv.DictReader(fh)]


def test_the_export_trained_with_every_row_its_users_and_its_metadata(stack):
    out = stack["log"].read_text()
    assert "[2/5] training on" in out and "users.csv" in out
    model_dir = Path(stack["state"]["model_dir"])
    manifest = json.loads((model_dir / "manifest.json").read_text())
    report = manifest["training_data"]["events_report"]
    assert report["rows"] == len(_column("interactions.csv", "USER_ID")) and report["bad_rows"] == 0
    assert manifest["training_data"]["items"] == 120
    carried = (model_dir / "users.csv").read_text().splitlines()
    assert carried[0] == "user_id,AGE,MEMBERSHIP" and len(carried) == 151


def test_recommendations_similar_items_and_events_for_the_exports_ids(stack):
    items = set(_column("items.csv", "ITEM_ID"))
    resp = requests.post(stack["url"] + "/recommendations", json={"userId": "user-008", "numResults": 5}, timeout=30)
    assert resp.status_code == 200, resp.text
    recommended = [e["itemId"] for e in resp.json()["itemList"]]
    assert len(recommended) == 5 and set(recommended) <= items and resp.json()["degraded"] is False
    similar = requests.get(stack["url"] + "/items/item-000/similar?numResults=4", timeout=30)
    assert similar.status_code == 200, similar.text
    assert {e["itemId"] for e in similar.json()["itemList"]} <= items
    event = {"eventId": "ex-1", "eventType": "purchase", "eventValue": 112.54, "itemId": recommended[0],
             "sentAt": int(time.time())}
    put = requests.post(stack["url"] + "/events", json={"trackingId": "example", "userId": "user-008",
                                                        "sessionId": "s-ex", "eventList": [event]}, timeout=30)
    assert put.status_code == 200, put.text


def test_users_needs_events_and_a_file_and_changes_the_run_key(tmp_path):
    from recsys_tools.local.stack import LocalStack, StackError, StackOptions
    from recsys_tools.local.training import TrainingInputs, run_key

    with pytest.raises(StackError, match="--users needs --events"):
        LocalStack(StackOptions(work_dir=tmp_path, users=EXAMPLES / "users.csv"))._validate_inputs()
    with pytest.raises(StackError, match=r"--users .*nope.csv: no such file"):
        LocalStack(StackOptions(work_dir=tmp_path, events=EXAMPLES / "interactions.csv",
                                users=tmp_path / "nope.csv"))._validate_inputs()
    plain = TrainingInputs(EXAMPLES / "interactions.csv", EXAMPLES / "items.csv")
    with_users = TrainingInputs(EXAMPLES / "interactions.csv", EXAMPLES / "items.csv", users=EXAMPLES / "users.csv")
    assert "users_sha256" not in run_key(plain)  # runs stored before --users keep their key
    assert run_key(with_users)["key"] != run_key(plain)["key"]
