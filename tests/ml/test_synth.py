"""The synthetic generator: deterministic, and with structure worth learning."""

from __future__ import annotations

import hashlib

from recsys import data
from recsys.synth import write_dataset


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = write_dataset(tmp_path / "a", 100, 80, 2000, seed=3)
    b = write_dataset(tmp_path / "b", 100, 80, 2000, seed=3)
    c = write_dataset(tmp_path / "c", 100, 80, 2000, seed=4)
    assert [digest(p) for p in a] == [digest(p) for p in b]
    assert digest(a[0]) != digest(c[0])


def test_sizes_titles_categories_and_power_law(tmp_path):
    events_path, items_path = write_dataset(tmp_path, 400, 300, 12_000, seed=0)
    events, items = data.load_events(events_path), data.load_items(items_path)
    # users who run out of unseen items stop early, so a few events may be missing
    assert 11_800 <= len(events) <= 12_000 and len(set(events.user_ids)) == 400 and len(items) == 300
    assert all(t.startswith("The ") for t in items.titles)
    assert len(set(items.categories)) >= 5
    counts = sorted(__import__("collections").Counter(events.item_ids).values(), reverse=True)
    top_decile = sum(counts[: len(counts) // 10]) / sum(counts)
    assert top_decile > 0.25  # a head of popular items, as in real catalogues


def test_sequels_follow_their_predecessor(tmp_path):
    """Series parts are consumed in order: 'X 2' right after 'X' far more often than chance."""
    events_path, items_path = write_dataset(tmp_path, 300, 300, 9000, seed=1)
    items = data.load_items(items_path)
    title = dict(zip(items.item_ids, items.titles))
    seqs = data.encode(data.load_events(events_path))
    follows = total = 0
    for s in seqs.items:
        names = [title[seqs.item_ids[i]] for i in s]
        for prev, nxt in zip(names, names[1:]):
            if nxt.endswith(" 2"):
                total += 1
                follows += prev == nxt[:-2]
    assert total > 20 and follows / total > 0.3
