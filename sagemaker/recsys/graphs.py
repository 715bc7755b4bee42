"""Item-to-item graphs from ordered histories: co-occurrence counts and their pruned, normalised
forms (the co-visitation graph and the item-kNN graph), plus PPMI for the embeddings.

Everything is vectorised over all users at once: a position ``p`` and ``p + d`` in the same user's
sequence form a pair for every offset ``d`` up to the window.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import scipy.sparse as sp


def flatten(sequences: Sequence[np.ndarray], max_len: int = 0, dtype=np.int32):
    """Concatenate sequences (keeping only the last ``max_len`` items of each if > 0), as ``dtype``
    (float32 for per-event weights)."""
    if max_len > 0:
        sequences = [s[-max_len:] for s in sequences]
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    flat = np.concatenate(sequences).astype(dtype) if len(sequences) else np.zeros(0, dtype)
    owner = np.repeat(np.arange(len(sequences), dtype=np.int32), lengths)
    return flat, owner


def cooccurrence(
    sequences: Sequence[np.ndarray], n_items: int, window: int, forward: float = 1.0,
    backward: float = 1.0, decay: float = 1.0, max_len: int = 0,
    weights: Optional[Sequence[np.ndarray]] = None,
) -> sp.csr_matrix:
    """Weighted co-occurrence counts ``C[a, b]`` of ``b`` appearing within ``window`` positions of ``a``.

    A pair at distance ``d`` adds ``forward / d**decay`` to ``C[earlier, later]`` and
    ``backward / d**decay`` to ``C[later, earlier]``. With ``weights`` (per sequence, the weight
    of each event: ``recsys.event_types``) each addition to ``C[a, b]`` is multiplied by the
    weight of the event on ``b``: ``C[a, b]`` counts the occurrences of ``b`` near ``a``, each
    with its event's weight. The diagonal (an item with itself) is dropped.
    """
    flat, owner = flatten(sequences, max_len)
    event_w = flatten(weights, max_len, np.float32)[0] if weights is not None else None
    rows: List[np.ndarray] = []
    cols: List[np.ndarray] = []
    vals: List[np.ndarray] = []
    for d in range(1, window + 1):
        if d >= len(flat):
            break
        same = owner[:-d] == owner[d:]
        a, b = flat[:-d][same], flat[d:][same]
        keep = a != b
        a, b = a[keep], b[keep]
        w = np.float32(1.0 / d ** decay)
        wa = None if event_w is None else event_w[:-d][same][keep]
        wb = None if event_w is None else event_w[d:][same][keep]
        for weight, src, dst, w_dst in ((forward, a, b, wb), (backward, b, a, wa)):
            if weight:
                rows.append(src)
                cols.append(dst)
                if w_dst is None:
                    vals.append(np.full(len(src), weight * w, np.float32))
                else:  # the occurrence of dst counts with its event's weight
                    vals.append((w_dst * np.float32(weight * w)).astype(np.float32))
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    matrix = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items)
    ).tocsr()
    matrix.sum_duplicates()
    return matrix


def normalise_and_prune(counts: sp.csr_matrix, item_freq: np.ndarray, top_n: int, alpha: float = 0.5) -> sp.csr_matrix:
    """``S[a, b] = C[a, b] / (f_a**alpha * f_b**(1 - alpha))``, keeping the ``top_n`` largest per row.

    With ``alpha = 0.5`` this is the cosine-like normalisation of item-kNN; it damps the items that
    co-occur with everything only because they are popular.
    """
    f = np.maximum(item_freq.astype(np.float64), 1.0)
    c = counts.tocoo()
    data = c.data / (np.power(f[c.row], alpha) * np.power(f[c.col], 1.0 - alpha))
    scored = sp.csr_matrix((data.astype(np.float32), (c.row, c.col)), shape=counts.shape)
    return prune_rows(scored, top_n)


def prune_rows(matrix: sp.csr_matrix, top_n: int) -> sp.csr_matrix:
    """Keep the ``top_n`` largest entries of each row."""
    matrix = matrix.tocsr()
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    lengths = np.diff(indptr)
    if lengths.max(initial=0) <= top_n:
        matrix.sort_indices()
        return matrix
    keep = np.ones(len(data), dtype=bool)
    for row in np.flatnonzero(lengths > top_n):
        start, end = indptr[row], indptr[row + 1]
        segment = data[start:end]
        drop = np.argpartition(-segment, top_n)[top_n:]
        keep[start + drop] = False
    row_ids = np.repeat(np.arange(matrix.shape[0]), lengths)[keep]
    pruned = sp.csr_matrix((data[keep], (row_ids, indices[keep])), shape=matrix.shape)
    pruned.sort_indices()
    return pruned


def shifted_ppmi(counts: sp.csr_matrix, negatives: float, exponent: float) -> sp.csr_matrix:
    """Shifted positive PMI with context-distribution smoothing (Levy, Goldberg & Dagan 2015).

    ``max(log(C[a,b] * Z / (r_a * P_exp(b))) - log(negatives), 0)``: the matrix that skip-gram with
    ``negatives`` negative samples drawn from the unigram distribution raised to ``exponent``
    implicitly factorises (Levy & Goldberg 2014).
    """
    c = counts.tocoo()
    total = float(c.data.sum())
    if total <= 0:
        return sp.csr_matrix(counts.shape, dtype=np.float32)
    row_sum = np.asarray(counts.sum(axis=1)).ravel()
    col_sum = np.asarray(counts.sum(axis=0)).ravel()
    ctx = np.power(col_sum, exponent)
    ctx = ctx / ctx.sum()
    pmi = np.log(c.data) + np.log(total) - np.log(row_sum[c.row]) - np.log(total * ctx[c.col])
    pmi -= np.log(max(negatives, 1.0))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep].astype(np.float32), (c.row[keep], c.col[keep])), shape=counts.shape)
