"""Metadata benchmark: the two-stage model with and without item/user attribute features.

The data is ``recsys.synth`` with ``language_bias``: every series has a language, every user
speaks one, and a drawn item in another language is rejected with that probability; items also
carry a noise ``price`` and users a noise ``age``. Each seed is evaluated three ways under the
leave-last-out protocol of docs/ML.md (``recsys.evaluate.run``): no attributes (today's feature
list), item attributes only, and item + user attributes.

    python -m bench.metadata [--seeds 0,1,2] [--users 600] [--items 400] [--events 12000]
                             [--language-bias 0.8] [--output FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

KEYS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")
VARIANTS = ("none", "items", "items+users")
HYPERPARAMETERS = {"dim": 32, "ranker_users": 2000, "workers": 1}


def read_users(path: Path) -> Dict[str, Dict[str, str]]:
    """``users.csv`` (user_id + attributes) -> user id -> attributes."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row.pop("user_id"): row for row in csv.DictReader(f)}


def run_variant(events: Path, items: Path, users: Optional[Dict[str, Dict[str, str]]], with_items: bool,
                hyperparameters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One leave-last-out evaluation; ``with_items`` False drops the item attributes."""
    from recsys import evaluate, train

    events_data, items_data, seqs, summary = train.load_data(events, items, log=lambda m: None)
    assert items_data is not None
    if not with_items:
        items_data.attributes = [{} for _ in items_data.attributes]
    first_seen = evaluate.first_seen_positions(events_data.item_ids, seqs.item_ids)
    features: List[str] = []

    def fit(part):
        rec = train.fit(part, items_data, hyperparameters or HYPERPARAMETERS, summary, log=lambda m: None,
                        users=users)
        features.extend(rec.builder.feature_names)
        return rec

    t = time.perf_counter()
    report = evaluate.run(seqs, first_seen, fit=fit, log=lambda m: None)
    return {"two_stage": report["models"]["two_stage"], "retrieval": report["models"]["retrieval"],
            "features": len(features), "seconds": round(time.perf_counter() - t, 1)}


def benchmark(seeds: List[int], n_users: int, n_items: int, n_events: int, language_bias: float,
              log: Callable[[str], None] = print) -> Dict[str, Any]:
    from recsys.synth import write_dataset

    out: Dict[str, Any] = {"n_users": n_users, "n_items": n_items, "n_events": n_events,
                           "language_bias": language_bias, "hyperparameters": HYPERPARAMETERS, "seeds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            events, items = write_dataset(Path(tmp) / str(seed), n_users, n_items, n_events, seed,
                                          language_bias=language_bias)
            users = read_users(events.parent / "users.csv")
            rows = {}
            for variant in VARIANTS:
                rows[variant] = run_variant(events, items, users if variant == "items+users" else None,
                                            with_items=variant != "none")
                m = rows[variant]["two_stage"]
                log(f"[metadata] seed {seed} {variant:<12} HR@10 {m['HR@10']:.4f} NDCG@10 {m['NDCG@10']:.4f} "
                    f"({rows[variant]['features']} features, {rows[variant]['seconds']}s)")
            out["seeds"][str(seed)] = rows
    return out


def format_table(result: Dict[str, Any]) -> str:
    lines = [f"{'seed':<6}{'variant':<14}" + "".join(f"{k:>10}" for k in KEYS) + f"{'features':>10}"]
    for seed, rows in result["seeds"].items():
        for variant, row in rows.items():
            lines.append(f"{seed:<6}{variant:<14}" + "".join(f"{row['two_stage'][k]:>10.4f}" for k in KEYS)
                         + f"{row['features']:>10}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.metadata", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--users", type=int, default=600)
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--events", type=int, default=12_000)
    p.add_argument("--language-bias", type=float, default=0.8)
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    result = benchmark([int(s) for s in args.seeds.split(",")], args.users, args.items, args.events,
                       args.language_bias)
    print(format_table(result))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
