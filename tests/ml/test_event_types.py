"""Event types that mean something: per-type weights in every count, the event-value threshold,
the ranker's and the evaluation's target types, their validation, and the purchase funnel."""

from __future__ import annotations

import collections
import hashlib

import numpy as np
import pytest
from recsys import data, evaluate, event_types, graphs, train
from recsys.cli import main as cli_main
from recsys.retrieval import RetrievalModel, RetrievalParams
from recsys.synth import write_dataset

WEIGHTS = {"event_weights": "view:1,cart:3,purchase:5"}


def seqs_of(rows):
    """Sequences from (user, item, type) rows in time order."""
    events = data.Events(
        user_ids=np.array([r[0] for r in rows], dtype=object),
        item_ids=np.array([r[1] for r in rows], dtype=object),
        timestamps=np.arange(len(rows), dtype=np.float64),
        weights=np.ones(len(rows), np.float32),
        event_types=np.array([r[2] for r in rows], dtype=object),
        event_values=np.full(len(rows), np.nan),
        report=data.LoadReport("test"),
    )
    return data.encode(events)


# --- counts -------------------------------------------------------------------------------------


def test_cooccurrence_counts_each_occurrence_with_its_events_weight():
    seqs = [np.array([0, 1, 2])]
    w = event_types.sequence_weights([np.array(["view", "cart", "purchase"], dtype=object)], WEIGHTS["event_weights"])
    assert w is not None and w[0].tolist() == [1.0, 3.0, 5.0]
    plain = graphs.cooccurrence(seqs, 3, window=2, forward=1.0, backward=0.5, decay=1.0).toarray()
    weighted = graphs.cooccurrence(seqs, 3, window=2, forward=1.0, backward=0.5, decay=1.0, weights=w).toarray()
    # C[a, b] += forward (or backward) / d * weight of the event on b
    expected = np.array([[0, 1 * 3, 0.5 * 5],
                         [0.5 * 1, 0, 1 * 5],
                         [0.25 * 1, 0.5 * 3, 0]], np.float32)
    assert np.allclose(weighted, expected)
    assert np.allclose(plain, [[0, 1, 0.5], [0.5, 0, 1], [0.25, 0.5, 0]])


def test_popularity_and_covisitation_of_a_fitted_model_follow_the_weights():
    # u1 views A then buys B; u2 views A then views B; u3 carts C
    seqs = seqs_of([("u1", "A", "view"), ("u1", "B", "purchase"), ("u2", "A", "view"), ("u2", "B", "view"),
                    ("u3", "C", "cart"), ("u3", "A", "view")])
    a, b, c = (seqs.item_ids.index(i) for i in "ABC")
    params = RetrievalParams.from_dict({"dim": 2, **WEIGHTS})
    weighted = train.fit_retrieval(seqs, None, params, log=lambda m: None).retrieval
    plain = train.fit_retrieval(seqs, None, RetrievalParams(dim=2), log=lambda m: None).retrieval
    assert plain.popularity[[a, b, c]].tolist() == [3.0, 2.0, 1.0]
    assert weighted.popularity[[a, b, c]].tolist() == [3.0, 1.0 + 5.0, 3.0]
    # covisit: C[A,B] = 5 (u1's purchase) + 1 (u2's view), normalised by sqrt(f_A f_B)
    assert weighted.covisit[a, b] == pytest.approx(6.0 / np.sqrt(3.0 * 6.0), rel=1e-6)
    assert plain.covisit[a, b] == pytest.approx(2.0 / np.sqrt(3.0 * 2.0), rel=1e-6)
    # backward pairs count the earlier event's weight: C[B,A] = 0.5 * (1 + 1), C[A,C] = 0.5 * 3
    assert weighted.covisit[b, a] == pytest.approx(1.0 / np.sqrt(6.0 * 3.0), rel=1e-6)
    assert weighted.covisit[a, c] == pytest.approx(1.5 / np.sqrt(3.0 * 3.0), rel=1e-6)


def test_ease_holds_the_largest_weight_of_a_users_events_on_an_item():
    seqs = seqs_of([("u1", "A", "view"), ("u1", "A", "purchase"), ("u1", "B", "view"),
                    ("u2", "A", "view"), ("u2", "B", "cart"), ("u3", "B", "view"), ("u3", "C", "view")])
    params = RetrievalParams(dim=2, ease_lambda=1.0, **WEIGHTS)
    w = event_types.sequence_weights(seqs.types, params.event_weights)
    model = RetrievalModel.fit(seqs.items, seqs.times, seqs.n_items, params, log=lambda m: None, weights=w)
    x = np.zeros((3, 3))
    for u, (s, ws) in enumerate(zip(seqs.items, w)):
        for i, wi in zip(s.tolist(), ws.tolist()):
            x[u, i] = max(x[u, i], wi)
    assert x[0, seqs.item_ids.index("A")] == 5.0
    inv = np.linalg.inv(x.T @ x + np.eye(3))
    expected = np.maximum(-inv / np.diag(inv)[None, :], 0.0)
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(model.ease.toarray(), expected, atol=1e-6)


