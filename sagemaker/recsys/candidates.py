"""Stages 1-3 for a batch of users: retrieval from every source, filtering, and the features the
ranker scores. The same code answers one request online and scores thousands of users offline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .attributes import Metadata
from .retrieval import RetrievalModel, recency_weights

FEATURES = (
    "ann_sim", "ann_rr", "recent_sim", "last_sim", "recent_rr",
    "covisit", "covisit_last", "covisit_rr", "knn", "knn_rr",
    "popularity", "popular_rr", "trend", "trending_rr",
    "category_affinity", "history_length",
    "ann_sim_x_history", "covisit_x_history", "fusion", "n_sources", "ease", "ease_rr",
)
N_RECENT = 5  # items whose neighbours feed the "recent" source and the recent_sim feature


@dataclass
class ItemFilter:
    """Filtering rules already mapped to item indices / category codes."""

    exclude: Optional[np.ndarray] = None  # item indices
    include_categories: Optional[np.ndarray] = None  # category codes
    exclude_categories: Optional[np.ndarray] = None

    def keep(self, items: np.ndarray, item_category: np.ndarray) -> np.ndarray:
        mask = np.ones(len(items), dtype=bool)
        if self.exclude is not None and len(self.exclude):
            mask &= ~np.isin(items, self.exclude)
        if self.include_categories is not None:
            mask &= np.isin(item_category[items], self.include_categories)
        if self.exclude_categories is not None and len(self.exclude_categories):
            mask &= ~np.isin(item_category[items], self.exclude_categories)
        return mask


@dataclass
class Candidates:
    """One user's candidate items (after filtering) and their feature rows."""

    items: np.ndarray  # int64 item indices
    features: np.ndarray  # float32 (len(items), len(builder.feature_names)): FEATURES, then attribute columns
    sources: Dict[str, np.ndarray]  # each source's own top list (before filtering), for reports


def _top_sparse(indices: np.ndarray, data: np.ndarray, n: int) -> np.ndarray:
    if len(data) <= n:
        order = np.argsort(-data, kind="stable")
    else:
        part = np.argpartition(-data, n)[:n]
        order = part[np.argsort(-data[part], kind="stable")]
    return indices[order]


