"""The evaluation protocol, implemented independently of the ``recsys`` package.

Leave-last-out, full ranking: sort each user's events by timestamp (stable: ties keep file
order); the last item is the target, everything before is that user's training data and history;
users with fewer than ``min_events`` events are dropped entirely (their events are neither
training data nor evaluated); recommend K items not in the history; HR@K and NDCG@K
(1 / log2(rank + 2) for a 0-based rank) averaged over users.

The split is one small function so the lead's ``recsys.evaluate`` split can replace it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.peers.base import Peer


@dataclass(frozen=True)
class Event:
    """One interaction as read from the events file."""

    user_id: str
    item_id: str
    timestamp: float


@dataclass
class Split:
    """A leave-last-out split in index space.

    Attributes:
        user_ids: Raw id of each evaluated user (order of first appearance in the file).
        item_ids: Raw id of each item index: the kept users' items, in order of first
            appearance in the file.
        train_sequences: Each user's training items (indices), oldest first.
        targets: Each user's held-out last item.
        n_dropped_users: Users with fewer than ``min_events`` events.
        n_repeat_targets: Users whose target is already in their history (a miss by design).
    """

    user_ids: list[str]
    item_ids: list[str]
    train_sequences: list[np.ndarray]
    targets: np.ndarray
    n_dropped_users: int = 0
    n_repeat_targets: int = 0

    @property
    def n_items(self) -> int:
        """Catalogue size (items of the kept users, training or target)."""
        return len(self.item_ids)

    @property
    def n_train_events(self) -> int:
        """Number of training events."""
        return int(sum(len(s) for s in self.train_sequences))


def parse_timestamp(text: str) -> float:
    """Unix seconds or ISO-8601 (naive = UTC) -> float seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def read_events(path: str | Path) -> list[Event]:
    """Read an events CSV (``user_id,item_id,timestamp[,...]``) in file order.

    Raises:
        ValueError: naming the file and line of a row that can't be read.
    """
    events: list[Event] = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"user_id", "item_id", "timestamp"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                events.append(Event(row["user_id"], row["item_id"],
                                    parse_timestamp(row["timestamp"])))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: bad row {row!r}: {exc}") from exc
    if not events:
        raise ValueError(f"{path}: no events")
    return events


def leave_last_out(events: list[Event], min_events: int = 3) -> Split:
    """Split events per the protocol (see the module docstring)."""
    per_user: dict[str, list[Event]] = {}
    for event in events:
        per_user.setdefault(event.user_id, []).append(event)
    kept = {u: sorted(evs, key=lambda e: e.timestamp)  # sorted() is stable: ties keep file order
            for u, evs in per_user.items() if len(evs) >= min_events}
    # the catalogue is the kept users' items, indexed by first appearance anywhere in the file
    # (a dropped user's row counts for the order), so index order is the popularity tie rule
    kept_items = {e.item_id for evs in kept.values() for e in evs}
    item_index: dict[str, int] = {}
    for event in events:
        if event.item_id in kept_items and event.item_id not in item_index:
            item_index[event.item_id] = len(item_index)
    user_ids = list(kept)
    sequences, targets, repeats = [], [], 0
    for user in user_ids:
        items = [item_index[e.item_id] for e in kept[user]]
        sequences.append(np.asarray(items[:-1], dtype=np.int64))
        targets.append(items[-1])
        repeats += items[-1] in set(items[:-1])
    return Split(user_ids=user_ids, item_ids=list(item_index), train_sequences=sequences,
                 targets=np.asarray(targets, dtype=np.int64),
                 n_dropped_users=len(per_user) - len(kept), n_repeat_targets=repeats)


def hit_rate_and_ndcg(recommendations: np.ndarray, targets: np.ndarray,
                      ks: tuple[int, ...] = (10, 20)) -> dict[str, float]:
    """HR@K and NDCG@K of one target per user, averaged over users."""
    metrics: dict[str, float] = {}
    hits = recommendations == targets[:, None]
    for k in ks:
        found = hits[:, :k]
        rank = found.argmax(axis=1)
        hit = found.any(axis=1)
        gain = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
        metrics[f"HR@{k}"] = float(hit.mean())
        metrics[f"NDCG@{k}"] = float(gain.mean())
    return metrics


def evaluate_peer(peer: Peer, split: Split, ks: tuple[int, ...] = (10, 20)) -> dict[str, float]:
    """Fit ``peer`` on the split's training part and measure it on the held-out targets.

    Returns:
        ``{"HR@10", "NDCG@10", "HR@20", "NDCG@20"}`` for the default ``ks``.
    """
    peer.fit(split.train_sequences, split.n_items)
    recs = peer.recommend(split.train_sequences, max(ks))
    return hit_rate_and_ndcg(recs, split.targets, ks)
