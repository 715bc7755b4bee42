"""Training entry points, the no-leakage rule, and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from recsys import data, evaluate, train
from recsys.retrieval import RetrievalModel

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
SMALL_ARGS = ["--dim", "16", "--ranker_users", "500"]


def test_evaluate_never_fits_on_a_test_target(synthetic_dataset):
    events = data.load_events(synthetic_dataset[0])
    seqs = data.encode(events)
    seen = {}

    def spy_fit(part):
        seen["part"] = part
        return train.fit(part, None, {"dim": 16, "ranker_users": 300}, log=lambda m: None)

    report = evaluate.run(seqs, evaluate.first_seen_positions(events.item_ids, seqs.item_ids), spy_fit,
                          log=lambda m: None)
    part = seen["part"]
    full = dict(zip(seqs.user_ids, seqs.items))
    for user, s in zip(part.user_ids, part.items):
        assert np.array_equal(s, full[user][:-1])  # the target (last event) is never in the fit
    assert report["users"] == len(part.user_ids)


def test_ranker_labels_are_hidden_from_its_own_stage_one(synthetic_dataset, monkeypatch):
    """Job 2 refits stage 1 without each user's last event: the event it learns to predict."""
    _, items, seqs, _ = train.load_data(*synthetic_dataset, log=lambda m: None)
    fits = []
    original = RetrievalModel.fit.__func__

    def spy(cls, sequences, times, n_items, params, log=print):
        fits.append([s.copy() for s in sequences])
        return original(cls, sequences, times, n_items, params, log=log)

    monkeypatch.setattr(RetrievalModel, "fit", classmethod(spy))
    train.fit(seqs, items, {"dim": 16, "ranker_users": 300}, log=lambda m: None)
    job1, inner = fits
    assert sum(map(len, job1)) == seqs.n_events
    n_targets = train.RankerParams().ranker_targets
    for full, hidden in zip(seqs.items, inner):
        # the last n_targets events (keeping a history of 2) are what the ranker learns to predict
        held = min(n_targets, len(full) - 2) if len(full) >= 3 else min(1, len(full) - 1)
        assert np.array_equal(hidden, full[: len(full) - held])


def test_metrics_follow_the_definitions():
    m = evaluate.metrics_from_ranks(np.array([0, 1, 9, 10, 19, -1]))
    assert m["HR@10"] == pytest.approx(3 / 6)
    assert m["HR@20"] == pytest.approx(5 / 6)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(11)) / 6)


def run_job(script, env, args=()):
    full_env = {**os.environ, "PYTHONPATH": "", **env}
    return subprocess.run([PY, str(REPO / "sagemaker" / script), *args], env=full_env, capture_output=True,
                          text=True, timeout=300, cwd=str(REPO / "sagemaker"))


def test_both_jobs_run_as_sagemaker_runs_them(synthetic_dataset, tmp_path):
    events, items = synthetic_dataset
    (tmp_path / "ev").mkdir(), (tmp_path / "it").mkdir()
    (tmp_path / "ev" / "events.csv").write_bytes(Path(events).read_bytes())
    (tmp_path / "it" / "items.csv").write_bytes(Path(items).read_bytes())
    job1 = run_job("train_retrieval.py", {"SM_CHANNEL_EVENTS": str(tmp_path / "ev"), "SM_CHANNEL_ITEMS": str(tmp_path / "it"),
                                          "SM_MODEL_DIR": str(tmp_path / "m1")}, SMALL_ARGS)
    assert job1.returncode == 0, job1.stderr
    assert "METRIC index_recall_at_10=" in job1.stdout
    (tmp_path / "retrieval").mkdir()
    with tarfile.open(tmp_path / "retrieval" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "m1", arcname=".")
    job2 = run_job("train_ranker.py", {"SM_CHANNEL_EVENTS": str(tmp_path / "ev"), "SM_CHANNEL_RETRIEVAL": str(tmp_path / "retrieval"),
                                       "SM_MODEL_DIR": str(tmp_path / "m2"), "SM_OUTPUT_DATA_DIR": str(tmp_path / "out")}, SMALL_ARGS)
    assert job2.returncode == 0, job2.stderr
    for line in ("METRIC two_stage_HR@10=", "METRIC two_stage_NDCG@10=", "METRIC candidate_recall="):
        assert line in job2.stdout
    assert (tmp_path / "m2" / "ranker.json").exists() and (tmp_path / "m2" / "text").is_dir()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["offline_metrics"]["two_stage"]["HR@10"] > manifest["offline_metrics"]["retrieval"]["HR@10"] * 0.8
    recs = [json.loads(line) for line in (tmp_path / "out" / "batch" / "recommendations.jsonl").read_text().splitlines()]
    assert recs[0]["userId"] == "__popular__" and len(recs[0]["items"]) == 50
    search_rows = [r for r in recs if r["userId"].startswith("__search__:")]
    assert len(recs) - len(search_rows) == 1 + len((tmp_path / "out" / "batch" / "users.jsonl").read_text().splitlines())
    item_rows = [json.loads(line) for line in (tmp_path / "out" / "batch" / "items.jsonl").read_text().splitlines()]
    assert {"itemId", "title", "category", "popularity", "trend"} <= set(item_rows[0])
    # degraded search's rows: every word of the titles and categories, its items most popular first
    text = {r["itemId"]: (r["title"] + " " + r["category"]).lower() for r in item_rows}
    words = {w for t in text.values() for w in re.findall(r"[a-z0-9]+", t)}
    assert {r["userId"].split(":", 1)[1] for r in search_rows} == words
    for row in search_rows:
        word = row["userId"].split(":", 1)[1]
        assert 0 < len(row["items"]) <= 100
        assert all(word in re.findall(r"[a-z0-9]+", text[e["itemId"]]) for e in row["items"])
        scores = [e["score"] for e in row["items"]]
        assert scores == sorted(scores, reverse=True)