def _weighted_row_sum(graph, items: np.ndarray, weights: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``weights @ graph[items]`` as (sorted column indices, float32 sums): the history's weighted
    sum of its items' graph rows. Gathers only those rows, where a sparse matrix product would
    cost a pass over all the catalogue's columns per request."""
    indptr = graph.indptr
    starts, ends = indptr[items], indptr[np.asarray(items) + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    # positions of every gathered entry: start of its row + offset within the row
    row_of = np.repeat(np.arange(len(items)), lengths)
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = starts[row_of] + offsets
    columns, inverse = np.unique(graph.indices[pos], return_inverse=True)
    sums = np.bincount(inverse, weights=graph.data[pos] * weights[row_of], minlength=len(columns))
    return columns, sums.astype(np.float32)


def _lookup(indices: np.ndarray, data: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Values of a sorted sparse row at ``items`` (0 where absent)."""
    if len(indices) == 0:
        return np.zeros(len(items), np.float32)
    pos = np.searchsorted(indices, items)
    pos = np.minimum(pos, len(indices) - 1)
    return np.where(indices[pos] == items, data[pos], 0.0).astype(np.float32)


def _rr(top: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Reciprocal rank (1 / (1 + rank)) of each item in a top list, 0 where absent."""
    if len(top) == 0 or len(items) == 0:
        return np.zeros(len(items), np.float32)
    order = np.argsort(top, kind="stable")
    sorted_top = top[order]
    pos = np.minimum(np.searchsorted(sorted_top, items), len(top) - 1)
    found = sorted_top[pos] == items
    return np.where(found, 1.0 / (1.0 + order[pos]), 0.0).astype(np.float32)


class CandidateBuilder:
    """Runs the retrieval sources and computes ranking features."""

    def __init__(self, retrieval: RetrievalModel, item_category: np.ndarray, metadata: Optional[Metadata] = None) -> None:
        self.r = retrieval
        self.item_category = item_category.astype(np.int32)
        self.n_categories = int(item_category.max()) + 1 if len(item_category) else 1
        self.log_pop = np.log1p(retrieval.popularity).astype(np.float32)
        self.metadata = metadata if metadata is not None and not metadata.empty else None

    @property
    def feature_names(self) -> List[str]:
        """:data:`FEATURES`, then the attribute columns (:mod:`recsys.attributes`) when the model has any."""
        return list(FEATURES) + (self.metadata.feature_names if self.metadata is not None else [])

    def build(self, histories: Sequence[np.ndarray], filters: Optional[Sequence[Optional[ItemFilter]]] = None,
              min_candidates: int = 0, fixed_items: Optional[Sequence[np.ndarray]] = None,
              users: Optional[Sequence[Optional[str]]] = None) -> List[Candidates]:
        """Candidates and features for each history.

        Args:
            histories: item indices per user, oldest first.
            filters: per user, extra filtering (seen items are always removed).
            min_candidates: top up from popular items passing the filter when fewer remain.
            fixed_items: score exactly these items instead of retrieving (``rank``).
            users: per history, the user's id (for the user attribute columns; None = unknown).
        """
        r, p = self.r, self.r.params
        # each history's last history_len items and their recency weights: the ANN query, the
        # graph sources and the category affinity all read this window
        windows = [np.asarray(h[-p.history_len:], np.int64) for h in histories]
        window_weights = [recency_weights(len(w), p.recency_decay, p.history_len) for w in windows]
        queries = r.query_vectors(windows, window_weights)
        ann_labels, _ = r.ann(queries, p.n_ann + p.history_len)
        popular = r.popular_order[: p.n_popular]
        trending = r.trending_order[: p.n_trending]
        out: List[Candidates] = []
        for b, history in enumerate(histories):
            tail = _recent_distinct(history, N_RECENT)
            tail_w = recency_weights(len(tail), p.recency_decay, N_RECENT)
            ann_top = ann_labels[b][ann_labels[b] >= 0] if ann_labels.shape[1] else np.zeros(0, np.int64)
            recent_top = self._recent_source(tail, tail_w, p.n_recent)
            h, h_w = windows[b], window_weights[b]
            cov_idx, cov_val = _weighted_row_sum(r.covisit, h, h_w)
            knn_idx, knn_val = _weighted_row_sum(r.knn, h, h_w)
            ease_idx, ease_val = _weighted_row_sum(r.ease, h, h_w)
            cov_top = _top_sparse(cov_idx, cov_val, p.n_covisit)
            knn_top = _top_sparse(knn_idx, knn_val, p.n_knn)
            ease_top = _top_sparse(ease_idx, ease_val, p.n_ease)
            sources = {"ann": ann_top[: p.n_ann + len(history)], "recent": recent_top,
                       "covisit": cov_top, "knn": knn_top, "ease": ease_top, "popular": popular, "trending": trending}
            if fixed_items is not None:
                items = np.asarray(fixed_items[b], np.int64)
            else:
                items = np.unique(np.concatenate([s.astype(np.int64) for s in sources.values()]))
                keep = ~np.isin(items, history)
                f = filters[b] if filters is not None else None
                if f is not None:
                    keep &= f.keep(items, self.item_category)
                items = items[keep]
                if len(items) < min_candidates:
                    items = self._top_up(items, history, f, min_candidates)
            feats = self._features(items, history, h, h_w, queries[b], tail, tail_w, sources,
                                   cov_idx, cov_val, knn_idx, knn_val, ease_idx, ease_val)
            if self.metadata is not None:
                user = users[b] if users is not None else None
                feats = np.concatenate([feats, self.metadata.columns(items, user, h, h_w)], axis=1)
            out.append(Candidates(items=items, features=feats, sources=sources))
        return out

    def _recent_source(self, tail: np.ndarray, tail_w: np.ndarray, n: int) -> np.ndarray:
        if len(tail) == 0:
            return np.zeros(0, np.int64)
        nb = self.r.neighbours[tail]
        sims = self.r.neighbour_sims[tail] * tail_w[:, None]
        valid = nb >= 0
        items, vals = nb[valid].astype(np.int64), sims[valid]
        if len(items) == 0:
            return items
        order = np.lexsort((-vals, items))  # per item, best first
        items, vals = items[order], vals[order]
        first = np.concatenate(([True], items[1:] != items[:-1]))
        return _top_sparse(items[first], vals[first], n)

    def _top_up(self, items: np.ndarray, history: np.ndarray, f: Optional[ItemFilter], n: int) -> np.ndarray:
        have = set(items.tolist()) | set(history.tolist())
        extra: List[int] = []
        order = self.r.popular_order
        for start in range(0, len(order), 4096):
            chunk = order[start:start + 4096].astype(np.int64)
            ok = np.ones(len(chunk), bool) if f is None else f.keep(chunk, self.item_category)
            for it in chunk[ok].tolist():
                if it not in have:
                    extra.append(it)
                    if len(items) + len(extra) >= n:
                        return np.concatenate([items, np.array(extra, np.int64)])
        return np.concatenate([items, np.array(extra, np.int64)]) if extra else items

    def _features(self, items, history, window, window_w, query, tail, tail_w, sources, cov_idx, cov_val,
                  knn_idx, knn_val, ease_idx, ease_val):
        r = self.r
        n = len(items)
        x = np.zeros((n, len(FEATURES)), np.float32)
        if n == 0:
            return x
        emb = r.embeddings[items].astype(np.float32)
        x[:, 0] = emb @ query
        x[:, 1] = _rr(sources["ann"], items)
        if len(tail):
            sims = emb @ r.embeddings[tail].astype(np.float32).T
            x[:, 2] = (sims * tail_w[None, :]).max(axis=1)
            x[:, 3] = sims[:, -1]
            last = int(tail[-1])
            ls, le = r.covisit.indptr[last], r.covisit.indptr[last + 1]
            x[:, 6] = np.log1p(_lookup(r.covisit.indices[ls:le], r.covisit.data[ls:le], items) / r.refs["covisit"])
        x[:, 4] = _rr(sources["recent"], items)
        x[:, 5] = np.log1p(_lookup(cov_idx, cov_val, items) / r.refs["covisit"])
        x[:, 7] = _rr(sources["covisit"], items)
        x[:, 8] = np.log1p(_lookup(knn_idx, knn_val, items) / r.refs["knn"])
        x[:, 9] = _rr(sources["knn"], items)
        x[:, 10] = self.log_pop[items]
        x[:, 11] = 1.0 / (1.0 + r.popular_rank[items])
        x[:, 12] = r.trend[items]
        x[:, 13] = 1.0 / (1.0 + r.trending_rank[items])
        if len(window):
            aff = np.bincount(self.item_category[window], weights=window_w, minlength=self.n_categories)
            aff = aff / max(window_w.sum(), 1e-9)
            x[:, 14] = aff[self.item_category[items]]
        hist = np.float32(np.log1p(len(history)))
        x[:, 15] = hist
        x[:, 16] = x[:, 0] * hist
        x[:, 17] = x[:, 5] * hist
        x[:, 20] = np.log1p(_lookup(ease_idx, ease_val, items) / r.refs.get("ease", 1.0))
        x[:, 21] = _rr(sources["ease"], items)
        rr = x[:, RR_COLUMNS]
        x[:, 18] = _fusion(rr)
        x[:, 19] = (rr > 0).sum(axis=1)
        return x


def _recent_distinct(history: np.ndarray, n: int) -> np.ndarray:
    """The last ``n`` distinct items, oldest first."""
    out: List[int] = []
    seen = set()
    for it in reversed(history.tolist()):
        if it not in seen:
            seen.add(it)
            out.append(it)
            if len(out) == n:
                break
    return np.array(out[::-1], dtype=np.int64)


RR_COLUMNS = [FEATURES.index(n) for n in
              ("ann_rr", "recent_rr", "covisit_rr", "knn_rr", "ease_rr", "popular_rr", "trending_rr")]
FUSION_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5], np.float32)


def _fusion(rr: np.ndarray) -> np.ndarray:
    # rr = 1/(1+rank); reciprocal rank fusion uses 1/(60+rank); popularity sources count half
    rank = np.where(rr > 0, 1.0 / np.maximum(rr, 1e-9) - 1.0, np.inf)
    return (FUSION_WEIGHTS[None, :] / (60.0 + rank)).sum(axis=1).astype(np.float32) * 60.0


def fusion_scores(c: Candidates) -> np.ndarray:
    """Reciprocal-rank fusion of the sources: the order of stage 1 alone (no learned ranker)."""
    return c.features[:, FEATURES.index("fusion")]
