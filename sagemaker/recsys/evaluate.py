"""The evaluation protocol (docs/ML.md, "Evaluation protocol details"): leave-last-out, full ranking, HR@K and NDCG@K.

Each user's events are sorted by time (ties keep file order); the last item is the target and
everything before it is training data and the user's history; users with fewer than
``MIN_EVENTS`` events are dropped entirely (their events are not training data either); K items not in the history are recommended; HR@K and NDCG@K
(1 / log2(rank + 2) for a 0-based rank) are averaged over users, for K = 10 and 20.

With target event types (``recsys evaluate --target-event-types purchase``), each user's target
is their last event of one of those types instead, predicted from the events before it without
the user's own earlier events on the target item (a viewed-then-bought item is "already seen" and
could never be recommended otherwise); users without such an event, or with fewer than
``MIN_EVENTS - 1`` events left before it, are dropped entirely.

Popularity's tie rule: items are ordered by their number of training events (weights ignored),
ties by the position of their first appearance in the events file.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .candidates import fusion_scores
from .data import Sequences
from .retrieval import SOURCES

KS = (10, 20)
MIN_EVENTS = 3
MODEL_KEYS = tuple(f"{m}@{k}" for k in KS for m in ("HR", "NDCG"))


def metrics_from_ranks(ranks: np.ndarray) -> Dict[str, float]:
    """``ranks``: 0-based position of each user's target in their list, -1 where absent."""
    ranks = np.asarray(ranks)
    out: Dict[str, float] = {}
    n = max(len(ranks), 1)
    for k in KS:
        hit = (ranks >= 0) & (ranks < k)
        out[f"HR@{k}"] = float(hit.sum() / n)
        out[f"NDCG@{k}"] = float((1.0 / np.log2(ranks[hit] + 2.0)).sum() / n)
    return {key: out[key] for key in MODEL_KEYS}


def rank_in(ordered: Sequence[int], target: int, limit: int = max(KS)) -> int:
    for pos, item in enumerate(list(ordered)[:limit]):
        if item == target:
            return pos
    return -1


def leave_last_out(seqs: Sequences, target_types: Sequence[str] = ()) -> Tuple[Sequences, np.ndarray, np.ndarray]:
    """Split: (training sequences of kept users, their targets, target times).

    With ``target_types``, each user's target is their last event of those types, and their
    training sequence the events before it without those on the target item (module docstring).

    Raises:
        ValueError: ``target_types`` given but the sequences carry no event types.
    """
    if target_types:
        return _last_of_types(seqs, tuple(target_types))
    keep = [u for u, s in enumerate(seqs.items) if len(s) >= MIN_EVENTS]
    train = Sequences(
        item_ids=seqs.item_ids,
        user_ids=[seqs.user_ids[u] for u in keep],
        items=[seqs.items[u][:-1] for u in keep],
        times=[seqs.times[u][:-1] for u in keep],
        types=None if seqs.types is None else [seqs.types[u][:-1] for u in keep],
    )
    targets = np.array([int(seqs.items[u][-1]) for u in keep], dtype=np.int64)
    target_times = np.array([float(seqs.times[u][-1]) for u in keep])
    return train, targets, target_times


def _last_of_types(seqs: Sequences, target_types: Tuple[str, ...]) -> Tuple[Sequences, np.ndarray, np.ndarray]:
    if seqs.types is None:
        raise ValueError("target event types need the events' event_type; these sequences have none")
    users: List[int] = []
    positions: List[int] = []  # of each kept user's target
    prefixes: List[np.ndarray] = []
    for u, (s, ty) in enumerate(zip(seqs.items, seqs.types)):
        hits = np.flatnonzero(np.isin(ty, target_types))
        if len(hits) == 0:
            continue
        p = int(hits[-1])
        before = np.flatnonzero(s[:p] != s[p])  # the events before it, not on the target item
        if len(before) >= MIN_EVENTS - 1:
            users.append(u)
            positions.append(p)
            prefixes.append(before)
    train = Sequences(
        item_ids=seqs.item_ids,
        user_ids=[seqs.user_ids[u] for u in users],
        items=[seqs.items[u][i] for u, i in zip(users, prefixes)],
        times=[seqs.times[u][i] for u, i in zip(users, prefixes)],
        types=[seqs.types[u][i] for u, i in zip(users, prefixes)],
    )
    targets = np.array([int(seqs.items[u][p]) for u, p in zip(users, positions)], dtype=np.int64)
    target_times = np.array([float(seqs.times[u][p]) for u, p in zip(users, positions)])
    return train, targets, target_times


def popularity_ranks(histories: Sequence[np.ndarray], targets: np.ndarray, n_items: int,
                     first_seen: np.ndarray) -> np.ndarray:
    """Rank of each target in the popularity list with the user's history removed."""
    counts = np.bincount(np.concatenate(histories) if histories else np.zeros(0, np.int64), minlength=n_items)
    order = np.lexsort((first_seen, -counts))
    position = np.empty(n_items, np.int64)
    position[order] = np.arange(n_items)
    ranks = np.full(len(targets), -1, np.int64)
    for u, (h, t) in enumerate(zip(histories, targets.tolist())):
        hist = np.unique(h)
        if t in set(hist.tolist()):
            continue
        ranks[u] = position[t] - int((position[hist] < position[t]).sum())
    ranks[ranks >= max(KS)] = -1
    return ranks


