"""Stage 1, retrieval: self-supervised item embeddings, the HNSW index, item-to-item graphs and
popularity, fitted from ordered histories, and the candidate sources that use them.

Candidate sources (each returns its own top list; their union is the candidate set):

* ``ann``:        HNSW search with a recency-weighted mean of the history's embeddings;
* ``recent``:     precomputed HNSW neighbours of the most recent items;
* ``covisit``:    the sequential co-visitation graph (what is consumed next, within a few steps),
                  summed over the recency-weighted history;
* ``knn``:        the item-kNN graph (co-occurrence in a wide window, cosine-normalised);
* ``ease``:       EASE item-item weights (Steck 2019), pruned to the strongest per item, for
                  catalogues up to ``ease_max_items`` (a dense inverse beyond that is too costly);
* ``popular`` and ``trending``: global lists, the cold-start answer.

Embeddings are the documented equivalent of skip-gram with negative sampling (item2vec):
truncated SVD of the shifted positive PMI matrix with context-distribution smoothing
(Levy & Goldberg 2014; Levy, Goldberg & Dagan 2015). ``window``, ``negatives`` (the PMI shift),
``exponent`` (the sampling exponent), ``epochs`` (power iterations of the randomised SVD) and ``dim``
are its hyperparameters. It is deterministic and fast on two cores (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import hnswlib
import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from . import event_types, graphs, hnsw_format
from .parallel import worker_count

SOURCES = ("ann", "recent", "covisit", "knn", "ease", "popular", "trending")
DAY = 86_400.0


@dataclass(frozen=True)
class RetrievalParams:
    """Hyperparameters of stage 1 (each can be passed to the training job as ``--name value``)."""

    dim: int = 64
    window: int = 5
    negatives: float = 1.0
    exponent: float = 0.75
    epochs: int = 5
    hnsw_m: int = 16
    ef_construction: int = 200
    ef: int = 128
    covisit_window: int = 3
    covisit_backward: float = 0.5
    knn_window: int = 50
    graph_top_n: int = 100
    neighbours: int = 20
    recency_decay: float = 0.85
    history_len: int = 50
    trend_days: float = 14.0
    n_ann: int = 200
    n_recent: int = 100
    n_covisit: int = 200
    n_knn: int = 200
    n_ease: int = 200
    ease_lambda: float = 500.0
    ease_max_items: int = 5000
    n_popular: int = 100
    n_trending: int = 50
    seed: int = 0
    # recsys.event_types: per-type weights of the counts and the query ("" = every event weighs 1)
    # and the event_value below which events are dropped before training (None = none dropped)
    event_weights: str = ""
    event_value_threshold: Optional[float] = None

    @classmethod
    def from_dict(cls, values: Optional[Dict[str, object]]) -> RetrievalParams:
        return params_from_dict(cls, values)


# hyperparameters whose values are not a plain int/float/str: their parsers (which name them)
SPECIAL_CASTS = {
    "event_weights": event_types.canonical_event_weights,
    "event_value_threshold": event_types.parse_threshold,
    "target_event_types": event_types.canonical_event_types,
}


def params_from_dict(cls, values):
    """A frozen params dataclass from (string) values: known keys only, cast to each default's type.

    Raises:
        ValueError: naming the hyperparameter whose value does not cast.
    """
    known = {f.name for f in fields(cls)}
    out = {}
    for k, v in (values or {}).items():
        if k not in known:
            continue
        special = SPECIAL_CASTS.get(k)
        if special is not None:
            out[k] = special(v)
            continue
        try:
            out[k] = type(getattr(cls, k))(v)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{k}: {exc}") from None
    return cls(**out)


def recency_weights(length: int, decay: float, history_len: int) -> np.ndarray:
    """Weights of the last ``history_len`` positions: ``decay ** age`` (age 0 = most recent)."""
    n = min(length, history_len)
    return np.power(decay, np.arange(n)[::-1], dtype=np.float64).astype(np.float32)


class RetrievalModel:
    """Fitted stage-1 artifacts and the candidate sources."""

    def __init__(self, params: RetrievalParams, embeddings: np.ndarray, index: Optional[hnswlib.Index],
                 neighbours: np.ndarray, neighbour_sims: np.ndarray, covisit: sp.csr_matrix,
                 knn: sp.csr_matrix, popularity: np.ndarray, trend: np.ndarray,
                 refs: Dict[str, float], index_recall: float, ease: Optional[sp.csr_matrix] = None) -> None:
        self.params = params
        # Features and query vectors read float16 copies: half the memory, and cosine features
        # move by ~1e-3. The HNSW index keeps its own float32 vectors for search. Training and
        # serving both go through here, so the ranker learns on the values it is served.
        self.embeddings = embeddings.astype(np.float16, copy=False)
        self.index = index
        self.neighbours = neighbours.astype(np.int32, copy=False)
        self.neighbour_sims = neighbour_sims.astype(np.float16, copy=False)
        self.covisit = covisit
        self.knn = knn
        self.ease = ease if ease is not None else sp.csr_matrix((embeddings.shape[0],) * 2, dtype=np.float32)
        self.popularity = popularity
        self.trend = trend
        self.refs = refs
        self.index_recall = index_recall
        self.n_items = embeddings.shape[0]
        self.popular_order = np.argsort(-popularity, kind="stable").astype(np.int32)
        self.trending_order = np.argsort(-trend, kind="stable").astype(np.int32)
        self.popular_rank = np.empty(self.n_items, np.float32)
        self.popular_rank[self.popular_order] = np.arange(self.n_items)
        self.trending_rank = np.empty(self.n_items, np.float32)
        self.trending_rank[self.trending_order] = np.arange(self.n_items)
        if index is not None:
            index.set_ef(params.ef)

    # --- fitting ------------------------------------------------------------------------

    @classmethod
    def fit(cls, sequences: Sequence[np.ndarray], times: Sequence[np.ndarray], n_items: int,
            params: RetrievalParams = RetrievalParams(), log=print,
            weights: Optional[Sequence[np.ndarray]] = None) -> RetrievalModel:
        """Fit embeddings, index, graphs and popularity from time-ordered item sequences.

        ``weights`` (per sequence, each event's weight: :func:`recsys.event_types.sequence_weights`)
        multiply each event's contribution to every count; None = every event counts 1.
        """
        p = params
        flat, _ = graphs.flatten(sequences)
        flat_w = graphs.flatten(weights, dtype=np.float32)[0] if weights is not None else None
        freq = np.bincount(flat, weights=flat_w, minlength=n_items).astype(np.float32)
        # popularity and trend relative to the end of the data
        all_times = np.concatenate(times) if len(times) else np.zeros(0)
        end = float(all_times.max()) if len(all_times) else 0.0
        start = float(all_times.min()) if len(all_times) else 0.0
        span_days = max((end - start) / DAY, p.trend_days)
        recent_mask = all_times >= end - p.trend_days * DAY
        recent = np.bincount(flat[recent_mask], weights=None if flat_w is None else flat_w[recent_mask],
                             minlength=n_items).astype(np.float64)
        expected = freq * (p.trend_days / span_days)
        trend = (np.log1p(recent) - np.log1p(expected)).astype(np.float32) + np.log1p(recent).astype(np.float32) * 0.5

        log(f"[retrieval] co-occurrence (window {p.window}) over {len(flat):,} events, {n_items:,} items")
        counts = graphs.cooccurrence(sequences, n_items, p.window, decay=1.0, weights=weights)
        embeddings = _svd_embeddings(counts, p, n_items)
        log(f"[retrieval] embeddings {embeddings.shape} from shifted PPMI + truncated SVD")
        index, recall = _build_index(embeddings, p)
        log(f"[retrieval] HNSW index: {0 if index is None else index.get_current_count():,} items, "
            f"recall@10 vs exact {recall:.4f}")
        neighbours, neighbour_sims = _item_neighbours(index, embeddings, p.neighbours)
        cov = graphs.cooccurrence(sequences, n_items, p.covisit_window, forward=1.0,
                                  backward=p.covisit_backward, decay=1.0, weights=weights)
        covisit = graphs.normalise_and_prune(cov, freq, p.graph_top_n, alpha=0.5)
        co = graphs.cooccurrence(sequences, n_items, p.knn_window, decay=0.0, max_len=200, weights=weights)
        knn = graphs.normalise_and_prune(co, freq, p.graph_top_n, alpha=0.5)
        ease = _ease(sequences, n_items, p, weights)
        log(f"[retrieval] graphs: covisit {covisit.nnz:,} edges, item-kNN {knn.nnz:,} edges, EASE {ease.nnz:,} weights")
        refs = {
            "ease": float(np.median(ease.data)) if ease.nnz else 1.0,
            "covisit": float(np.median(covisit.data)) if covisit.nnz else 1.0,
            "knn": float(np.median(knn.data)) if knn.nnz else 1.0,
            "trend_end": end,
        }
        return cls(p, embeddings, index, neighbours, neighbour_sims, covisit, knn, freq, trend, refs, recall, ease)

    # --- persistence ----------------------------------------------------------------------

    def save(self, directory) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "embeddings.npy", self.embeddings)
        np.save(d / "neighbours.npy", self.neighbours)
        np.save(d / "neighbour_sims.npy", self.neighbour_sims)
        np.save(d / "popularity.npy", self.popularity)
        np.save(d / "trend.npy", self.trend)
        sp.save_npz(d / "covisit.npz", self.covisit)
        sp.save_npz(d / "knn.npz", self.knn)
        sp.save_npz(d / "ease.npz", self.ease)
        if self.index is not None:
            hnsw_format.save(self.index, d / "hnsw.bin")  # one layout for both hnswlib builds
        meta = {
            "params": asdict(self.params),
            "refs": self.refs,
            "index_recall_at_10": self.index_recall,
            "index_count": 0 if self.index is None else self.index.get_current_count(),
        }
        (d / "retrieval.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory) -> RetrievalModel:
        d = Path(directory)
        meta = json.loads((d / "retrieval.json").read_text())
        params = RetrievalParams.from_dict(meta["params"])
        embeddings = np.load(d / "embeddings.npy", allow_pickle=False)
        index = None
        if (d / "hnsw.bin").exists() and meta["index_count"] > 0:
            index = hnswlib.Index(space="ip", dim=embeddings.shape[1])
            hnsw_format.load(index, d / "hnsw.bin", max_elements=meta["index_count"])
            index.set_num_threads(1)  # one request at a time per worker; batch jobs raise it
        return cls(
            params, embeddings, index,
            np.load(d / "neighbours.npy", allow_pickle=False),
            np.load(d / "neighbour_sims.npy", allow_pickle=False),
            sp.load_npz(d / "covisit.npz").tocsr(), sp.load_npz(d / "knn.npz").tocsr(),
            np.load(d / "popularity.npy", allow_pickle=False), np.load(d / "trend.npy", allow_pickle=False),
            meta["refs"], meta["index_recall_at_10"],
            sp.load_npz(d / "ease.npz").tocsr() if (d / "ease.npz").exists() else None,
        )

    # --- online use -------------------------------------------------------------------------

    def share_cores(self, processes: int) -> None:
        """Give the index's batch queries this process's share of the cores, when ``processes``
        worker processes run at once (a ``map_batches`` ``before_fork`` hook)."""
        if self.index is not None:
            self.index.set_num_threads(max(1, worker_count() // processes))

    def query_vectors(self, windows: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
        """The ANN query of each history: the weighted sum of the embeddings of its window (its
        last ``history_len`` items, with their recency weights), normalised (a zero row when
        empty)."""
        q = np.zeros((len(windows), self.embeddings.shape[1]), np.float32)
        for row, (window, w) in enumerate(zip(windows, weights)):
            if len(window):
                q[row] = w @ self.embeddings[window].astype(np.float32)
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        return np.divide(q, norms, out=np.zeros_like(q), where=norms > 0)

    def ann(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """HNSW top-k by inner product for each row (k clamped to the index size); -1 pads."""
        rows = queries.shape[0]
        if self.index is None or rows == 0:
            return np.full((rows, 0), -1, np.int64), np.zeros((rows, 0), np.float32)
        k = max(1, min(k, self.index.get_current_count()))
        self.index.set_ef(max(self.params.ef, k))  # ef >= k, or hnswlib cannot return k results
        labels, dist = self.index.knn_query(np.asarray(queries, np.float32), k=k)
        return labels.astype(np.int64), (1.0 - dist).astype(np.float32)


def _ease(sequences: Sequence[np.ndarray], n_items: int, p: RetrievalParams,
          weights: Optional[Sequence[np.ndarray]] = None) -> sp.csr_matrix:
    """EASE's closed form ``B = I - P / diag(P)``, ``P = (X^T X + lambda I)^-1``, pruned per row.

    ``X[u, i]`` is 1 when user ``u`` has an event on item ``i`` (repeats count once); with
    ``weights``, the largest weight of those events.
    """
    if n_items > p.ease_max_items or n_items < 2:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    flat, owner = graphs.flatten(sequences)
    if weights is None:
        x = sp.csr_matrix((np.ones(len(flat), np.float32), (owner, flat)), shape=(len(sequences), n_items))
        x.data[:] = 1.0  # binary: repeats count once
    else:
        flat_w = graphs.flatten(weights, dtype=np.float32)[0]
        cell, first = np.unique(owner.astype(np.int64) * n_items + flat, return_inverse=True)
        best = np.zeros(len(cell), np.float32)
        np.maximum.at(best, first.ravel(), flat_w)
        x = sp.csr_matrix((best, (cell // n_items, cell % n_items)), shape=(len(sequences), n_items))
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices(n_items)] += p.ease_lambda
    inv = np.linalg.inv(gram)
    b = -inv / np.diag(inv)[None, :]
    b[np.diag_indices(n_items)] = 0.0
    b[b < 0] = 0.0
    return graphs.prune_rows(sp.csr_matrix(b.astype(np.float32)), p.graph_top_n)


def _svd_embeddings(counts: sp.csr_matrix, p: RetrievalParams, n_items: int) -> np.ndarray:
    ppmi = graphs.shifted_ppmi(counts, p.negatives, p.exponent)
    dim = max(1, min(p.dim, n_items - 1))
    if ppmi.nnz == 0:
        return np.zeros((n_items, dim), np.float32)
    u, s, _ = randomized_svd(ppmi, n_components=dim, n_iter=p.epochs, random_state=p.seed)
    emb = (u * np.sqrt(s)).astype(np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 1e-12)
    if emb.shape[1] < p.dim:  # tiny catalogues: pad so the artifact shape stays as configured
        emb = np.hstack([emb, np.zeros((n_items, p.dim - emb.shape[1]), np.float32)])
    return emb


def _build_index(embeddings: np.ndarray, p: RetrievalParams) -> Tuple[Optional[hnswlib.Index], float]:
    present = np.flatnonzero(np.linalg.norm(embeddings, axis=1) > 0)
    if len(present) == 0:
        return None, 0.0
    index = hnswlib.Index(space="ip", dim=embeddings.shape[1])
    index.init_index(max_elements=len(present), ef_construction=p.ef_construction, M=p.hnsw_m,
                     random_seed=p.seed)
    index.set_num_threads(os.cpu_count() or 1)
    index.add_items(embeddings[present], present)
    index.set_ef(p.ef)
    return index, measure_recall(index, embeddings, present, p.seed)


def measure_recall(index: hnswlib.Index, embeddings: np.ndarray, present: np.ndarray, seed: int,
                   k: int = 10, n_queries: int = 500) -> float:
    """Recall@k of the HNSW index against exact inner-product search, on sampled item queries."""
    rng = np.random.default_rng(seed)
    k = min(k, len(present))
    queries = embeddings[rng.choice(present, size=min(n_queries, len(present)), replace=False)]
    labels, _ = index.knn_query(queries, k=k)
    exact_scores = queries @ embeddings[present].T
    exact = present[np.argpartition(-exact_scores, k - 1, axis=1)[:, :k]]
    hits = sum(len(set(a) & set(b)) for a, b in zip(labels.tolist(), exact.tolist()))
    return hits / float(k * len(queries))


def _item_neighbours(index: Optional[hnswlib.Index], embeddings: np.ndarray, k: int):
    n = embeddings.shape[0]
    neighbours = np.full((n, k), -1, np.int32)
    sims = np.zeros((n, k), np.float32)
    if index is None:
        return neighbours, sims
    present = np.flatnonzero(np.linalg.norm(embeddings, axis=1) > 0)
    kk = min(k + 1, index.get_current_count())
    index.set_ef(max(index.ef, kk))
    labels, dist = index.knn_query(embeddings[present], k=kk)
    for row, item in enumerate(present):
        mask = labels[row] != item
        lab, sim = labels[row][mask][:k], 1.0 - dist[row][mask][:k]
        neighbours[item, : len(lab)] = lab
        sims[item, : len(lab)] = sim
    return neighbours, sims