def test_weights_of_one_are_the_unweighted_model_bit_for_bit(synthetic_dataset):
    _, _, seqs, _ = train.load_data(*synthetic_dataset, log=lambda m: None)
    p = RetrievalParams(dim=16)
    plain = RetrievalModel.fit(seqs.items, seqs.times, seqs.n_items, p, log=lambda m: None)
    ones = RetrievalModel.fit(seqs.items, seqs.times, seqs.n_items, p, log=lambda m: None,
                              weights=[np.ones(len(s), np.float32) for s in seqs.items])
    for name in ("popularity", "trend", "embeddings"):
        assert np.array_equal(getattr(plain, name), getattr(ones, name)), name
    for name in ("covisit", "knn", "ease"):
        assert (getattr(plain, name) != getattr(ones, name)).nnz == 0, name
    # and an all-ones spec takes the unweighted path
    assert event_types.sequence_weights(seqs.types, "click:1") is None
    assert event_types.sequence_weights(seqs.types, "") is None


def test_unlisted_types_weigh_the_default_or_the_star_key():
    types = np.array(["view", "like", ""], dtype=object)
    assert event_types.event_weight_array(types, {"view": 2.0}).tolist() == [2.0, 1.0, 1.0]
    assert event_types.event_weight_array(types, {"view": 2.0, "*": 0.5}).tolist() == [2.0, 0.5, 0.5]


def test_every_event_weighing_zero_is_an_error():
    with pytest.raises(ValueError, match="weight 0"):
        event_types.sequence_weights([np.array(["view"], dtype=object)], "view:0")


# --- hyperparameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("values,needle", [
    ({"event_weights": "view:x"}, "event_weights: the weight of event type 'view' must be a number"),
    ({"event_weights": "view=1"}, "event_weights: expected type:weight pairs"),
    ({"event_weights": "view:-1"}, "event_weights: the weight of event type 'view' must be a finite number >= 0"),
    ({"event_weights": "view:1,view:2"}, "event_weights: event type 'view' is given twice"),
    ({"event_weights": "{\"view\": 1"}, "event_weights: not a JSON object"),
    ({"event_weights": "view:nan"}, "event_weights"),
    ({"event_value_threshold": "high"}, "event_value_threshold: must be a number"),
    ({"event_value_threshold": "inf"}, "event_value_threshold: must be a finite number"),
    ({"target_event_types": "[1]"}, "target_event_types: event types must be non-empty strings"),
    ({"target_event_types": "purchase,,cart"}, "target_event_types: event types must be non-empty strings"),
    ({"dim": "big"}, "dim: invalid literal"),
])
def test_bad_values_raise_naming_the_hyperparameter(values, needle):
    with pytest.raises(ValueError, match="bad hyperparameter value") as err:
        train.split_hyperparameters(values)
    assert needle in str(err.value)


def test_both_spellings_and_sagemakers_json_encoding_parse_the_same():
    as_pairs, _ = train.split_hyperparameters({"event_weights": "view:1, cart:3,purchase:5"})
    as_json, _ = train.split_hyperparameters({"event_weights": '{"purchase": 5, "view": 1, "cart": 3}'})
    as_dict, _ = train.split_hyperparameters({"event_weights": {"view": 1, "cart": 3, "purchase": 5}})
    assert as_pairs.event_weights == as_json.event_weights == as_dict.event_weights
    assert event_types.parse_event_weights(as_pairs.event_weights) == {"cart": 3.0, "purchase": 5.0, "view": 1.0}
    r, k = train.split_hyperparameters({"event_value_threshold": "2.5", "target_event_types": '["purchase", "cart"]'})
    assert r.event_value_threshold == 2.5 and k.target_event_types == "cart,purchase"
    r, k = train.split_hyperparameters({})
    assert (r.event_weights, r.event_value_threshold, k.target_event_types) == ("", None, "")


