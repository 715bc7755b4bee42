"""Peer baselines the project's quality is judged against, behind one interface.

Every peer: ``peer.fit(train_sequences, n_items) -> peer`` then
``peer.recommend(train_sequences, k) -> (n_users, k)`` item indices, never a history item.
Run the table with ``python -m bench.peers --dataset ml-100k`` (or ``--events FILE``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from bench.peers.als import ImplicitALS
from bench.peers.base import RECENCY_DECAY, Peer, history_matrix, top_k_excluding
from bench.peers.item2vec import Item2Vec
from bench.peers.neighbourhood import EASE, ItemKNN, Popularity
from bench.peers.protocol import (
    Event,
    Split,
    evaluate_peer,
    hit_rate_and_ndcg,
    leave_last_out,
    read_events,
)
from bench.peers.sasrec import SASRec

#: name -> (factory(seed) -> Peer, module it needs or None)
PEERS: dict[str, tuple[Callable[[int], Peer], str | None]] = {
    "popularity": (lambda seed: Popularity(seed=seed), None),
    "item-kNN": (lambda seed: ItemKNN(seed=seed), None),
    "item-kNN-seq": (lambda seed: ItemKNN(recency=RECENCY_DECAY, seed=seed), None),
    "EASE": (lambda seed: EASE(seed=seed), None),
    "EASE-seq": (lambda seed: EASE(recency=RECENCY_DECAY, seed=seed), None),
    "ALS": (lambda seed: ImplicitALS(seed=seed), "implicit"),
    "item2vec": (lambda seed: Item2Vec(seed=seed), "gensim"),
    "SASRec": (lambda seed: SASRec(seed=seed), "torch"),
}


def available_peers() -> list[str]:
    """Names of the peers whose library is importable here."""
    return [name for name, (_, module) in PEERS.items()
            if module is None or importlib.util.find_spec(module) is not None]


def make_peer(name: str, seed: int = 0) -> Peer:
    """Build a peer by name with its default settings."""
    if name not in PEERS:
        raise KeyError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    return PEERS[name][0](seed)


__all__ = [
    "EASE",
    "PEERS",
    "RECENCY_DECAY",
    "Event",
    "ImplicitALS",
    "Item2Vec",
    "ItemKNN",
    "Peer",
    "Popularity",
    "SASRec",
    "Split",
    "available_peers",
    "evaluate_peer",
    "history_matrix",
    "hit_rate_and_ndcg",
    "leave_last_out",
    "make_peer",
    "read_events",
    "top_k_excluding",
]
