"""The trained model: each retrieval source, the four stages, the artifact and the Python API."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recsys import Recommender, protocol
from recsys.candidates import FEATURES, ItemFilter
from recsys.retrieval import SOURCES


@pytest.fixture(scope="module")
def heavy_user(recommender, synthetic_dataset):
    """A real user history from the training data (oldest first)."""
    from recsys import data

    seqs = data.encode(data.load_events(synthetic_dataset[0]))
    lengths = np.array([len(s) for s in seqs.items])
    u = int(np.flatnonzero((lengths >= 15) & (lengths <= 40))[0])  # room left for 20 unseen items
    return [seqs.item_ids[i] for i in seqs.items[u]]


def test_every_source_proposes_candidates_and_none_are_seen(recommender, heavy_user):
    h = recommender.catalogue.lookup(heavy_user)
    c = recommender.builder.build([h])[0]
    for source in SOURCES:
        assert len(c.sources[source]) > 0, source
    assert not set(c.items.tolist()) & set(h.tolist())
    assert c.features.shape == (len(c.items), len(FEATURES))
    assert np.isfinite(c.features).all()


def test_recent_and_covisit_sources_follow_the_last_item(recommender):
    """The sequel of a series is what co-visitation and recent neighbours propose first."""
    cat = recommender.catalogue
    sequels = [(i, cat.index[cat.item_ids[i + 1]]) for i in range(len(cat) - 1)
               if cat.titles[i + 1] == cat.titles[i] + " 2"]
    assert sequels
    hits = 0
    for first, second in sequels:
        c = recommender.builder.build([np.array([first])])[0]
        hits += second in c.sources["covisit"][:5].tolist()
    assert hits / len(sequels) > 0.5


def test_ann_source_uses_the_embeddings(recommender):
    r = recommender.retrieval
    item = int(np.flatnonzero(np.linalg.norm(r.embeddings, axis=1) > 0)[0])
    labels, sims = r.ann(r.embeddings[[item]], 5)
    assert labels[0, 0] == item and sims[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_index_recall_is_measured_and_recorded(trained_model_dir):
    fresh = Recommender.load(trained_model_dir)
    assert fresh.manifest["index"]["recall_at_10"] >= 0.95
    assert fresh.retrieval.index.ef == fresh.retrieval.params.ef  # set after every load


def test_k_is_clamped_by_a_small_catalogue_and_by_filters(recommender):
    everything = recommender.recommend([], k=protocol.MAX_K)
    assert len(everything) == len(recommender.catalogue)  # more than the catalogue: all of it, no error
    one_category = recommender.catalogue.category_names[0]
    filtered = recommender.recommend([], k=50, filters={"includeCategories": [one_category]})
    assert filtered and all(recommender.item_info(i)["category"] == one_category for i, _ in filtered)


def test_filters_remove_seen_excluded_and_categories(recommender, heavy_user):
    recs = recommender.recommend(heavy_user, 20)
    assert len(recs) == 20 and not {i for i, _ in recs} & set(heavy_user)
    excluded = [i for i, _ in recs[:5]]
    banned = recommender.item_info(recs[5][0])["category"]
    again = recommender.recommend(heavy_user, 20, filters={"excludeItemIds": excluded, "excludeCategories": [banned]})
    assert not {i for i, _ in again} & set(excluded)
    assert all(recommender.item_info(i)["category"] != banned for i, _ in again)


def test_scores_are_ordered_and_ordering_caps_categories(recommender, heavy_user):
    from recsys.model import OrderingRules

    recs = recommender.recommend(heavy_user, 20)
    scores = [s for _, s in recs]
    assert scores == sorted(scores, reverse=True)
    h = recommender.catalogue.lookup(heavy_user)
    c = recommender.builder.build([h])[0]
    capped = recommender.order(c.items, recommender.score(c), 6, OrderingRules(max_per_category=2))
    cats = [recommender.item_info(i)["category"] for i, _ in capped]
    assert max(cats.count(x) for x in set(cats)) <= 2 and len(capped) == 6
    boosted_cat = recommender.item_info(recs[-1][0])["category"]
    boosted = recommender.order(c.items, recommender.score(c), 10, OrderingRules(category_boosts={boosted_cat: 100.0}))
    assert recommender.item_info(boosted[0][0])["category"] == boosted_cat


def test_history_changes_the_answer_and_context_counts_as_history(recommender, heavy_user):
    cold = recommender.recommend([], 10)
    warm = recommender.recommend(heavy_user, 10)
    assert [i for i, _ in cold] != [i for i, _ in warm]
    via_context = recommender.recommend(heavy_user[:-3], 10, context={"recentItems": heavy_user[-3:]})
    assert via_context == warm


def test_similar_excludes_the_item_and_unknown_items_raise(recommender):
    item = recommender.catalogue.item_ids[0]
    sims = recommender.similar(item, 10)
    assert len(sims) == 10 and item not in {i for i, _ in sims}
    with pytest.raises(protocol.ItemNotFound, match="'nope' is not in the model's catalogue"):
        recommender.similar("nope")


def test_rank_returns_exactly_the_input_items(recommender, heavy_user):
    items = [*recommender.catalogue.item_ids[10:30], "unknown-1", recommender.catalogue.item_ids[10]]
    ranked = recommender.rank(heavy_user, items)
    assert [i for i, _ in ranked][-1] == "unknown-1"
    assert sorted(i for i, _ in ranked) == sorted(set(items))
    known = [s for i, s in ranked if i != "unknown-1"]
    assert known == sorted(known, reverse=True)


def test_handle_answers_the_protocol_and_reports_client_errors(recommender):
    ok = recommender.handle({"action": "recommend", "history": [], "k": 3})
    assert len(ok["items"]) == 3 and ok["modelVersion"] == recommender.model_version
    assert recommender.handle({"action": "similar", "itemId": "nope"})["error"]["type"] == "ItemNotFound"
    bad = recommender.handle({"action": "recommend", "k": 0})
    assert bad["error"] == {"type": "InvalidRequest", "message": "k must be between 1 and 500, got 0"}
    assert recommender.handle({"action": "fly"})["error"]["type"] == "InvalidRequest"


def test_artifact_round_trip_has_no_pickles(recommender, trained_model_dir, tmp_path):
    files = [p for p in trained_model_dir.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".json", ".jsonl", ".npy", ".npz", ".bin"}  # .jsonl: histories
    for p in files:
        if p.suffix in (".npy",):
            np.load(p, allow_pickle=False)
    manifest = json.loads((trained_model_dir / "manifest.json").read_text())
    for key in ("format_version", "model_version", "training_data", "hyperparameters", "offline_metrics", "index"):
        assert key in manifest
    recommender.save(tmp_path / "copy")
    again = Recommender.load(tmp_path / "copy")
    assert again.recommend([], 10) == recommender.recommend([], 10)


def test_a_corrupt_artifact_is_a_clear_error(trained_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_model_dir, broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        Recommender.load(broken)
    (broken / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="artifact format 99"):
        Recommender.load(broken)


def test_inference_hooks_on_a_real_artifact(trained_model_dir, monkeypatch):
    monkeypatch.syspath_prepend("sagemaker")
    import importlib

    inference = importlib.import_module("inference")
    model = inference.model_fn(str(trained_model_dir))
    body = json.dumps({"action": "recommend", "history": [model.catalogue.item_ids[0]], "k": 5}).encode()
    out, content_type = inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"), model))
    assert content_type == "application/json"
    assert len(json.loads(out)["items"]) == 5
    bad = json.loads(inference.output_fn(inference.predict_fn(inference.input_fn(b"{oops", "application/json"), model))[0])
    assert bad["error"]["type"] == "InvalidRequest" and "not valid JSON" in bad["error"]["message"]
    wrong_type = inference.predict_fn(inference.input_fn(b"{}", "text/csv"), model)
    assert "Content-Type must be application/json" in wrong_type["error"]["message"]


def test_item_filter_keeps_by_category():
    f = ItemFilter(exclude=np.array([1]), include_categories=np.array([0]))
    keep = f.keep(np.array([0, 1, 2]), np.array([0, 0, 1]))
    assert keep.tolist() == [True, False, False]
