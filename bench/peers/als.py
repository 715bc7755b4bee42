"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) from the ``implicit`` package, on the CPU."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.peers.base import Peer, history_matrix


class ImplicitALS(Peer):
    """``implicit.cpu.als.AlternatingLeastSquares`` on the binary user-item matrix.

    Users are folded in at recommendation time with the library's exact (Cholesky)
    ``recalculate_user``, so any history, including an empty one, can be scored.

    Args:
        factors: Latent dimension.
        regularization: L2 weight.
        alpha: Confidence of an observed interaction (implicit >= 0.7 multiplies the matrix by it).
        iterations: ALS sweeps.
        num_threads: Solver threads (the per-user solves are independent, so results do not
            depend on it).
        seed: ``random_state`` of the factor initialisation.
    """

    name = "ALS"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
                 iterations: int = 15, num_threads: int = 1, seed: int = 0) -> None:
        super().__init__(seed)
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.num_threads = iterations, num_threads

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        user_items = history_matrix(train_sequences, n_items).astype(np.float32).tocsr()
        # implicit warns, and slows down, when BLAS runs its own thread pool beside its solver
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, num_threads=self.num_threads,
                random_state=self.seed, calculate_training_loss=False)
            self.model.fit(user_items, show_progress=False)

    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """User factors folded in from each history, dotted with the item factors."""
        user_items = history_matrix(sequences, self.n_items).astype(np.float32).tocsr()
        users = self.model.recalculate_user(np.arange(len(sequences)), user_items)
        return np.asarray(users, dtype=np.float64) @ np.asarray(self.model.item_factors,
                                                                 dtype=np.float64).T
