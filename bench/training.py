"""Training benchmark: the project's embedding trainer vs gensim Word2Vec on the same sessions, and
the full two-job training (``recsys.train.train``).

* Embeddings: shifted-PPMI + truncated SVD (``recsys.graphs.cooccurrence`` then the SVD of
  ``recsys.retrieval``, timed separately) against gensim ``Word2Vec`` (skip-gram, same window, dim
  and negatives, ``workers=2``) on the training part of one leave-last-out split of the same
  events. Quality: both embeddings recommend the same way (cosine to the last history item, as
  ``bench.peers.Item2Vec`` does) and are scored with the peers' protocol harness on a fixed
  sample of users. gensim is also run with its default 5 negatives.
* Full training: ``recsys.train.train`` on the whole file (both jobs, model saved).

Wall time is perf_counter; CPU time is this process's, all threads (``time.process_time``).

    python -m bench.training --users 30000 --items 20000 --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers.base import Peer
from bench.peers.protocol import Split, hit_rate_and_ndcg, leave_last_out, read_events

CACHE = Path(os.environ.get("RECSYS_BENCH_CACHE", Path.home() / ".cache" / "recsys-bench"))


def synthetic_events(n_users: int, n_items: int, n_events: int, seed: int = 0,
                     cache: Path = CACHE, log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """``recsys.synth.write_dataset`` output, generated once and cached (never committed)."""
    from recsys.synth import write_dataset

    out = cache / f"synth-u{n_users}-i{n_items}-e{n_events}-s{seed}"
    events, items = out / "events.csv", out / "items.csv"
    if not (events.exists() and items.exists()):
        t = time.perf_counter()
        write_dataset(out, n_users=n_users, n_items=n_items, n_events=n_events, seed=seed)
        log(f"[data] generated {n_events:,} synthetic events in {time.perf_counter() - t:.0f}s -> {out}")
    return events, items


class _Timed:
    def __enter__(self) -> _Timed:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = round(time.perf_counter() - self.wall0, 2)
        self.cpu = round(time.process_time() - self.cpu0, 2)


class _EmbeddingPeer(Peer):
    """Cosine of every item to the last history item's embedding (as the item2vec peer scores)."""

    vectors: np.ndarray

    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        q = np.zeros((len(sequences), self.vectors.shape[1]), np.float32)
        for row, seq in enumerate(sequences):
            if len(seq):
                q[row] = self.vectors[int(seq[-1])]
        return q @ self.vectors.T


class PPMISVD(_EmbeddingPeer):
    """The project's trainer: ``recsys`` co-occurrence + shifted PPMI + randomised SVD."""

    name = "PPMI-SVD (recsys)"

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        from recsys import graphs
        from recsys.retrieval import RetrievalParams, _svd_embeddings

        p = RetrievalParams()
        with _Timed() as g:
            counts = graphs.cooccurrence(train_sequences, n_items, p.window, decay=1.0)
        with _Timed() as s:
            self.vectors = _svd_embeddings(counts, p, n_items)
        self.timing = {"graph_wall_s": g.wall, "graph_cpu_s": g.cpu, "svd_wall_s": s.wall, "svd_cpu_s": s.cpu,
                       "wall_s": round(g.wall + s.wall, 2), "cpu_s": round(g.cpu + s.cpu, 2)}


class GensimSGNS(_EmbeddingPeer):
    """gensim Word2Vec skip-gram with negative sampling, ``workers`` threads."""

    name = "gensim Word2Vec"

    def __init__(self, negative: int, workers: int = 2, epochs: int = 5, seed: int = 0) -> None:
        super().__init__(seed)
        self.negative, self.workers, self.epochs = negative, workers, epochs

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        from gensim.models import Word2Vec
        from recsys.retrieval import RetrievalParams

        p = RetrievalParams()
        with _Timed() as prep:
            sentences = [[str(int(i)) for i in seq] for seq in train_sequences if len(seq)]
        with _Timed() as t:
            model = Word2Vec(sentences=sentences, vector_size=p.dim, window=p.window, min_count=1, sg=1, hs=0,
                             negative=self.negative, ns_exponent=p.exponent, epochs=self.epochs,
                             workers=self.workers, seed=self.seed)
        self.vectors = np.zeros((n_items, p.dim), np.float32)
        for token, row in model.wv.key_to_index.items():
            self.vectors[int(token)] = model.wv.vectors[row]
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        np.divide(self.vectors, norms, out=self.vectors, where=norms > 0)
        self.timing = {"to_tokens_wall_s": prep.wall, "wall_s": t.wall, "cpu_s": t.cpu,
                       "negative": self.negative, "workers": self.workers, "epochs": self.epochs}


