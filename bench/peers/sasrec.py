"""SASRec (Kang & McAuley 2018), the self-attentive sequential recommender, on the CPU with torch.

A compact implementation following the paper and its reference code: learned positional
embeddings, pre-LayerNorm causal self-attention blocks with a point-wise feed-forward network,
shared input/output item embeddings. Training uses, by default, cross-entropy over the whole
catalogue at every position (Klenitskiy & Vasilev 2023 show it beats the paper's one-negative
BCE); ``loss="bce"`` gives the paper's objective with one uniformly sampled negative.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from bench.peers.base import Peer


def _build_net(n_items: int, hidden: int, max_len: int, n_blocks: int, n_heads: int,
               dropout: float):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class PointWiseFeedForward(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, hidden), nn.Dropout(dropout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.net(x)

    class SASRecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # index 0 is padding; item i is stored at i + 1
            self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)
            self.pos_emb = nn.Embedding(max_len, hidden)
            self.emb_dropout = nn.Dropout(dropout)
            self.attn_norms = nn.ModuleList(nn.LayerNorm(hidden, eps=1e-8) for _ in range(n_blocks))
            self.attns = nn.ModuleList(nn.MultiheadAttention(hidden, n_heads, dropout=dropout,
                                                             batch_first=True)
                                       for _ in range(n_blocks))
            self.ffn_norms = nn.ModuleList(nn.LayerNorm(hidden, eps=1e-8) for _ in range(n_blocks))
            self.ffns = nn.ModuleList(PointWiseFeedForward() for _ in range(n_blocks))
            self.last_norm = nn.LayerNorm(hidden, eps=1e-8)
            self.register_buffer("causal", torch.triu(torch.ones(max_len, max_len,
                                                                 dtype=torch.bool), 1))

        def forward(self, seqs: torch.Tensor) -> torch.Tensor:
            """(B, L) padded item ids -> (B, L, hidden) hidden states."""
            length = seqs.shape[1]
            x = self.item_emb(seqs) * math.sqrt(hidden)
            x = x + self.pos_emb(torch.arange(length, device=seqs.device))
            x = self.emb_dropout(x)
            keep = (seqs != 0).unsqueeze(-1)
            x = x * keep
            mask = self.causal[:length, :length]
            for norm, attn, ffn_norm, ffn in zip(self.attn_norms, self.attns, self.ffn_norms,
                                                 self.ffns):
                q = norm(x)
                out, _ = attn(q, x, x, attn_mask=mask, need_weights=False)
                x = ffn(ffn_norm(q + out)) * keep
            return self.last_norm(x)

        def item_weights(self) -> torch.Tensor:
            return self.item_emb.weight[1:]

    net = SASRecNet()
    # as the reference code: Xavier-normal weights (PyTorch's N(0, 1) embeddings, scaled by
    # sqrt(hidden), start the softmax at a loss of ~30 and training stalls)
    for name, param in net.named_parameters():
        if param.dim() > 1 and "norm" not in name:
            nn.init.xavier_normal_(param)
    with torch.no_grad():
        net.item_emb.weight[0].zero_()
    return net


class SASRec(Peer):
    """SASRec trained on the users' training histories (next-item prediction at every position).

    Deterministic for a given seed and thread count, as long as ``epochs`` (not the wall-clock
    ``time_budget``) ends training.

    Args:
        hidden: Embedding and model width.
        n_blocks: Self-attention blocks.
        n_heads: Attention heads.
        max_len: Longest history window seen by the model (older items are cut).
        dropout: Dropout rate (0.2 as the paper's MovieLens setting).
        epochs: Maximum passes over the users.
        time_budget: Wall-clock seconds after which training stops at the end of an epoch.
        batch_size: Training windows (of max_len + 1 items) per step.
        lr: Adam learning rate.
        loss: "ce" (softmax over all items) or "bce" (one sampled negative per position).
        threads: torch intra-op threads.
        seed: torch seed (weights, dropout, shuffling, negatives).
    """

    name = "SASRec"

    def __init__(self, hidden: int = 64, n_blocks: int = 2, n_heads: int = 1, max_len: int = 50,
                 dropout: float = 0.2, epochs: int = 30, time_budget: float = 600.0,
                 batch_size: int = 128, lr: float = 1e-3, loss: str = "ce", threads: int = 2,
                 seed: int = 0) -> None:
        super().__init__(seed)
        if loss not in ("ce", "bce"):
            raise ValueError(f"loss must be 'ce' or 'bce', got {loss!r}")
        self.hidden, self.n_blocks, self.n_heads, self.max_len = hidden, n_blocks, n_heads, max_len
        self.dropout, self.epochs, self.time_budget = dropout, epochs, time_budget
        self.batch_size, self.lr, self.loss, self.threads = batch_size, lr, loss, threads
        self.epochs_run = 0
        self.train_seconds = 0.0
        #: called after every epoch with the peer (for learning curves); None in normal use
        self.epoch_callback: Callable[[SASRec], None] | None = None

    def _pad(self, sequences: Sequence[np.ndarray], length: int) -> np.ndarray:
        """Left-pad the last ``length`` items of each sequence (stored as item + 1, 0 = pad)."""
        out = np.zeros((len(sequences), length), dtype=np.int64)
        for row, seq in enumerate(sequences):
            tail = np.asarray(seq[-length:], dtype=np.int64) if len(seq) else np.zeros(0, np.int64)
            if len(tail):
                out[row, length - len(tail):] = tail + 1
        return out

    def _training_windows(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Cut each history into windows of max_len + 1 items (inputs w[:-1], targets w[1:]).

        Windows are taken from the end and overlap by one item, so every position of a long
        history is a training target exactly once and little of the batch is padding.
        """
        windows = []
        for seq in sequences:
            for end in range(len(seq), 1, -self.max_len):
                windows.append(np.asarray(seq[max(0, end - self.max_len - 1):end]))
        return windows

    def _fit(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        import torch

        torch.set_num_threads(self.threads)
        usable = self._training_windows(train_sequences)
        windows = self._pad(usable, self.max_len + 1)
        inputs = torch.from_numpy(windows[:, :-1])
        targets = torch.from_numpy(windows[:, 1:])
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            self.net = _build_net(n_items, self.hidden, self.max_len, self.n_blocks,
                                  self.n_heads, self.dropout)
            optimiser = torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=(0.9, 0.98))
            self.net.train()
            start = time.perf_counter()
            self.epochs_run = 0
            for _ in range(self.epochs if len(usable) else 0):
                order = torch.randperm(len(usable), generator=generator)
                for first in range(0, len(order), self.batch_size):
                    idx = order[first:first + self.batch_size]
                    seq_in, seq_out = inputs[idx], targets[idx]
                    hidden = self.net(seq_in)
                    valid = seq_out != 0
                    h = hidden[valid]
                    y = seq_out[valid] - 1
                    weights = self.net.item_weights()
                    if self.loss == "ce":
                        loss = torch.nn.functional.cross_entropy(h @ weights.T, y)
                    else:
                        neg = torch.randint(0, n_items, y.shape, generator=generator)
                        pos_logit = (h * weights[y]).sum(-1)
                        neg_logit = (h * weights[neg]).sum(-1)
                        loss = (torch.nn.functional.softplus(-pos_logit)
                                + torch.nn.functional.softplus(neg_logit)).mean()
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                self.epochs_run += 1
                if self.epoch_callback is not None:
                    self.epoch_callback(self)
                    self.net.train()
                if time.perf_counter() - start > self.time_budget:
                    break
            self.train_seconds = time.perf_counter() - start
        self.net.eval()

    def score(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Dot product of the last position's hidden state with every item embedding."""
        import torch

        torch.set_num_threads(self.threads)
        seqs = torch.from_numpy(self._pad(sequences, self.max_len))
        with torch.no_grad():
            last = self.net(seqs)[:, -1, :]
            return (last @ self.net.item_weights().T).double().numpy()