def test_a_bad_job_input_fails_with_a_failure_reason(tmp_path):
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "events.csv").write_text("user,item\n1,2\n")
    job = run_job("train_retrieval.py", {"SM_CHANNEL_EVENTS": str(tmp_path / "ev"), "SM_MODEL_DIR": str(tmp_path / "m"),
                                         "SM_OUTPUT_DIR": str(tmp_path / "output")})
    assert job.returncode == 1
    reason = (tmp_path / "output" / "failure").read_text()
    assert "lacks required column(s)" in reason and "Traceback" not in job.stderr
    job = run_job("train_retrieval.py", {"SM_CHANNEL_EVENTS": str(tmp_path / "ev"), "SM_OUTPUT_DIR": str(tmp_path / "o2")},
                  ["--dimm", "3"])
    assert job.returncode == 1 and "unknown hyperparameter(s) ['dimm']" in (tmp_path / "o2" / "failure").read_text()


def recsys_cli(*args):
    return subprocess.run([PY, "-m", "recsys.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO / "sagemaker")})


def test_cli_synth_train_and_evaluate(tmp_path):
    out = recsys_cli("data", "synth", "--n-users", "150", "--n-items", "120", "--n-events", "4000",
                     "--out", str(tmp_path / "d"))
    assert out.returncode == 0, out.stderr
    paths = json.loads(out.stdout)
    ev = recsys_cli("evaluate", "--events", paths["events"], "--items", paths["items"], "--output",
                    str(tmp_path / "report.json"), "-H", "dim=16")
    assert ev.returncode == 0, ev.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["protocol"] == "leave-last-out"
    for model in ("popularity", "retrieval", "two_stage"):
        assert set(report["models"][model]) == {"HR@10", "NDCG@10", "HR@20", "NDCG@20"}
    assert "union" in report["candidate_recall"] and "two_stage" in ev.stdout
    # the learned two-stage model beats popularity on data with sequential structure
    assert report["models"]["two_stage"]["HR@10"] > 1.2 * report["models"]["popularity"]["HR@10"]
    tr = recsys_cli("train", "--events", paths["events"], "--model-dir", str(tmp_path / "model"),
                    "--hyperparameter", "dim=16")
    assert tr.returncode == 0, tr.stderr
    assert json.loads(tr.stdout)["model_version"]


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--events", "/does/not/exist.csv"], "file not found"),
    (["train", "--events", "/does/not/exist.csv", "--model-dir", "/tmp/x"], "file not found"),
    (["evaluate", "--events", __file__, "-H", "nonsense=1"], "unknown hyperparameter(s) ['nonsense']"),
    (["evaluate", "--events", __file__, "--set", "nonsense=1"], "unknown hyperparameter(s) ['nonsense']"),
    (["train", "--events", __file__, "--model-dir", "/tmp/x", "-H", "dim"], "-H/--hyperparameter expects NAME=VALUE"),
])
def test_cli_bad_input_is_one_line_and_non_zero(args, message):
    out = recsys_cli(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_cli_rejects_an_empty_events_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    out = recsys_cli("evaluate", "--events", str(tmp_path / "empty.csv"))
    assert out.returncode == 2 and "no valid event rows" in out.stderr
