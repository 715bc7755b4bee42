"""Offline evaluation of search on the leave-last-out split (``recsys evaluate --items ...``).

Each sampled user's held-out item (the target of :func:`recsys.evaluate.leave_last_out`) is
looked for with three queries made from its title:

* ``whole``: the title as it is;
* ``prefix``: its first half (at least 3 characters), as if the user were still typing;
* ``typo``: the title with one character dropped (any position, spaces included; fixed seed).

Four searchers answer every query with 10 items, and HR@10 and MRR (reciprocal rank of the
target within the top 10, 0 when absent) are averaged over the queries; a hit is the exact
item id (a catalogue listing the same title twice under two ids counts the twin as a miss):

* ``text_only``: the model's text index alone (``TextIndex.query`` order);
* ``search``: the full search, ``Recommender.search(query, 10, history=user's history)``:
  text candidates, co-visitation expansion, the ranker's score for that user;
* ``search_no_history``: the same without the history (relevance, then popularity);
* ``tfidf_word``: the baseline, scikit-learn's ``TfidfVectorizer`` (default word tokens) over the
  same item texts, cosine similarity.

The user's history is the training part of their sequence (the last ``MAX_HISTORY`` items, as
the API would send), so the full search is personalised with exactly what the model saw.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import protocol

K = 10
KINDS = ("whole", "prefix", "typo")
METHODS = ("text_only", "search", "search_no_history", "tfidf_word")
QUERY_DESCRIPTIONS = {
    "whole": "the held-out item's full title",
    "prefix": "first half of the title (ceil(len/2) characters, at least 3)",
    "typo": "the title with one character (any position, spaces included) dropped, fixed seed",
}
DEFAULT_MAX_USERS = 1000
MIN_PREFIX_CHARS = 3

Searcher = Callable[[str], List[int]]


def make_queries(titles: Sequence[str], seed: int = 0) -> Dict[str, List[str]]:
    """The three query kinds for each title, deterministic for a ``seed``.

    Args:
        titles: one title per target.
        seed: seed of the typo positions.

    Returns:
        ``{"whole": [...], "prefix": [...], "typo": [...]}``, each aligned with ``titles``; every
        query is non-empty and at most ``protocol.MAX_QUERY_CHARS`` characters.
    """
    rng = np.random.default_rng(seed)
    out: Dict[str, List[str]] = {kind: [] for kind in KINDS}
    for title in titles:
        title = title.strip()[: protocol.MAX_QUERY_CHARS]
        prefix = title[: max(MIN_PREFIX_CHARS, math.ceil(len(title) / 2))]
        typo = title
        if len(title) > 1:
            pos = int(rng.integers(len(title)))
            typo = title[:pos] + title[pos + 1:]
        out["whole"].append(title)
        out["prefix"].append(prefix if prefix.strip() else title)
        out["typo"].append(typo if typo.strip() else title)
    return out


def item_texts(rec, items=None) -> List[str]:
    """The text each item is indexed with (title, category, attributes), as training builds it."""
    attributes = None
    if items is not None:
        attrs = dict(zip(items.item_ids, items.attributes))
        attributes = [attrs.get(i, {}) for i in rec.catalogue.item_ids]
    return rec.catalogue.texts(attributes)


def tfidf_searcher(texts: Sequence[str], k: int = K) -> Searcher:
    """Plain TF-IDF over words (scikit-learn defaults), cosine similarity, ties by item index."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer()
    postings = vectorizer.fit_transform(list(texts)).T.tocsr()

    def search(query: str) -> List[int]:
        scores = np.asarray((vectorizer.transform([query]) @ postings).todense()).ravel()
        hits = np.flatnonzero(scores > 0)
        return hits[np.lexsort((hits, -scores[hits]))][:k].tolist()

    return search


def _metrics(ranks: np.ndarray) -> Dict[str, float]:
    hit = ranks >= 0
    n = max(len(ranks), 1)
    return {f"HR@{K}": float(hit.sum() / n), "MRR": float((1.0 / (ranks[hit] + 1.0)).sum() / n)}


def _latency(wall: List[float], cpu: List[float]) -> Dict[str, float]:
    w = np.asarray(wall) * 1000.0
    c = np.asarray(cpu) * 1000.0
    if not len(w):
        return {}
    return {"p50_ms": round(float(np.percentile(w, 50)), 3), "p95_ms": round(float(np.percentile(w, 95)), 3),
            "mean_ms": round(float(w.mean()), 3), "cpu_mean_ms": round(float(c.mean()), 3)}


