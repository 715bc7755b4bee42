"""Quality benchmark: ``recsys evaluate`` and the peers (``bench.peers``) on the same events, one table.

Both sides use the leave-last-out, full-ranking protocol of docs/ML.md; the project's numbers
come from ``recsys.evaluate.run`` (what ``recsys evaluate`` prints), the peers' from the
independent harness in ``bench.peers.protocol``. The two splits are computed separately from the
same file; the table records each side's user count so a mismatch is visible.

    python -m bench.quality --events FILE [--items FILE] [--peers popularity,EASE] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

KEYS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")


def recsys_quality(events: Path, items: Path | None, hyperparameters: dict[str, Any] | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """What ``recsys evaluate --events E [--items I]`` reports, as a dict."""
    from recsys import evaluate, train

    hps = dict(hyperparameters or {})
    events_data, items_data, seqs, summary = train.load_data(events, items, log=lambda m: None)
    first_seen = evaluate.first_seen_positions(events_data.item_ids, seqs.item_ids)
    t = time.perf_counter()
    report = evaluate.run(seqs, first_seen, fit=lambda part: train.fit(part, items_data, hps, summary, log=lambda m: None),
                          log=lambda m: None)
    report["seconds"] = round(time.perf_counter() - t, 1)
    log(f"[quality] recsys evaluate: two-stage HR@10 {report['models']['two_stage']['HR@10']:.4f} "
        f"({report['seconds']}s)")
    return report


def peers_quality(events: Path, names: Sequence[str] | None = None, seed: int = 0,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every named (default: every available) peer under the peers' protocol harness."""
    from bench.peers import available_peers, make_peer
    from bench.peers.protocol import evaluate_peer, leave_last_out, read_events

    split = leave_last_out(read_events(events))
    out: dict[str, Any] = {"users": len(split.user_ids), "items": split.n_items,
                           "train_events": split.n_train_events, "models": {}}
    for name in names if names is not None else available_peers():
        peer = make_peer(name, seed=seed)
        t = time.perf_counter()
        metrics = evaluate_peer(peer, split)
        metrics["seconds"] = round(time.perf_counter() - t, 1)
        out["models"][name] = metrics
        log(f"[quality] {name}: HR@10 {metrics['HR@10']:.4f} NDCG@10 {metrics['NDCG@10']:.4f} ({metrics['seconds']}s)")
    return out


def quality_table(events: Path, items: Path | None = None, peers: Sequence[str] | None = None,
                  hyperparameters: dict[str, Any] | None = None, label: str | None = None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """One table: the project's two-stage, retrieval-only and popularity rows, then the peers."""
    own = recsys_quality(events, items, hyperparameters, log)
    other = peers_quality(events, peers, log=log)
    rows: dict[str, dict[str, float]] = {
        "recsys two-stage": own["models"]["two_stage"],
        "recsys retrieval (rank fusion)": own["models"]["retrieval"],
        "recsys popularity": own["models"]["popularity"],
    }
    for name, m in other["models"].items():
        rows[name] = {k: m[k] for k in KEYS} | {"seconds": m["seconds"]}
    rows["recsys two-stage"] = dict(rows["recsys two-stage"]) | {"seconds": own["seconds"]}
    best_peer = max(other["models"], key=lambda n: other["models"][n]["NDCG@10"]) if other["models"] else None
    return {
        "dataset": label or events.name,
        "protocol": "leave-last-out, full ranking",
        "recsys_split": {"users": own["users"], "items": own["items"], "training_events": own["training_events"]},
        "peers_split": {"users": other["users"], "items": other["items"], "training_events": other["train_events"]},
        "models": rows,
        "best_peer": best_peer,
        "recsys_vs_best_peer_ndcg10": (round(rows["recsys two-stage"]["NDCG@10"] / other["models"][best_peer]["NDCG@10"], 3)
                                        if best_peer and other["models"][best_peer]["NDCG@10"] else None),
        "candidate_recall": own.get("candidate_recall"),
    }


def format_table(table: dict[str, Any]) -> str:
    """Plain-text table of one quality result."""
    lines = [f"{table['dataset']}: {table['recsys_split']['users']:,} users, {table['recsys_split']['items']:,} items",
             f"{'model':<32}" + "".join(f"{k:>9}" for k in KEYS)]
    for name, m in table["models"].items():
        lines.append(f"{name:<32}" + "".join(f"{m[k]:>9.4f}" for k in KEYS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=Path, required=True)
    ap.add_argument("--items", type=Path)
    ap.add_argument("--peers", help="comma-separated peer names (default: all available)")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args(argv)
    for p in (args.events, args.items):
        if p is not None and not p.exists():
            print(f"error: {p} not found", file=sys.stderr)
            return 2
    table = quality_table(args.events, args.items, args.peers.split(",") if args.peers else None)
    print(format_table(table))
    if args.output:
        args.output.write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
