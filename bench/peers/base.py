"""The one interface every peer implements, and the helpers they share.

Modelled on ``implicit``'s ``RecommenderBase``: a peer is fitted on the users' ordered training
histories and recommends, for each history it is given, the top-k items not in that history.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

#: Decay of the sequence-aware variants: an event ``age`` steps before the most recent one
#: (age 0) weighs ``RECENCY_DECAY ** age``.
RECENCY_DECAY = 0.85


def history_matrix(
    sequences: Sequence[np.ndarray], n_items: int, recency: float | None = None
) -> sp.csr_matrix:
    """Build the (n_users, n_items) history matrix of a list of ordered item sequences.

    Args:
        sequences: ``sequences[u]`` holds user u's item indices, oldest first.
        n_items: Number of columns.
        recency: None for a binary matrix (an item seen at least once is 1); otherwise each
            event weighs ``recency ** age`` (age 0 = most recent) and repeats add up.

    Returns:
        A float64 CSR matrix.
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    rows = np.repeat(np.arange(len(sequences)), lengths)
    cols = (np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
            if len(sequences) and lengths.sum() else np.zeros(0, dtype=np.int64))
    if recency is None:
        data = np.ones(len(cols))
    else:
        # age of each event counted from the end of its own sequence
        ends = np.repeat(np.cumsum(lengths), lengths)
        age = ends - 1 - np.arange(len(cols))
        data = np.power(recency, age, dtype=np.float64)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(sequences), n_items))
    matrix.sum_duplicates()
    if recency is None:
        matrix.data[:] = 1.0
    return matrix


def item_counts(sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Count events per item (each event once)."""
    if not sequences:
        return np.zeros(n_items, dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    return np.bincount(flat, minlength=n_items)[:n_items]


def top_k_excluding(
    scores: np.ndarray, sequences: Sequence[np.ndarray], k: int, tie_rank: np.ndarray
) -> np.ndarray:
    """Top-k items per row of ``scores``, never an item of that row's history.

    Ties (including all-equal rows, e.g. an empty history) are broken by ``tie_rank``
    (lower first). Rows with fewer than k eligible items are padded with -1.
    """
    scores = np.array(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("peer produced NaN scores")
    for row, seq in enumerate(sequences):
        if len(seq):
            scores[row, np.asarray(seq, dtype=np.int64)] = -np.inf
    ties = np.broadcast_to(tie_rank, scores.shape)
    order = np.lexsort((ties, -scores), axis=-1)[:, :k]
    chosen = np.take_along_axis(scores, order, axis=1)
    out = order.astype(np.int64)
    out[np.isneginf(chosen)] = -1
    if out.shape[1] < k:
        out = np.hstack([out, -np.ones((out.shape[0], k - out.shape[1]), dtype=np.int64)])
    return out


class Peer(ABC):
    """A baseline recommender.

    Subclasses implement ``_fit`` and ``score``; ``recommend`` excludes history items, breaks
    ties by training popularity then item index, and works in batches of users.

    Attributes:
        name: Short display name used in the results table.
        seed: Random seed; every peer is deterministic for a given seed where its library allows.
    """

    name = "peer"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.n_items = 0
        self._tie_rank = np.zeros(0, dtype=np.int64)

    def fit(self, train_sequences: Sequence[np.ndarray], n_items: int) -> Peer:
        """Fit on the users' training histories.

        Parameters
        ----------
        train_sequences : list of np.ndarray
            ``train_sequences[u]`` is user u's item indices in time order (ties keep file order).
        n_items : int
            Size of the catalogue; every index is in ``[0, n_items)``.

        Returns
        -------
        Peer
            self, fitted.
        """
        if n_items <= 0:
            raise ValueError(f"n_items must be positive, got {n_items}")
        for u, seq in enumerate(train_sequences):
            if len(seq) and (np.min(seq) < 0 or np.max(seq) >= n_items):
                raise ValueError(f"train_sequences[{u}] has an item index outside [0, {n_items})")
        self.n_items = n_items
        counts = item_counts(train_sequences, n_items)
        # rank 0 = most popular; equal counts keep index order (stable sort)
        self._tie_rank = np.empty(n_items, dtype=np.int64)
        self._tie_rank[np.argsort(-counts, kind="stable")] = np.arange(n_items)
        self._fit(list(train_sequences), n_items)
        return self

    @abstractmethod
    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        """Learn the model's parameters."""

    @abstractmethod
    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Score every item for each history.

        Parameters
        ----------
        sequences : list of np.ndarray
            Ordered histories (oldest first); may be empty arrays.

        Returns
        -------
        np.ndarray
            (len(sequences), n_items) scores, higher is better.
        """

    def recommend(
        self, train_sequences: Sequence[np.ndarray], k: int, batch_size: int = 1024
    ) -> np.ndarray:
        """Recommend k items per history, never one of that history's items.

        Parameters
        ----------
        train_sequences : list of np.ndarray
            One ordered history per user (the training histories in the evaluation).
        k : int
            Number of items per user.
        batch_size : int
            Users scored at once (bounds memory at batch_size x n_items floats).

        Returns
        -------
        np.ndarray
            (n_users, k) int64 item indices, best first; -1 pads a row with fewer than k
            eligible items.
        """
        if not self.n_items:
            raise RuntimeError(f"{self.name}: call fit() before recommend()")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        out = np.empty((len(train_sequences), k), dtype=np.int64)
        for start in range(0, len(train_sequences), batch_size):
            batch = [np.asarray(s, dtype=np.int64) for s in train_sequences[start:start + batch_size]]
            out[start:start + len(batch)] = top_k_excluding(
                self.score(batch), batch, k, self._tie_rank)
        return out
