"""Run every available peer under the protocol and write the results table as JSON.

    python -m bench.peers --dataset ml-100k --output bench/results/peers_ml100k.json
    python -m bench.peers --events my_events.csv --peers popularity,EASE-seq
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench.datasets import DATASETS
from bench.peers import available_peers, make_peer
from bench.peers.protocol import evaluate_peer, leave_last_out, read_events

KEYS = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=sorted(DATASETS))
    source.add_argument("--events", type=Path)
    parser.add_argument("--peers", help="comma-separated names (default: all available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--sasrec-budget", type=float, default=None,
                        help="SASRec's wall-clock training budget in seconds (default: its own)")
    args = parser.parse_args(argv)

    events_path = DATASETS[args.dataset]().events if args.dataset else args.events
    if not events_path.exists():
        print(f"error: events file {events_path} not found", file=sys.stderr)
        return 2
    names = args.peers.split(",") if args.peers else available_peers()
    load_start = os.getloadavg()[0]
    split = leave_last_out(read_events(events_path))
    print(f"{args.dataset or events_path}: {len(split.user_ids)} users, {split.n_items} items, "
          f"{split.n_train_events} training events, {split.n_dropped_users} users dropped, "
          f"{split.n_repeat_targets} targets already in the history", flush=True)
    results: dict[str, dict[str, float]] = {}
    print(f"{'peer':<14}" + "".join(f"{k:>9}" for k in KEYS) + f"{'seconds':>9}{'cpu s':>9}",
          flush=True)
    for name in names:
        peer = make_peer(name, seed=args.seed)
        if args.sasrec_budget is not None and hasattr(peer, "time_budget"):
            peer.time_budget = args.sasrec_budget
        start, cpu_start = time.perf_counter(), time.process_time()
        metrics = evaluate_peer(peer, split)
        metrics["seconds"] = round(time.perf_counter() - start, 2)
        # CPU seconds of all threads: less skewed than wall time on a shared machine
        metrics["cpu_seconds"] = round(time.process_time() - cpu_start, 2)
        if hasattr(peer, "epochs_run"):
            metrics["epochs"] = peer.epochs_run
            metrics["train_seconds"] = round(peer.train_seconds, 2)
        results[name] = metrics
        print(f"{name:<14}" + "".join(f"{metrics[k]:>9.4f}" for k in KEYS)
              + f"{metrics['seconds']:>9.1f}{metrics['cpu_seconds']:>9.1f}", flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "dataset": args.dataset or str(events_path),
            "protocol": "leave-last-out",
            "split": {"users": len(split.user_ids), "items": split.n_items,
                      "train_events": split.n_train_events,
                      "dropped_users": split.n_dropped_users,
                      "repeat_targets": split.n_repeat_targets},
            "seed": args.seed,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(),
                        # wall times on a shared machine stretch with its load
                        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]}},
            "command": "python -m bench.peers " + " ".join(argv if argv is not None
                                                           else sys.argv[1:]),
            "models": results,
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