def test_the_artifact_keeps_the_event_settings_for_job_2(tmp_path):
    seqs = seqs_of([("u1", "A", "view"), ("u1", "B", "purchase"), ("u2", "A", "view"), ("u2", "B", "view")])
    params = RetrievalParams.from_dict({"dim": 2, "event_value_threshold": "0.5", **WEIGHTS})
    train.fit_retrieval(seqs, None, params, log=lambda m: None).retrieval.save(tmp_path)
    loaded = RetrievalModel.load(tmp_path).params
    assert loaded.event_weights == params.event_weights and loaded.event_value_threshold == 0.5


def test_the_cli_names_the_bad_hyperparameter(tmp_path, capsys):
    events = tmp_path / "e.csv"
    events.write_text("user_id,item_id,timestamp\nu1,i1,1\n")
    code = cli_main(["train", "--events", str(events), "--model-dir", str(tmp_path / "m"),
                     "-H", "event_weights=view:lots"])
    assert code == 2 and "event_weights: the weight of event type 'view'" in capsys.readouterr().err


# --- the event-value threshold ------------------------------------------------------------------


def test_the_threshold_drops_the_rows_below_it_and_keeps_rows_without_a_value(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,event_type,event_value\n"
                    "u1,i1,1,view,\nu1,i2,2,rating,1.5\nu1,i3,3,rating,4\nu2,i1,4,rating,2\nu2,i2,5,view,\n")
    logs = []
    events, _, seqs, summary = train.load_data(path, event_value_threshold=2.0, log=logs.append)
    assert sorted(zip(events.user_ids.tolist(), events.item_ids.tolist())) == [
        ("u1", "i1"), ("u1", "i3"), ("u2", "i1"), ("u2", "i2")]
    assert summary["events"] == 4 and seqs.n_events == 4
    assert any("event_value_threshold 2: dropped 1 event(s)" in m for m in logs)
    unfiltered, _, _, _ = train.load_data(path, log=lambda m: None)
    assert len(unfiltered) == 5
    kept, _, _, _ = train.load_data(path, event_value_threshold=10.0, log=lambda m: None)
    assert kept.event_types.tolist() == ["view", "view"]  # only the rows without a value are left
    valued = tmp_path / "valued.csv"
    valued.write_text("user_id,item_id,timestamp,event_value\nu1,i1,1,1\nu1,i2,2,3\n")
    with pytest.raises(ValueError, match="event_value_threshold 10 drops every event"):
        train.load_data(valued, event_value_threshold=10.0, log=lambda m: None)


# --- target types -------------------------------------------------------------------------------


FUNNEL_ROWS = [
    # u1: views x, y, z; carts and buys z; views w; then views and buys y: the last purchase is y
    ("u1", "x", "view"), ("u1", "y", "view"), ("u1", "z", "view"), ("u1", "z", "cart"), ("u1", "z", "purchase"),
    ("u1", "w", "view"), ("u1", "y", "cart"), ("u1", "y", "purchase"), ("u1", "v", "view"),
    # u2 buys nothing
    ("u2", "x", "view"), ("u2", "y", "view"), ("u2", "z", "view"),
    # u3 buys q with only q's own events before it: nothing to predict from
    ("u3", "q", "view"), ("u3", "q", "purchase"), ("u3", "x", "view"),
]


def test_the_evaluation_target_is_the_last_event_of_a_target_type():
    seqs = seqs_of(FUNNEL_ROWS)
    name = seqs.item_ids.__getitem__
    part, targets, _ = evaluate.leave_last_out(seqs, ("purchase",))
    assert part.user_ids == ["u1"] and [name(t) for t in targets.tolist()] == ["y"]
    # the events before it, without u1's own events on y
    assert [name(i) for i in part.items[0].tolist()] == ["x", "z", "z", "z", "w"]
    assert part.types[0].tolist() == ["view", "view", "cart", "purchase", "view"]
    default_part, default_targets, _ = evaluate.leave_last_out(seqs)
    assert [name(t) for t in default_targets.tolist()] == ["v", "z", "x"]
    assert [len(s) for s in default_part.items] == [8, 2, 2]


def test_the_ranker_targets_are_the_last_events_of_the_target_types():
    seqs = seqs_of(FUNNEL_ROWS)
    name = seqs.item_ids.__getitem__
    inner, held = train._hold_out_targets(seqs, 10, ("purchase",))
    u1 = seqs.user_ids.index("u1")
    assert held == {u1: [4, 7]}  # z's and y's purchases; u3's has no other event before it
    # stage 1 is refitted without anything from the first target on, nor any event on z or y
    assert [name(i) for i in inner.items[u1].tolist()] == ["x"]
    assert [len(s) for s in inner.items] == [1, 3, 3]
    inner1, held1 = train._hold_out_targets(seqs, 1, ("purchase",))
    assert held1 == {u1: [7]} and [name(i) for i in inner1.items[u1].tolist()] == ["x", "z", "z", "z", "w"]
    # unset: the last ranker_targets events of everyone, as before
    _, default_held = train._hold_out(seqs, 10)
    assert default_held == {u1: 7, seqs.user_ids.index("u2"): 1, seqs.user_ids.index("u3"): 1}


