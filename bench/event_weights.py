"""Event types benchmark: purchase prediction on the synthetic purchase funnel
(``recsys data synth --funnel``) with equal weights, tuned weights and ranker target types.

Every configuration is measured on the same split: each user's last purchase is the target,
predicted from the events before it without the user's own earlier events on that item
(``recsys evaluate --target-event-types purchase``). One row per configuration, HR/NDCG@10 of
the two-stage model and of stage 1's rank fusion, mean and range over the seeds.

    python -m bench.event_weights [--users 3000] [--items 1000] [--views 60000] [--seeds 0,1,2]
        [--output bench/results/event_weights.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TUNED = "view:1,cart:3,purchase:5"
CONFIGS: dict[str, dict[str, str]] = {
    "equal weights": {},
    f"event_weights={TUNED}": {"event_weights": TUNED},
    "target_event_types=purchase": {"target_event_types": "purchase"},
    "both": {"event_weights": TUNED, "target_event_types": "purchase"},
}
KEYS = ("HR@10", "NDCG@10")


def measure(events: Path, hyperparameters: dict[str, str]) -> dict[str, Any]:
    """What ``recsys evaluate --events E --target-event-types purchase --set ...`` reports."""
    from recsys import evaluate, train

    events_data, _, seqs, summary = train.load_data(events, None, log=lambda m: None)
    first_seen = evaluate.first_seen_positions(events_data.item_ids, seqs.item_ids)
    started = time.perf_counter()
    report = evaluate.run(seqs, first_seen, fit=lambda part: train.fit(part, None, hyperparameters, summary,
                                                                     log=lambda m: None),
                          log=lambda m: None, target_types=("purchase",))
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.event_weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--views", type=int, default=60_000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    from recsys.synth import write_dataset

    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            events, _ = write_dataset(Path(tmp) / str(seed), args.users, args.items, args.views, seed, with_funnel=True)
            for name, hps in CONFIGS.items():
                report = measure(events, hps)
                row = {"seed": seed, "users": report["users"], "seconds": report["seconds"],
                       **{f"{model} {k}": report["models"][model][k] for model in ("two_stage", "retrieval") for k in KEYS}}
                results[name].append(row)
                print(f"[event_weights] seed {seed} {name}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)), file=sys.stderr, flush=True)
    columns = [f"{model} {k}" for model in ("two_stage", "retrieval") for k in KEYS]
    print(f"{'configuration':<44}" + "".join(f"{c:>22}" for c in columns))
    for name, rows in results.items():
        cells = []
        for c in columns:
            values = [r[c] for r in rows]
            cells.append(f"{sum(values) / len(values):.4f} ({min(values):.3f}-{max(values):.3f})")
        print(f"{name:<44}" + "".join(f"{cell:>22}" for cell in cells))
    if args.output:
        args.output.write_text(json.dumps({"users": args.users, "items": args.items, "views": args.views,
                                           "seeds": seeds, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
