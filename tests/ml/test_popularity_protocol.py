"""`recsys evaluate` against an independent, pure-Python implementation of the protocol.

The protocol (docs/ML.md, "Evaluation protocol details"): sort each user's events by
timestamp, ties keeping file order; the last item is the target, the rest is training data and
the user's history; users with fewer than 3 events are dropped (their events are not training
data); recommend K items not in the history; HR@K and NDCG@K (1 / log2(rank + 2), rank 0-based)
averaged over users. Popularity = event counts over the training part (each event once,
weights ignored), ties broken by the item's first appearance in the file.

Nothing here imports numpy or the project's code: only the CLI is exercised, via subprocess.
"""

from __future__ import annotations

import csv
import json
import math
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KS = (10, 20)
N_ITEMS = 60
MIN_EVENTS = 3


def _recsys_cli() -> list[str]:
    script = Path(sys.executable).parent / "recsys"
    if script.exists():
        return [str(script)]
    return [str(ROOT / ".venv" / "bin" / "recsys")]


def synthetic_rows(seed: int = 11) -> list[tuple[str, str, int, float]]:
    """Events with skewed popularity, repeat consumption, many timestamp ties, short users,
    and rows not in time order (user, item, unix_seconds, weight)."""
    rng = random.Random(seed)
    items = [f"item{n:03d}" for n in rng.sample(range(1000), N_ITEMS)]
    popularity = [1.0 / (rank + 1) ** 0.7 for rank in range(N_ITEMS)]
    rows = []
    for user in range(70):
        # about one user in eight has fewer than 3 events and must be dropped
        n_events = rng.randint(1, 2) if user % 8 == 0 else rng.randint(3, 14)
        base = 1_700_000_000 + rng.randint(0, 10_000)
        for _ in range(n_events):
            # 6 distinct hours only: a user's events often share a timestamp
            stamp = base + 3600 * rng.randint(0, 5)
            item = rng.choices(items, weights=popularity)[0]
            rows.append((f"u{user:02d}", item, stamp, float(rng.randint(1, 5))))
    rng.shuffle(rows)
    return rows


def write_events(rows, path: Path, iso: bool) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "timestamp", "weight"])
        for user, item, stamp, weight in rows:
            when = (datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    if iso else str(stamp))
            writer.writerow([user, item, when, weight])


def popularity_protocol(rows, short_users_train: bool = False) -> dict:
    """The protocol for the popularity model in plain Python.

    Args:
        rows: (user, item, unix_seconds, weight) in file order.
        short_users_train: the other reading of "drop users with fewer than 3 events" (their
            events still count as training data); only used to explain a mismatch.
    """
    per_user: dict[str, list[tuple[int, int, str]]] = {}
    first_seen: dict[str, int] = {}
    for position, (user, item, stamp, _weight) in enumerate(rows):
        per_user.setdefault(user, []).append((stamp, position, item))
        first_seen.setdefault(item, position)
    histories, targets = {}, {}
    counts: dict[str, int] = {}
    for user, events in per_user.items():
        events.sort()  # by (timestamp, file position): ties keep file order
        items = [item for _, _, item in events]
        if len(items) < MIN_EVENTS:
            if short_users_train:
                for item in items:
                    counts[item] = counts.get(item, 0) + 1
            continue
        histories[user], targets[user] = items[:-1], items[-1]
        for item in items[:-1]:
            counts[item] = counts.get(item, 0) + 1
    ranking = sorted(first_seen, key=lambda item: (-counts.get(item, 0), first_seen[item]))
    metrics = {}
    for k in KS:
        hits = gains = 0.0
        for user, target in targets.items():
            seen = set(histories[user])
            top = [item for item in ranking if item not in seen][:k]
            if target in top:
                hits += 1
                gains += 1.0 / math.log2(top.index(target) + 2)
        metrics[f"HR@{k}"] = hits / len(targets)
        metrics[f"NDCG@{k}"] = gains / len(targets)
    repeats = sum(targets[u] in set(histories[u]) for u in targets)
    return {"users": len(targets), "metrics": metrics, "repeat_targets": repeats,
            "counted_items": sum(1 for c in counts.values() if c > 0),
            "longest_history": max(len(h) for h in histories.values())}


def test_synthetic_data_exercises_the_protocol():
    """The data must contain what the comparison is meant to catch."""
    rows = synthetic_rows()
    expected = popularity_protocol(rows)
    per_user: dict[str, list[int]] = {}
    for user, _item, stamp, _ in rows:
        per_user.setdefault(user, []).append(stamp)
    assert any(len(stamps) < MIN_EVENTS for stamps in per_user.values())
    assert any(len(set(stamps)) < len(stamps) for stamps in per_user.values())
    assert expected["repeat_targets"] > 0
    # items no training event touched never reach a top-20 list, so the comparison does not
    # depend on how the CLI orders zero-count items or which of them it keeps in the catalogue
    assert expected["counted_items"] >= max(KS) + expected["longest_history"]
    assert 0 < expected["metrics"]["HR@20"] < 1


@pytest.mark.parametrize("timestamps", ["unix", "iso8601"])
def test_recsys_evaluate_popularity_matches_independent_protocol(tmp_path, timestamps):
    rows = synthetic_rows()
    events = tmp_path / f"events_{timestamps}.csv"
    write_events(rows, events, iso=timestamps == "iso8601")
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [*_recsys_cli(), "evaluate", "--events", str(events), "--output", str(report_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, f"recsys evaluate failed:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(report_path.read_text())
    assert report["protocol"] == "leave-last-out"
    got = report["models"]["popularity"]
    expected = popularity_protocol(rows)
    mismatch = {key: (got.get(key), value) for key, value in expected["metrics"].items()
                if got.get(key) is None or abs(got[key] - value) > 1e-9}
    if mismatch:
        other = popularity_protocol(rows, short_users_train=True)["metrics"]
        other_reading = all(abs(got.get(key, math.inf) - value) <= 1e-9
                            for key, value in other.items())
        pytest.fail(
            f"popularity (got, expected) differ: {mismatch}; report users={report.get('users')}, "
            f"expected {expected['users']}; the figures "
            f"{'DO' if other_reading else 'do not'} match the reading where users with fewer "
            f"than {MIN_EVENTS} events still count as training data")