def test_a_target_type_nobody_has_is_a_clear_error(synthetic_dataset):
    _, items, seqs, _ = train.load_data(*synthetic_dataset, log=lambda m: None)
    with pytest.raises(ValueError, match=r"only 0 users have an event of type\(s\) \['purchase'\]"):
        train.fit(seqs, items, {"dim": 16, "ranker_users": 300, "target_event_types": "purchase"}, log=lambda m: None)


# --- the funnel ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def funnel_dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("funnel"), 400, 200, 8000, seed=0, with_funnel=True)


def test_the_funnel_is_deterministic_and_leaves_the_default_data_alone(tmp_path, funnel_dataset):
    again = write_dataset(tmp_path / "again", 400, 200, 8000, seed=0, with_funnel=True)
    other = write_dataset(tmp_path / "other", 400, 200, 8000, seed=1, with_funnel=True)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (funnel_dataset[0], again[0], other[0])]
    assert digest[0] == digest[1] != digest[2]
    plain = data.load_events(write_dataset(tmp_path / "plain", 400, 200, 8000, seed=0)[0])
    funnel = data.load_events(funnel_dataset[0])
    views = funnel.event_types == "view"
    assert set(plain.event_types.tolist()) == {"click"}
    assert sorted(zip(funnel.user_ids[views], funnel.item_ids[views], funnel.timestamps[views])) == \
        sorted(zip(plain.user_ids, plain.item_ids, plain.timestamps))


def test_every_purchase_follows_a_cart_and_a_view_and_purchases_follow_taste(funnel_dataset):
    events = data.load_events(funnel_dataset[0])
    items = data.load_items(funnel_dataset[1])
    category = dict(zip(items.item_ids, items.categories))
    counts = collections.Counter(events.event_types.tolist())
    assert set(counts) == {"view", "cart", "purchase"} and counts["purchase"] > 200
    assert counts["purchase"] < counts["cart"] < counts["view"]
    seqs = data.encode(events)
    view_share, buy_share = [], []
    for s, ty in zip(seqs.items, seqs.types):
        seen: dict = {}
        for pos, (item, kind) in enumerate(zip(s.tolist(), ty.tolist())):
            seen.setdefault(item, []).append(kind)
            if kind == "purchase":
                assert seen[item][:-1].count("cart") >= 1 and seen[item][0] == "view", (item, seen[item])
            if kind == "cart":
                assert "view" in seen[item][:-1]
        viewed = collections.Counter(category[seqs.item_ids[i]] for i, k in zip(s.tolist(), ty.tolist()) if k == "view")
        bought = [category[seqs.item_ids[i]] for i, k in zip(s.tolist(), ty.tolist()) if k == "purchase"]
        if bought:
            top = viewed.most_common(1)[0][0]
            view_share.append(viewed[top] / sum(viewed.values()))
            buy_share.append(bought.count(top) / len(bought))
    # a user's purchases are in their main category far more often than their views
    assert np.mean(buy_share) > np.mean(view_share) + 0.15


def test_purchase_weights_change_the_model_and_rank_purchased_items_higher(funnel_dataset):
    _, _, seqs, _ = train.load_data(funnel_dataset[0], log=lambda m: None)
    plain = train.fit_retrieval(seqs, None, RetrievalParams(dim=16), log=lambda m: None)
    weighted = train.fit_retrieval(seqs, None, RetrievalParams(dim=16, event_weights="view:1,cart:3,purchase:5"),
                                   log=lambda m: None)
    bought = collections.Counter(int(i) for s, ty in zip(seqs.items, seqs.types) for i in s[ty == "purchase"])
    purchases = np.array([bought.get(i, 0) for i in range(seqs.n_items)], np.float64)

    def purchase_weighted_rank(rec):  # where the average purchase sits in the model's popular list
        return float((rec.retrieval.popular_rank * purchases).sum() / purchases.sum())

    assert purchase_weighted_rank(weighted) < 0.9 * purchase_weighted_rank(plain)
    top = [rec.catalogue.index[i] for rec in (plain, weighted) for i, _ in rec.popular(20)]
    assert purchases[top[20:]].sum() > purchases[top[:20]].sum()
    # the graphs change too: each item's 5 strongest co-visitation neighbours are bought more often
    def neighbours_bought(rec):
        g = rec.retrieval.covisit.tocsr()
        rows = [g.indices[g.indptr[a]:g.indptr[a + 1]][np.argsort(-g.data[g.indptr[a]:g.indptr[a + 1]])[:5]]
                for a in range(g.shape[0]) if g.indptr[a + 1] - g.indptr[a] >= 5]
        return float(np.mean([purchases[r].sum() for r in rows]))

    assert neighbours_bought(weighted) > 1.08 * neighbours_bought(plain)


