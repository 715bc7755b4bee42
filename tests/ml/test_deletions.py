"""Training without the users deleted through DELETE /users/{userId}: the deletion records (the
``deletions`` channel) drop the user's logged rows, also those of sessions merged into the user,
and the model's batch output has nothing of the user."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from recsys import batch_contract, data

PREFIX = batch_contract.SESSION_OWNER_PREFIX


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _deletion(folder, user, when, name=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (name or f"{abs(hash(user))}.json")).write_text(json.dumps({"userId": user, "deletedAt": when}))


def test_deletion_records_are_read_and_the_marker_is_skipped(tmp_path):
    folder = tmp_path / "deletions"
    folder.mkdir()
    (folder / "_marker.json").write_text("{}")
    _deletion(folder, "u1", 100.0, "a.json")
    _deletion(folder / "sub", "u1", 250.5, "b.json")
    _deletion(folder, "u2", 7, "c.json")
    assert data.load_deletions(folder) == {"u1": 250.5, "u2": 7.0}
    assert data.load_deletions(None) == {} and data.load_deletions(tmp_path / "absent") == {}


@pytest.mark.parametrize("text, message", [("not json", "not a deletion record"),
                                           ('{"deletedAt": 1}', "needs a userId"),
                                           ('{"userId": "u", "deletedAt": "soon"}', "deletedAt")])
def test_a_broken_deletion_record_fails_loudly(tmp_path, text, message):
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(data.DataError, match=message):
        data.load_deletions(tmp_path)


def test_the_loader_drops_a_deleted_users_rows_and_merged_sessions_up_to_the_deletion(tmp_path):
    rows = [{"user_id": "gone", "item_id": "a", "timestamp": 1, "event_id": "e1", "received_at": 10},
            {"user_id": PREFIX + "s1", "item_id": "b", "timestamp": 2, "event_id": "e2", "received_at": 11},
            {"record_type": "identity", "user_id": "gone", "session_owner": PREFIX + "s1", "timestamp": 12},
            {"user_id": "kept", "item_id": "a", "timestamp": 3, "event_id": "e3", "received_at": 13},
            {"user_id": "gone", "item_id": "c", "timestamp": 4},  # no received_at: its timestamp counts
            {"user_id": "gone", "item_id": "new", "timestamp": 60, "event_id": "e9", "received_at": 60}]
    log = _write(tmp_path / "log.jsonl", rows)
    events = data.load_events(log, deletions={"gone": 50.0, "never-logged": 50.0})
    assert list(zip(events.user_ids, events.item_ids)) == [("kept", "a"), ("gone", "new")]
    assert events.report.deleted_rows == 3 and events.report.deleted_users == 1
    assert events.report.to_json()["deleted_rows"] == 3
    assert len(data.load_events(log)) == 5  # without deletions nothing is dropped


def test_training_after_a_deletion_has_no_trace_of_the_user(tmp_path):
    """Events, delete, retrain: the user is absent from the training data and the artifacts."""
    from recsys import synth, train

    events_csv, items_csv = synth.write_dataset(tmp_path / "data", n_users=120, n_items=80, n_events=2500, seed=3)
    with open(events_csv, newline="") as f:
        users = [row["user_id"] for row in csv.DictReader(f)]
    gone = max(set(users), key=users.count)  # the most active user: surely in every output
    deletions = tmp_path / "deletions"
    deletions.mkdir()
    (deletions / "_marker.json").write_text("{}")
    _deletion(deletions, gone, 4_000_000_000)
    params = {"dim": 8, "epochs": 1, "ef_construction": 40, "ranker_users": 100, "ranker_negatives": 5,
              "ranker_hard_negatives": 2}
    said = []
    train.train(events_csv, items_csv, tmp_path / "model", tmp_path / "out", hyperparameters=params,
                log=said.append, deletions_path=deletions)
    assert any(f"dropped {users.count(gone):,} event(s) of 1 deleted user(s)" in line for line in said)
    batch = tmp_path / "out" / batch_contract_dir()
    with open(batch / "users.jsonl") as f:
        ids = {json.loads(line)["userId"] for line in f}
    assert gone not in ids and len(ids) >= 100
    for path in [*(tmp_path / "model").rglob("*"), *(tmp_path / "out").rglob("*")]:
        if path.is_file() and path.suffix in (".json", ".jsonl", ".txt", ".csv"):
            assert f'"{gone}"' not in path.read_text(errors="replace"), path


def test_both_sagemaker_jobs_read_the_deletions_channel(tmp_path):
    """train_retrieval.py and train_ranker.py as SageMaker runs them, with SM_CHANNEL_DELETIONS."""
    from recsys import synth

    repo = Path(__file__).resolve().parents[2]
    events_csv, _ = synth.write_dataset(tmp_path / "data", n_users=120, n_items=80, n_events=2500, seed=4)
    with open(events_csv, newline="") as f:
        users = [row["user_id"] for row in csv.DictReader(f)]
    gone = max(set(users), key=users.count)
    ev, deletions = tmp_path / "ev", tmp_path / "del"
    ev.mkdir()
    (ev / "events.csv").write_bytes(Path(events_csv).read_bytes())
    _deletion(deletions, gone, 4_000_000_000)
    (deletions / "_marker.json").write_text("{}")
    args = ["--dim", "8", "--epochs", "1", "--ranker_users", "100"]

    def job(script, env):
        run = subprocess.run([sys.executable, str(repo / "sagemaker" / script), *args],
                             env={**os.environ, "PYTHONPATH": "", "SM_CHANNEL_EVENTS": str(ev),
                                  "SM_CHANNEL_DELETIONS": str(deletions), **env},
                             capture_output=True, text=True, timeout=300, cwd=str(repo / "sagemaker"))
        assert run.returncode == 0, run.stderr
        assert f"dropped {users.count(gone):,} event(s) of 1 deleted user(s)" in run.stdout + run.stderr
        return run

    job("train_retrieval.py", {"SM_MODEL_DIR": str(tmp_path / "m1")})
    (tmp_path / "retrieval").mkdir()
    with tarfile.open(tmp_path / "retrieval" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "m1", arcname=".")
    job("train_ranker.py", {"SM_CHANNEL_RETRIEVAL": str(tmp_path / "retrieval"), "SM_MODEL_DIR": str(tmp_path / "m2"),
                            "SM_OUTPUT_DATA_DIR": str(tmp_path / "out")})
    ids = [json.loads(line)["userId"] for line in (tmp_path / "out" / "batch" / "users.jsonl").read_text().splitlines()]
    assert gone not in ids and len(ids) >= 100


def batch_contract_dir() -> str:
    from recsys_lambdas import contracts

    return contracts.BATCH_OUTPUT_DIR