def sample_users(rec, targets: np.ndarray, max_users: int, seed: int) -> np.ndarray:
    """Indices of at most ``max_users`` users whose target has a searchable title, sorted."""
    from .text import tokenize

    titles = rec.catalogue.titles
    eligible = np.array([u for u, t in enumerate(np.asarray(targets).tolist()) if tokenize(titles[t])],
                        np.int64)
    if len(eligible) > max_users:
        rng = np.random.default_rng(seed)
        eligible = np.sort(rng.choice(eligible, size=max_users, replace=False))
    return eligible


def evaluate_search(rec, histories: Sequence[np.ndarray], targets: np.ndarray,
                    texts: Optional[Sequence[str]] = None, max_users: int = DEFAULT_MAX_USERS,
                    seed: int = 0, log: Optional[Callable[[str], None]] = print) -> Dict:
    """HR@10 and MRR of text-only, full and baseline search for held-out items' titles.

    Args:
        rec: a :class:`recsys.model.Recommender` fitted on the training part of the split and
            holding a text index.
        histories: each user's training sequence (item indices, oldest first).
        targets: each user's held-out item index (aligned with ``histories``).
        texts: the item texts for the TF-IDF baseline (default: title and category; pass
            :func:`item_texts` with the items file to include its attributes).
        max_users: sample size bound (deterministic for ``seed``).
        seed: seed of the user sample and of the typos.
        log: progress lines (None for silence).

    Returns:
        ``{"users", "k", "seed", "queries", "hit_rule", "methods": {method: {kind: {"HR@10",
        "MRR"}}}, "latency": {method: {"p50_ms", "p95_ms", "mean_ms", "cpu_mean_ms"}}}``.

    Raises:
        ValueError: the model has no text index, or ``histories`` and ``targets`` differ in length.
    """
    if rec.text_index is None:
        raise ValueError("search evaluation needs a model with a text index (give an items file)")
    targets = np.asarray(targets, np.int64)
    if len(histories) != len(targets):
        raise ValueError(f"{len(histories)} histories for {len(targets)} targets")
    users = sample_users(rec, targets, max_users, seed)
    queries = make_queries([rec.catalogue.titles[int(targets[u])] for u in users.tolist()], seed)
    ids = rec.catalogue.item_ids
    index = rec.catalogue.index
    baseline = tfidf_searcher(item_texts(rec) if texts is None else texts)
    histories_ids = [[ids[i] for i in np.asarray(histories[u])[-protocol.MAX_HISTORY:].tolist()]
                     for u in users.tolist()]

    def run(method: str, query: str, n: int) -> List[int]:
        if method == "text_only":
            return rec.text_index.query(query, K)[0].tolist()
        if method == "tfidf_word":
            return baseline(query)
        history = histories_ids[n] if method == "search" else None
        return [index[i] for i, _ in rec.search(query, K, history=history)]

    ranks = {m: {kind: np.full(len(users), -1, np.int64) for kind in KINDS} for m in METHODS}
    wall: Dict[str, List[float]] = {m: [] for m in METHODS}
    cpu: Dict[str, List[float]] = {m: [] for m in METHODS}
    started = time.time()
    for kind in KINDS:
        for n, u in enumerate(users.tolist()):
            target = int(targets[u])
            for m in METHODS:
                t0, c0 = time.perf_counter(), time.thread_time()
                found = run(m, queries[kind][n], n)
                wall[m].append(time.perf_counter() - t0)
                cpu[m].append(time.thread_time() - c0)
                if target in found:
                    ranks[m][kind][n] = found.index(target)
        if log:
            log(f"[evaluate] search: {kind} queries for {len(users):,} users ({time.time() - started:.1f}s)")
    return {
        "users": len(users),
        "k": K,
        "seed": seed,
        "queries": dict(QUERY_DESCRIPTIONS),
        "hit_rule": "the exact held-out item id in the top 10; MRR = mean of 1/rank within the top 10",
        "methods": {m: {kind: _metrics(ranks[m][kind]) for kind in KINDS} for m in METHODS},
        "latency": {m: _latency(wall[m], cpu[m]) for m in METHODS},
    }


def format_table(section: Mapping) -> str:
    """A small text table of :func:`evaluate_search`'s result."""
    head = f"{'search (' + str(section['users']) + ' users)':<22}" + "".join(
        f"{kind + ' HR@10':>13}{kind + ' MRR':>12}" for kind in KINDS) + f"{'p50 ms':>9}"
    lines = [head]
    for m, per_kind in section["methods"].items():
        row = f"{m:<22}" + "".join(
            f"{per_kind[kind]['HR@' + str(K)]:>13.4f}{per_kind[kind]['MRR']:>12.4f}" for kind in KINDS)
        lat = section.get("latency", {}).get(m, {})
        row += f"{lat.get('p50_ms', float('nan')):>9.2f}"
        lines.append(row)
    return "\n".join(lines)
