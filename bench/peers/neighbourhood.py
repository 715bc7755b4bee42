"""Popularity, item-kNN (cosine) and EASE, plain and sequence-aware (recency-weighted history)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from bench.peers.base import RECENCY_DECAY, Peer, history_matrix, item_counts

#: Above this catalogue size EASE's dense n_items x n_items inverse stops being cheap.
EASE_MAX_ITEMS = 20_000


class Popularity(Peer):
    """Most-consumed items first: event counts over the training part (weights ignored)."""

    name = "popularity"

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        self.counts = item_counts(train_sequences, n_items).astype(np.float64)

    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Same popularity scores for every history."""
        return np.broadcast_to(self.counts, (len(sequences), self.n_items))


class ItemKNN(Peer):
    """Item-kNN: cosine similarity on the binary user-item matrix, top neighbours per item.

    score(u, j) = sum over history items i of w(u, i) * sim(i, j), where sim keeps only j's
    ``neighbors`` most similar items, and w is 1 (plain) or ``recency ** age`` (sequence-aware).

    Args:
        neighbors: Neighbourhood size kept per item.
        shrink: Added to the cosine denominator (damps similarities built on few users).
        recency: None for the plain form, a decay such as 0.85 for the sequence-aware form.
        seed: Unused (the model is deterministic); kept for the common interface.
    """

    def __init__(self, neighbors: int = 100, shrink: float = 0.0,
                 recency: float | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.neighbors, self.shrink, self.recency = neighbors, shrink, recency
        self.name = "item-kNN" if recency is None else "item-kNN-seq"

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        x = history_matrix(train_sequences, n_items).tocsc()
        co = (x.T @ x).tocsc()
        norms = np.sqrt(co.diagonal())
        keep = min(self.neighbors, max(n_items - 1, 1))
        rows, cols, vals = [], [], []
        block = 2048
        for start in range(0, n_items, block):
            stop = min(start + block, n_items)
            dense = co[:, start:stop].toarray()
            denom = np.outer(norms, norms[start:stop]) + self.shrink
            sim = np.divide(dense, denom, out=np.zeros_like(dense), where=denom > 0)
            sim[np.arange(start, stop), np.arange(stop - start)] = 0.0
            # top `keep` neighbours of each target item j (column); stable for equal values
            top = np.argsort(-sim, axis=0, kind="stable")[:keep]
            top_vals = np.take_along_axis(sim, top, axis=0)
            nz = top_vals > 0
            rows.append(top[nz])
            cols.append(np.broadcast_to(np.arange(start, stop), top.shape)[nz])
            vals.append(top_vals[nz])
        self.similarity = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_items, n_items))

    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """History (binary or recency-weighted) times the neighbour similarity matrix."""
        h = history_matrix(sequences, self.n_items, self.recency)
        return np.asarray((h @ self.similarity).todense())


class EASE(Peer):
    """EASE (Steck 2019): closed-form item-item weights with a zero diagonal.

    B = I - P diagMat(1 / diag(P)) with P = (X^T X + lambda I)^-1; score = history @ B.

    Args:
        l2: The lambda regulariser (500 in the paper's MovieLens settings).
        recency: None for the plain form, a decay such as 0.85 for the sequence-aware form.
        seed: Unused (closed form); kept for the common interface.
    """

    def __init__(self, l2: float = 500.0, recency: float | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.l2, self.recency = l2, recency
        self.name = "EASE" if recency is None else "EASE-seq"

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        if n_items > EASE_MAX_ITEMS:
            raise ValueError(f"EASE's dense solve is limited to {EASE_MAX_ITEMS} items, "
                             f"got {n_items}")
        x = history_matrix(train_sequences, n_items)
        gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
        gram[np.diag_indices(n_items)] += self.l2
        # gram is symmetric positive definite: Cholesky inverse is faster and stabler than inv
        factor = scipy.linalg.cho_factor(gram, overwrite_a=True)
        p = scipy.linalg.cho_solve(factor, np.eye(n_items), overwrite_b=True)
        b = p / (-np.diag(p))
        b[np.diag_indices(n_items)] = 0.0
        self.weights = b

    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """History (binary or recency-weighted) times the EASE weights."""
        h = history_matrix(sequences, self.n_items, self.recency)
        return np.asarray(h @ self.weights)


def sequence_aware(peer_cls: type, **kwargs: object) -> Peer:
    """The sequence-aware form of ItemKNN or EASE (history weighted by 0.85 ** age)."""
    return peer_cls(recency=RECENCY_DECAY, **kwargs)
