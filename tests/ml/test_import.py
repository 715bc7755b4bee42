"""``recsys data import`` (good and bad input, exit codes, messages), the example Personalize
export in examples/personalize, and the training jobs' users channel and column_map."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from recsys import cli, data

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "personalize"


def run_cli(capsys, *args):
    status = cli.main(["data", "import", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_import_writes_the_canonical_files_and_prints_the_report(tmp_path, capsys):
    ev = write(tmp_path / "in" / "interactions.csv",
               "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\nu1,a,10,view,\nu1,b,20,purchase,19.5\n"
               "u2,a,5,cart,2\nu2,a,6,cart,oops\n" + "".join(f"u{n},a,{n},view,\n" for n in range(3, 200)))
    it = write(tmp_path / "in" / "items.csv", "ITEM_ID,CATEGORY_L1,PRICE\na,shoes,3\nb,hats,4\n")
    us = write(tmp_path / "in" / "users.csv", "USER_ID,AGE\nu1,30\nu2,\n")
    status, out, err = run_cli(capsys, "--events", str(ev), "--items", str(it), "--users", str(us),
                               "--out", str(tmp_path / "out"))
    assert status == 0, err
    report = json.loads(out)
    assert report["events"]["rows"] == 200 and report["events"]["bad_rows"] == 1
    assert report["events"]["examples"] == ["interactions.csv line 5: event_value 'oops' is not a finite number"]
    assert report["events"]["event_types"] == {"cart": 1, "purchase": 1, "view": 198}
    assert report["events"]["with_event_value"] == 2
    assert report["items"]["rows"] == 2 and report["users"]["rows"] == 2
    assert "[import] events: 200 rows" in err and "skipped 1 bad row(s)" in err
    lines = (tmp_path / "out" / "events.csv").read_text().splitlines()
    assert lines[:3] == ["user_id,item_id,timestamp,event_type,event_value", "u1,a,10,view,", "u1,b,20,purchase,19.5"]
    assert (tmp_path / "out" / "items.csv").read_text().splitlines() == [
        "item_id,title,category,PRICE", "a,a,shoes,3", "b,b,hats,4"]
    assert (tmp_path / "out" / "users.csv").read_text().splitlines() == ["user_id,AGE", "u1,30", "u2,"]


def test_import_with_a_column_map_reads_json_lines_with_other_names(tmp_path, capsys):
    rows = [{"customer": f"c{n % 7}", "sku": f"s{n % 5}", "ts": 100 + n, "amount": n} for n in range(30)]
    src = write(tmp_path / "orders.jsonl", "\n".join(json.dumps(r) for r in rows))
    status, _, err = run_cli(capsys, "--events", str(src), "--map", "user=customer,item=sku,timestamp=ts,"
                               "event_value=amount", "--out", str(tmp_path / "out"))
    assert status == 0, err
    events = data.load_events(tmp_path / "out" / "events.csv")
    assert len(events) == 30 and events.user_ids[0] == "c0" and events.event_values[29] == 29.0


@pytest.mark.parametrize("files, extra, message", [
    ({"interactions.csv": "customer,sku,ts\nc,s,1\n"}, [],
     r"^recsys data: error: .*interactions.csv: CSV header \['customer', 'sku', 'ts'\] lacks required column\(s\) "
     r"\['user_id', 'item_id', 'timestamp'\].*user_id=<your column>\)$"),
    ({"interactions.csv": "USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE\n" + "u,a,1,x\n" * 3 + "u,a,1,1\n" * 50}, [],
     r"^recsys data: error: .*3 of 53 event rows are bad \(5.7% > the 1.0% threshold\); first: "
     r"interactions.csv line 2: event_value 'x' is not a finite number"),
    ({"interactions.csv": "USER_ID,ITEM_ID,TIMESTAMP\nu,a,1\n", "users.csv": "USER_ID,AGE\nu,1\nu,2\n"}, [],
     r"^recsys data: error: .*users.csv: 1 of 2 user rows are bad .*user_id 'u' appears again"),
    ({"interactions.csv": "USER_ID,ITEM_ID,TIMESTAMP\nu,a,1\n"}, ["--map", "shoe=size"],
     r"^recsys data: error: column map: unknown column 'shoe'; known: "),
    ({}, [], r"^recsys data: error: give at least one of --events, --items, --users$"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, files, extra, message):
    args = []
    for name, text in files.items():
        flag = {"interactions.csv": "--events", "users.csv": "--users"}[name]
        args += [flag, str(write(tmp_path / "in" / name, text))]
    status, out, err = run_cli(capsys, *args, *extra, "--out", str(tmp_path / "out"))
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err.strip()), err
    assert not (tmp_path / "out").exists()


def test_a_missing_input_file_is_a_clear_error(tmp_path, capsys):
    status, _, err = run_cli(capsys, "--events", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "out"))
    assert status == 2 and err.strip().endswith("nope.csv: file not found")


# --- the example export ---------------------------------------------------------------------------


def test_the_example_files_are_what_their_generator_writes(tmp_path):
    run = subprocess.run([sys.executable, str(EXAMPLES / "generate.py"), str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    for name in ("interactions.csv", "items.csv", "users.csv"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), f"{name}: rerun generate.py"


def test_the_example_export_imports_without_a_bad_row(tmp_path, capsys):
    status, out, err = run_cli(capsys, "--events", str(EXAMPLES / "interactions.csv"),
                               "--items", str(EXAMPLES / "items.csv"), "--users", str(EXAMPLES / "users.csv"),
                               "--out", str(tmp_path / "out"))
    assert status == 0, err
    report = json.loads(out)
    with open(EXAMPLES / "interactions.csv", newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert list(raw[0]) == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    assert report["events"]["rows"] == len(raw) and report["events"]["bad_rows"] == 0
    assert set(report["events"]["event_types"]) == {"view", "cart", "purchase"}
    assert report["events"]["with_event_value"] == sum(1 for r in raw if r["EVENT_TYPE"] != "view") > 0
    assert report["items"]["rows"] == 120 and report["users"]["rows"] == 150
    items = data.load_items(tmp_path / "out" / "items.csv")
    assert set(items.categories) == {"shoes", "hats", "bags", "shirts", "socks", "coats"}
    assert {"BRAND", "PRICE", "CREATION_TIMESTAMP"} <= set(items.attributes[0])
    users = data.load_users(EXAMPLES / "users.csv")
    assert {"AGE", "MEMBERSHIP"} == set(users.attributes[1])


# --- the training jobs: users channel and column_map ----------------------------------------------


def test_both_sagemaker_jobs_take_mapped_columns_and_carry_the_users_table(tmp_path):
    """train_retrieval.py / train_ranker.py as SageMaker runs them: events under other names read with
    the column_map hyperparameter (job 2 takes it from job 1's artifact), users from SM_CHANNEL_USERS."""
    ev, users = tmp_path / "ev", tmp_path / "users"
    with open(EXAMPLES / "interactions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[0] = ["customer", "sku", "ts", "action", "amount"]
    ev.mkdir()
    with open(ev / "orders.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    users.mkdir()
    (users / "users.csv").write_bytes((EXAMPLES / "users.csv").read_bytes())
    (users / "_marker.json").write_text("{}")  # the pipeline's MarkUsers: not a users file
    common = ["--dim", "8", "--epochs", "1", "--ranker_users", "100"]

    def job(script, args, env):
        run = subprocess.run([sys.executable, str(REPO / "sagemaker" / script), *args],
                             env={**os.environ, "PYTHONPATH": "", "SM_CHANNEL_EVENTS": str(ev), **env},
                             capture_output=True, text=True, timeout=300, cwd=str(REPO / "sagemaker"))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        return run.stdout + run.stderr

    log1 = job("train_retrieval.py", [*common, "--column_map", "user=customer,item=sku,timestamp=ts,"
                                      "event_type=action,event_value=amount"],
               {"SM_MODEL_DIR": str(tmp_path / "m1"), "SM_CHANNEL_USERS": str(users)})
    assert "150 users with metadata" in log1
    assert data.load_users(tmp_path / "m1" / "users.csv").user_ids == data.load_users(users).user_ids
    (tmp_path / "retrieval").mkdir()
    with tarfile.open(tmp_path / "retrieval" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "m1", arcname=".")
    log2 = job("train_ranker.py", common, {"SM_CHANNEL_RETRIEVAL": str(tmp_path / "retrieval"),
                                           "SM_MODEL_DIR": str(tmp_path / "m2"),
                                           "SM_OUTPUT_DATA_DIR": str(tmp_path / "out")})
    assert "users table (150 users) carried into" in log2
    carried = data.load_users(tmp_path / "m2" / "users.csv")
    assert carried.user_ids[:2] == ["user-000", "user-001"] and carried.attributes[1] == {"AGE": "35", "MEMBERSHIP": "silver"}
    batch_users = (tmp_path / "out" / "batch" / "users.jsonl").read_text()
    assert '"userId": "user-008"' in batch_users or '"userId":"user-008"' in batch_users


def test_an_optional_channel_holding_only_the_pipelines_marker_is_absent(tmp_path, monkeypatch):
    """MarkUsers writes users/_marker.json so SageMaker accepts the prefix before any users file
    exists: the jobs read such a channel as no channel, and loaders skip "_..." files."""
    from recsys import jobs

    channel = tmp_path / "users"
    (channel / "sub").mkdir(parents=True)
    (channel / "_marker.json").write_text("{}")
    (channel / "sub" / "_SUCCESS").write_text("")
    monkeypatch.setenv("SM_CHANNEL_USERS", str(channel))
    assert jobs._channel("users", required=False) is None
    write(channel / "users.csv", "user_id,age\nu1,30\n")
    assert jobs._channel("users", required=False) == channel
    assert data.load_users(channel).user_ids == ["u1"]  # the marker is not read as a bad row


def test_a_job_without_the_column_map_fails_with_the_hint(tmp_path):
    ev = write(tmp_path / "ev" / "orders.csv", "customer,sku,ts\nc,s,1\n")
    run = subprocess.run([sys.executable, str(REPO / "sagemaker" / "train_retrieval.py")],
                         env={**os.environ, "PYTHONPATH": "", "SM_CHANNEL_EVENTS": str(ev.parent),
                              "SM_MODEL_DIR": str(tmp_path / "m"), "SM_OUTPUT_DIR": str(tmp_path / "o")},
                         capture_output=True, text=True, timeout=120, cwd=str(REPO / "sagemaker"))
    assert run.returncode == 1
    failure = (tmp_path / "o" / "failure").read_text()
    assert "lacks required column(s) ['user_id', 'item_id', 'timestamp']" in failure
    assert "column map" in failure