def evaluate_model(rec, histories: Sequence[np.ndarray], targets: np.ndarray, batch_size: int = 256,
                   log: Callable[[str], None] = print, users: Optional[Sequence[str]] = None) -> Dict[str, Dict]:
    """Two-stage, rank-fusion retrieval, each source alone and the candidate recall of a model
    (``users``: the histories' user ids, for a model with user attributes)."""
    n = len(targets)
    k = max(KS)
    two_stage = np.full(n, -1, np.int64)
    fusion = np.full(n, -1, np.int64)
    per_source = {s: np.full(n, -1, np.int64) for s in SOURCES}
    in_candidates = np.zeros(n, bool)
    source_hit = {s: np.zeros(n, bool) for s in SOURCES}
    n_candidates = np.zeros(n, np.int64)
    started = time.time()
    for start in range(0, n, batch_size):
        batch = list(range(start, min(n, start + batch_size)))
        cands = rec.builder.build([histories[u] for u in batch],
                                  users=[users[u] for u in batch] if users is not None else None)
        for u, c in zip(batch, cands):
            t = int(targets[u])
            hist = set(histories[u].tolist())
            n_candidates[u] = len(c.items)
            in_candidates[u] = t in set(c.items.tolist())
            if len(c.items):
                two_stage[u] = rank_in([it for it, _ in rec.order_indices(c.items, rec.score(c), k)], t)
                fusion[u] = rank_in(c.items[np.argsort(-fusion_scores(c), kind="stable")].tolist(), t)
            for s in SOURCES:
                lst = [i for i in c.sources[s].tolist() if i not in hist]
                source_hit[s][u] = t in set(lst)
                per_source[s][u] = rank_in(lst, t)
        if (start // batch_size) % 20 == 0:
            log(f"[evaluate] {min(n, start + batch_size):,}/{n:,} users ({time.time() - started:.1f}s)")
    p = rec.retrieval.params
    sizes = {"ann": p.n_ann, "recent": p.n_recent, "covisit": p.n_covisit, "knn": p.n_knn, "ease": p.n_ease,
             "popular": p.n_popular, "trending": p.n_trending}
    recall = {"union": {"recall": float(in_candidates.mean()) if n else 0.0,
                        "mean_candidates": float(n_candidates.mean()) if n else 0.0}}
    for s in SOURCES:
        recall[s] = {"recall": float(source_hit[s].mean()) if n else 0.0, "list_size": sizes[s]}
    return {
        "two_stage": metrics_from_ranks(two_stage),
        "retrieval": metrics_from_ranks(fusion),
        "sources": {s: metrics_from_ranks(per_source[s]) for s in SOURCES},
        "candidate_recall": recall,
    }


def format_table(report: Dict) -> str:
    rows: List[Tuple[str, Dict[str, float]]] = [(name, m) for name, m in report["models"].items()]
    rows += [(f"source:{name}", m) for name, m in report.get("sources", {}).items()]
    lines = [f"{'model':<22}" + "".join(f"{k:>10}" for k in MODEL_KEYS)]
    for name, m in rows:
        lines.append(f"{name:<22}" + "".join(f"{m[k]:>10.4f}" for k in MODEL_KEYS))
    cr = report.get("candidate_recall", {})
    if cr:
        lines.append("candidate recall: " + ", ".join(
            f"{s}={v['recall']:.4f}" for s, v in cr.items()) +
            f" (mean {cr['union']['mean_candidates']:.0f} candidates)")
    return "\n".join(lines)


def to_json(report: Dict) -> str:
    return json.dumps(report, indent=2, sort_keys=False)


def first_seen_positions(events_item_ids: np.ndarray, catalogue_ids: Sequence[str]) -> np.ndarray:
    """Position of each catalogue item's first appearance in the events file (for tie-breaking)."""
    unique, first = np.unique(events_item_ids, return_index=True)
    pos = dict(zip(unique.tolist(), first.tolist()))
    big = len(events_item_ids) + 1
    return np.array([pos.get(i, big) for i in catalogue_ids], dtype=np.int64)


def run(seqs: Sequences, first_seen: np.ndarray, fit: Callable[[Sequences], object],
        log: Callable[[str], None] = print, extra: Optional[Dict] = None,
        target_types: Sequence[str] = ()) -> Dict:
    """Split, fit everything on the training part with ``fit``, measure on the held-out targets
    (each user's last event, or with ``target_types`` their last event of those types)."""
    train, targets, _ = leave_last_out(seqs, target_types)
    if len(targets) == 0:
        if target_types:
            raise ValueError(f"no user has an event of type(s) {list(target_types)} with {MIN_EVENTS - 1} or more "
                             "events before it: nothing to evaluate")
        raise ValueError(f"no user has {MIN_EVENTS} or more events: nothing to evaluate")
    what = f"last event of type(s) {list(target_types)}" if target_types else "leave-last-out"
    log(f"[evaluate] {what}: {len(targets):,} users with >= {MIN_EVENTS} events, "
        f"{train.n_events:,} training events, {seqs.n_items:,} items")
    pop = popularity_ranks(train.items, targets, seqs.n_items, first_seen)
    started = time.time()
    rec = fit(train)
    fit_seconds = time.time() - started
    result = evaluate_model(rec, train.items, targets, log=log, users=train.user_ids)
    repeats = float(np.mean([t in set(h.tolist()) for h, t in zip(train.items, targets.tolist())]))
    report = {
        "protocol": "leave-last-out" if not target_types else f"last event of type(s) {','.join(target_types)}",
        "users": len(targets),
        "items": int(seqs.n_items),
        "training_events": int(train.n_events),
        "targets_in_history": repeats,
        "models": {
            "popularity": metrics_from_ranks(pop),
            "retrieval": result["retrieval"],
            "two_stage": result["two_stage"],
        },
        "sources": result["sources"],
        "candidate_recall": result["candidate_recall"],
        "fit_seconds": round(fit_seconds, 2),
    }
    if extra:
        report.update(extra)
    return report
