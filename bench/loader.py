"""The event loader's cost: ``recsys.data.load_events`` on N synthetic rows, as CSV and as JSON
Lines in the event log's shape (what Firehose writes), best of K loads each.

    PYTHONPATH=sagemaker python -m bench.loader --rows 1000000 --repeat 3

Rows: ``user_id,item_id,timestamp,event_id`` (plus the log's ``event_type``, ``session_id``,
``tracking_id`` and ``received_at`` in JSON Lines), 50k users, 20k items, every event id distinct.
Prints one JSON object: rows, seconds per format (best and all), rows per second.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from pathlib import Path

from recsys import data


def write_files(folder: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """The same ``rows`` events as ``events.csv`` and ``events.jsonl`` under ``folder``."""
    rng = random.Random(seed)
    csv_path, jsonl_path = folder / "csv" / "events.csv", folder / "jsonl" / "events.jsonl"
    csv_path.parent.mkdir(parents=True)
    jsonl_path.parent.mkdir(parents=True)
    with csv_path.open("w", newline="") as c, jsonl_path.open("w") as j:
        writer = csv.writer(c)
        writer.writerow(["user_id", "item_id", "timestamp", "event_id"])
        for n in range(rows):
            user, item, ts = f"u{rng.randrange(50_000)}", f"i{rng.randrange(20_000)}", 1_700_000_000 + n
            writer.writerow([user, item, ts, f"e{n}"])
            j.write(json.dumps({"user_id": user, "item_id": item, "timestamp": ts, "event_type": "click",
                                "session_id": "s", "event_id": f"e{n}", "tracking_id": "t",
                                "received_at": ts + 0.5}) + "\n")
    return {"csv": csv_path, "jsonl": jsonl_path}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    out: dict = {"rows": args.rows, "repeat": args.repeat}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.rows)
        for name, path in files.items():
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                events = data.load_events(path)
                times.append(round(time.perf_counter() - started, 3))
                assert len(events) == args.rows
            out[name] = {"best_s": min(times), "all_s": times, "rows_per_s": round(args.rows / min(times))}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
