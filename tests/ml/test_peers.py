"""Contract suite for the benchmark peers (bench/peers): one interface, every implementation.

Like implicit's RecommenderBase tests: a tiny deterministic data set, the same checks against
every peer whose library is importable (the libraries come with the `bench` extra).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.peers import (
    EASE,
    RECENCY_DECAY,
    ImplicitALS,
    Item2Vec,
    ItemKNN,
    Peer,
    Popularity,
    SASRec,
    hit_rate_and_ndcg,
    leave_last_out,
    read_events,
)

N_ITEMS = 24
K = 5

# name -> (factory, library it needs); small settings keep the suite fast
FACTORIES = {
    "popularity": (lambda seed: Popularity(seed=seed), None),
    "item-kNN": (lambda seed: ItemKNN(neighbors=10, seed=seed), None),
    "item-kNN-seq": (lambda seed: ItemKNN(neighbors=10, recency=RECENCY_DECAY, seed=seed), None),
    "EASE": (lambda seed: EASE(l2=10.0, seed=seed), None),
    "EASE-seq": (lambda seed: EASE(l2=10.0, recency=RECENCY_DECAY, seed=seed), None),
    "ALS": (lambda seed: ImplicitALS(factors=8, iterations=5, seed=seed), "implicit"),
    "item2vec": (lambda seed: Item2Vec(vector_size=8, epochs=5, seed=seed), "gensim"),
    "SASRec": (lambda seed: SASRec(hidden=16, max_len=12, epochs=4, batch_size=16, threads=1,
                                   seed=seed), "torch"),
}


def _sequences() -> list[np.ndarray]:
    """40 users walking a ring of items (i -> i+1) with noise, plus one user with no history."""
    rng = np.random.default_rng(7)
    seqs = []
    for _ in range(40):
        start, length = rng.integers(N_ITEMS), rng.integers(3, 12)
        walk = (start + np.arange(length)) % N_ITEMS
        noise = rng.random(length) < 0.15
        walk[noise] = rng.integers(N_ITEMS, size=noise.sum())
        seqs.append(walk.astype(np.int64))
    seqs.append(np.zeros(0, dtype=np.int64))
    return seqs


def _peer(name: str, seed: int = 0) -> Peer:
    factory, module = FACTORIES[name]
    if module:
        pytest.importorskip(module, reason=f"{name} needs {module} (pip install -e '.[bench]')")
    return factory(seed)


@pytest.fixture(scope="module")
def sequences() -> list[np.ndarray]:
    return _sequences()


@pytest.fixture(scope="module")
def fitted(sequences):
    """Each peer fitted once and its recommendations, shared by the checks below."""
    cache: dict[str, tuple[Peer, np.ndarray]] = {}

    def get(name: str) -> tuple[Peer, np.ndarray]:
        if name not in cache:
            peer = _peer(name).fit(sequences, N_ITEMS)
            cache[name] = (peer, peer.recommend(sequences, K))
        return cache[name]

    return get


@pytest.mark.parametrize("name", FACTORIES)
def test_shape_dtype_and_distinct_items(name, fitted, sequences):
    _, recs = fitted(name)
    assert recs.shape == (len(sequences), K)
    assert recs.dtype == np.int64
    assert ((recs >= 0) & (recs < N_ITEMS)).all()
    assert all(len(set(row)) == K for row in recs.tolist())


@pytest.mark.parametrize("name", FACTORIES)
def test_never_recommends_a_history_item(name, fitted, sequences):
    _, recs = fitted(name)
    for seq, row in zip(sequences, recs):
        assert not set(row.tolist()) & set(seq.tolist())


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_recommendations(name, fitted, sequences):
    _, recs = fitted(name)
    again = _peer(name).fit(sequences, N_ITEMS).recommend(sequences, K)
    np.testing.assert_array_equal(recs, again)


@pytest.mark.parametrize("name", FACTORIES)
def test_zero_length_history_gets_k_items(name, fitted):
    peer, _ = fitted(name)
    recs = peer.recommend([np.zeros(0, dtype=np.int64)], K)
    assert recs.shape == (1, K) and len(set(recs[0].tolist())) == K
    assert ((recs >= 0) & (recs < N_ITEMS)).all()


def test_sequence_aware_peers_follow_the_ring(fitted, sequences):
    """On ring walks the next item (last + 1) must rank high for the recency-weighted forms."""
    users = [u for u, s in enumerate(sequences) if len(s) >= 3 and s[-1] == (s[-2] + 1) % N_ITEMS]
    nxt = np.array([(sequences[u][-1] + 1) % N_ITEMS for u in users])
    for name in ("item-kNN-seq", "EASE-seq"):
        recs = fitted(name)[1][users]
        assert (recs[:, :3] == nxt[:, None]).any(axis=1).mean() > 0.6, name
    popular = fitted("popularity")[1][users]
    assert (popular[:, :3] == nxt[:, None]).any(axis=1).mean() < 0.4


def test_popularity_orders_by_count_then_index():
    seqs = [np.array([3, 1, 1]), np.array([3, 2]), np.array([0])]
    recs = Popularity().fit(seqs, 5).recommend([np.zeros(0, dtype=np.int64)], 5)
    # counts: 1 -> 2, 3 -> 2, 0 -> 1, 2 -> 1, 4 -> 0; equal counts by index
    assert recs.tolist() == [[1, 3, 0, 2, 4]]


def test_fit_rejects_out_of_range_items():
    with pytest.raises(ValueError, match=r"train_sequences\[1\]"):
        Popularity().fit([np.array([0]), np.array([5])], 5)


def test_row_with_fewer_eligible_items_is_padded():
    recs = Popularity().fit([np.array([0, 1, 2])], 3).recommend([np.array([0, 1])], 2)
    assert recs.tolist() == [[2, -1]]


def test_leave_last_out_ties_keep_file_order_and_drops_short_users(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,timestamp\n"
        "u1,a,10\n"
        "u1,b,5\n"
        "u2,x,1\n"      # u2 has 2 events: dropped, and its items never enter the catalogue
        "u1,c,10\n"     # same timestamp as a: stays after a
        "u2,y,2\n"
        "u3,b,1\n"
        "u3,c,2\n"
        "u3,b,3\n"
    )
    split = leave_last_out(read_events(path))
    assert split.user_ids == ["u1", "u3"]
    assert split.n_dropped_users == 1
    assert split.item_ids == ["a", "b", "c"]
    assert [s.tolist() for s in split.train_sequences] == [[1, 0], [1, 2]]
    assert split.targets.tolist() == [2, 1]
    assert split.n_repeat_targets == 1  # u3's target b is already in its history


def test_read_events_accepts_iso_8601_and_names_bad_rows(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\nu,a,2024-01-01T00:00:01Z\nu,b,2024-01-01T00:00:00\n")
    events = read_events(path)
    assert events[0].timestamp - events[1].timestamp == 1.0
    path.write_text("user_id,item_id,timestamp\nu,a,1\nu,b,yesterday\n")
    with pytest.raises(ValueError, match=r"events.csv:3"):
        read_events(path)


def test_hit_rate_and_ndcg_by_hand():
    recs = np.array([[5, 6, 7], [1, 2, 3], [9, 8, 7]])
    targets = np.array([6, 4, 9])
    metrics = hit_rate_and_ndcg(recs, targets, ks=(1, 3))
    assert metrics["HR@1"] == pytest.approx(1 / 3)
    assert metrics["HR@3"] == pytest.approx(2 / 3)
    assert metrics["NDCG@3"] == pytest.approx((1 / np.log2(3) + 1.0) / 3)