def test_cdk_json_values_reach_the_jobs_as_sagemaker_passes_them():
    """cdk.json's training.retrievalHyperparameters / rankerHyperparameters are JSON-encoded per
    value (recsys_infra.training_jobs.framework_hyperparameters) and read back by the job."""
    import json

    from recsys.jobs import parse_hyperparameter_args

    given = {"event_weights": {"view": 1, "cart": 3, "purchase": 5}, "event_value_threshold": 0.5,
             "target_event_types": ["purchase"]}
    argv = [part for key, value in given.items() for part in (f"--{key}", json.dumps(value))]
    r, k = train.split_hyperparameters(parse_hyperparameter_args(argv))
    assert event_types.parse_event_weights(r.event_weights) == {"cart": 3.0, "purchase": 5.0, "view": 1.0}
    assert r.event_value_threshold == 0.5 and k.target_event_types == "purchase"
    argv = ["--event_weights", json.dumps("view:1,purchase:4"), "--target_event_types", json.dumps("purchase,cart")]
    r, k = train.split_hyperparameters(parse_hyperparameter_args(argv))
    assert event_types.parse_event_weights(r.event_weights) == {"purchase": 4.0, "view": 1.0}
    assert k.target_event_types == "cart,purchase"


def test_both_jobs_drop_the_same_rows_and_job_2_keeps_job_1s_weights(funnel_dataset, tmp_path, monkeypatch, capsys):
    """The SageMaker entry points in-process: job 1 gets event_weights and event_value_threshold,
    job 2 only target_event_types, and reads the rest from job 1's artifact."""
    import csv
    import json

    from recsys import jobs

    (tmp_path / "ev").mkdir()
    with open(funnel_dataset[0], newline="") as src, open(tmp_path / "ev" / "events.csv", "w", newline="") as dst:
        rows = list(csv.reader(src))
        writer = csv.writer(dst, lineterminator="\n")
        writer.writerow([*rows[0], "event_value"])
        for n, row in enumerate(rows[1:]):  # a dwell time on views: every 4th view is a 1 s glance
            writer.writerow([*row, (1 if n % 4 == 0 else 30) if row[3] == "view" else ""])
    glances = sum(1 for n, row in enumerate(rows[1:]) if row[3] == "view" and n % 4 == 0)
    monkeypatch.setenv("SM_CHANNEL_EVENTS", str(tmp_path / "ev"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "m1"))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "o1"))
    jobs.retrieval_job({"dim": "16", "event_weights": '{"view": 1, "cart": 3, "purchase": 5}',
                        "event_value_threshold": "5"})
    job1 = capsys.readouterr().out
    monkeypatch.setenv("SM_CHANNEL_RETRIEVAL", str(tmp_path / "m1"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "m2"))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "out"))
    jobs.ranker_job({"ranker_users": "300", "target_event_types": "purchase", "workers": "1"})
    job2 = capsys.readouterr().out
    line = f"event_value_threshold 5: dropped {glances:,} event(s)"
    assert line in job1 and line in job2
    assert "without each user's last 10 event(s) of type(s) purchase" in job2
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["training_data"]["events"] == len(rows) - 1 - glances
    assert event_types.parse_event_weights(manifest["hyperparameters"]["retrieval"]["event_weights"]) == \
        {"cart": 3.0, "purchase": 5.0, "view": 1.0}
    assert manifest["hyperparameters"]["ranker"]["target_event_types"] == "purchase"


def test_evaluate_target_event_types_flag(tmp_path, capsys):
    events = tmp_path / "e.csv"
    events.write_text("user_id,item_id,timestamp,event_type\n" + "".join(
        f"u{u},i{(u + n) % 5},{n},view\n" for u in range(4) for n in range(4)))
    assert cli_main(["evaluate", "--events", str(events), "--target-event-types", "purchase"]) == 2
    assert "no user has an event of type(s) ['purchase']" in capsys.readouterr().err
    assert cli_main(["evaluate", "--events", str(events), "--target-event-types", "purchase,,"]) == 2
    assert "--target-event-types: event types must be non-empty strings" in capsys.readouterr().err