def evaluate_sample(peer: Peer, split: Split, n_users: int, seed: int = 0) -> dict[str, float]:
    """The protocol's metrics on a fixed random sample of the split's users (full ranking)."""
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(len(split.targets), min(n_users, len(split.targets)), replace=False))
    recs = peer.recommend([split.train_sequences[u] for u in users], 20)
    return hit_rate_and_ndcg(recs, split.targets[users])


def embeddings_vs_gensim(events: Path, eval_users: int = 5000, with_gensim: bool = True,
                         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train both embedding methods on the same split and compare time and quality."""
    with _Timed() as r:
        split = leave_last_out(read_events(events))
    n_train = split.n_train_events
    log(f"[training] split: {len(split.targets):,} users, {split.n_items:,} items, {n_train:,} training "
        f"events (read+split {r.wall}s)")
    peers: list[tuple[str, Peer]] = [("ppmi_svd", PPMISVD())]
    if with_gensim:
        peers += [("gensim_matched_negatives", GensimSGNS(negative=1)), ("gensim_5_negatives", GensimSGNS(negative=5))]
    out: dict[str, Any] = {"events_file": events.name, "training_events": n_train, "users": len(split.targets),
                           "items": split.n_items, "eval_users": min(eval_users, len(split.targets))}
    for key, peer in peers:
        peer.fit(split.train_sequences, split.n_items)
        timing = peer.timing  # type: ignore[attr-defined]
        metrics = evaluate_sample(peer, split, eval_users)
        out[key] = {**timing, "events_per_s_wall": round(n_train / max(timing["wall_s"], 1e-9)),
                    "events_per_s_cpu": round(n_train / max(timing["cpu_s"], 1e-9)), **metrics}
        log(f"[training] {peer.name} ({key}): {timing['wall_s']}s wall / {timing['cpu_s']}s CPU, "
            f"HR@10 {metrics['HR@10']:.4f} NDCG@10 {metrics['NDCG@10']:.4f}")
    if with_gensim:
        out["speed_vs_gensim_matched_cpu"] = round(out["gensim_matched_negatives"]["cpu_s"] / max(out["ppmi_svd"]["cpu_s"], 1e-9), 2)
        out["speed_vs_gensim_matched_wall"] = round(out["gensim_matched_negatives"]["wall_s"] / max(out["ppmi_svd"]["wall_s"], 1e-9), 2)
    return out


def full_training(events: Path, items: Path, hyperparameters: dict[str, Any] | None = None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time ``recsys.train.train`` (both jobs, model saved) on the whole file."""
    from recsys.train import train

    with tempfile.TemporaryDirectory() as tmp, _Timed() as t:
        manifest = train(events, items, Path(tmp) / "model", hyperparameters=hyperparameters,
                         log=lambda m: log(m) if m.startswith("[") else None)
    log(f"[training] recsys.train.train: {t.wall}s wall / {t.cpu}s CPU")
    return {"wall_s": t.wall, "cpu_s": t.cpu, "hyperparameters": hyperparameters or {},
            "offline_metrics": manifest.get("offline_metrics"), "index": manifest.get("index")}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=30000)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--no-full-train", action="store_true")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args(argv)
    ev, it = synthetic_events(args.users, args.items, args.events)
    result = {"embeddings": embeddings_vs_gensim(ev)}
    if not args.no_full_train:
        result["full_train"] = full_training(ev, it)
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
