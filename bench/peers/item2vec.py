"""item2vec (Barkan & Koenigstein 2016): gensim Word2Vec skip-gram over the users' histories."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from bench.peers.base import Peer


def _stable_hash(text: str) -> int:
    """Seed hash for gensim's vector initialisation; Python's hash() changes per process."""
    return zlib.crc32(text.encode("utf-8"))


class Item2Vec(Peer):
    """Skip-gram with negative sampling on item sequences; scores by cosine to the mean of the
    last ``n_last`` history items' (normalised) vectors.

    Deterministic for a given seed: one worker thread and a process-independent seed hash.

    Args:
        vector_size: Embedding dimension.
        window: Context window (gensim shrinks it at random per position).
        negative: Negative samples per positive.
        ns_exponent: Exponent of the negative-sampling distribution.
        sample: Down-sampling threshold of frequent items.
        epochs: Passes over the sequences.
        n_last: History items averaged into the query vector.
        seed: gensim seed.
    """

    name = "item2vec"

    def __init__(self, vector_size: int = 64, window: int = 5, negative: int = 5,
                 ns_exponent: float = 0.75, sample: float = 1e-3, epochs: int = 10,
                 n_last: int = 1, seed: int = 0) -> None:
        super().__init__(seed)
        self.vector_size, self.window, self.negative = vector_size, window, negative
        self.ns_exponent, self.sample, self.epochs, self.n_last = ns_exponent, sample, epochs, n_last

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        from gensim.models import Word2Vec

        sentences = [[str(int(i)) for i in seq] for seq in train_sequences if len(seq)]
        self.vectors = np.zeros((n_items, self.vector_size), dtype=np.float64)
        if not sentences:
            return
        model = Word2Vec(
            sentences=sentences, vector_size=self.vector_size, window=self.window, min_count=1,
            sg=1, hs=0, negative=self.negative, ns_exponent=self.ns_exponent, sample=self.sample,
            epochs=self.epochs, workers=1, seed=self.seed, hashfxn=_stable_hash)
        for token, row in model.wv.key_to_index.items():
            self.vectors[int(token)] = model.wv.vectors[row]
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        # items never seen in training keep a zero vector: cosine 0 with every query
        np.divide(self.vectors, norms, out=self.vectors, where=norms > 0)

    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Cosine between every item and the mean vector of each history's last items."""
        queries = np.zeros((len(sequences), self.vector_size))
        for row, seq in enumerate(sequences):
            if len(seq):
                queries[row] = self.vectors[np.asarray(seq[-self.n_last:], dtype=np.int64)].mean(0)
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        np.divide(queries, norms, out=queries, where=norms > 0)
        return queries @ self.vectors.T
