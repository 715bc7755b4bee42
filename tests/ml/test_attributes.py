"""Item and user attributes as ranker features: the encoding contract, the artifact and serving."""

from __future__ import annotations

import csv
import importlib
import json

import numpy as np
import pytest
from recsys import Recommender, train
from recsys.attributes import (
    CATEGORICAL,
    FILE,
    NUMERIC,
    OTHER,
    AttributeEncoder,
    Metadata,
    fit_metadata,
)
from recsys.candidates import FEATURES
from recsys.synth import write_dataset

HPS = {"dim": 16, "ranker_users": 2000, "workers": 1}


# --- the encoder ---------------------------------------------------------------------------------


def test_types_are_inferred_from_every_present_value():
    rows = [{"price": "1.5", "year": "2001", "mixed": "3", "flag": "true"},
            {"price": "20", "year": "1999", "mixed": "x", "flag": "false"},
            {"price": "-2e3", "year": "2010", "mixed": "4", "flag": "true"},
            {"price": "7", "year": "2005", "mixed": "x", "flag": "false"}]
    enc = AttributeEncoder.fit(rows, "item")
    kinds = {s.name: s.kind for s in enc.specs}
    assert kinds == {"price": NUMERIC, "year": NUMERIC, "mixed": CATEGORICAL, "flag": CATEGORICAL}
    assert enc.feature_names == ["item.flag=false", "item.flag=true", "item.mixed=x", "item.mixed=__other__",
                                 "item.price", "item.year"]


def test_numeric_is_log_scaled_clipped_and_standardised():
    values = [float(v) for v in range(1, 201)] + [1e12]  # one wild outlier
    enc = AttributeEncoder.fit([{"n": str(v)} for v in values], "item")
    x = enc.transform([{"n": str(v)} for v in values])[:, 0]
    assert abs(float(x[:-1].mean())) < 0.2 and 0.5 < float(x.std()) < 1.5
    assert x[-1] == pytest.approx(x[-2], abs=0.05)  # the outlier clipped to the 99th percentile
    assert np.all(np.diff(x[:-1]) >= 0)  # monotone


def test_top_k_values_and_other():
    rows = [{"genre": f"g{n:02d}"} for n in range(25) for _ in range(25 - n)]  # g00 most frequent
    rows += [{"genre": "once"}]  # a value of one row is never kept
    enc = AttributeEncoder.fit(rows, "item", max_values=20)
    spec = enc.by_name["genre"]
    assert spec.values == [f"g{n:02d}" for n in range(20)] and spec.other
    x = enc.transform([{"genre": "g00"}, {"genre": "g22"}, {"genre": "once"}, {"genre": "g03|g22"}])
    names = enc.feature_names
    assert names[-1] == f"item.genre={OTHER}" and len(names) == 21
    assert x[0, 0] == 1 and x[0].sum() == 1
    assert x[1, -1] == 1 and x[1].sum() == 1 and x[2, -1] == 1
    assert x[3, 3] == 1 and x[3, -1] == 1 and x[3].sum() == 2  # multi-valued (Personalize's "|")


def test_missing_values_encode_as_zero_with_an_indicator():
    rows = [{"age": "30", "segment": "a"}, {"age": "", "segment": "b"}, {"age": "NaN", "segment": "a"},
            {"segment": "null"}, {"age": "40", "segment": "b"}, {"age": "50"}]
    enc = AttributeEncoder.fit(rows, "user")
    assert enc.feature_names == ["user.age", "user.age.missing", "user.segment=a", "user.segment=b"]
    x = enc.transform(rows)
    assert x[:, 1].tolist() == [0, 1, 1, 1, 0, 0]
    assert x[1, 0] == 0 and x[3, 0] == 0
    assert x[3, 2:].tolist() == [0, 0] and x[5, 2:].tolist() == [0, 0]
    assert x[0, 0] < 0 < x[5, 0]


def test_unusable_attributes_are_skipped_with_the_reason():
    rows = [{"sku": f"s{n}", "brand": "acme", "rare": "x" if n < 5 else "", "ok": str(n % 3)} for n in range(100)]
    rows[0]["constant"] = rows[1]["constant"] = "1"  # 98 % missing
    enc = AttributeEncoder.fit(rows, "item")
    assert [s.name for s in enc.specs] == ["ok"]
    assert "single value ('acme')" in enc.skipped["brand"]
    assert "missing in 95% of rows" in enc.skipped["rare"]
    assert "missing in 98% of rows" in enc.skipped["constant"]
    assert "an id or free text" in enc.skipped["sku"]
    lines = enc.describe()
    assert "item.ok: numeric (log1p, clipped, standardised)" in lines
    assert any(line.startswith("item.sku: skipped, 100 distinct values") for line in lines)
    logged = []
    assert fit_metadata([f"i{n}" for n in range(100)], [""] * 100, {f"i{n}": r for n, r in enumerate(rows)},
                        log=logged.append) is not None
    assert any("item.brand: skipped, a single value" in m for m in logged)


def test_the_column_budget_skips_the_attributes_past_it():
    rows = [{f"a{n}": f"v{m % 10}" for n in range(5)} for m in range(40)]  # 5 attributes x 10 columns
    enc = AttributeEncoder.fit(rows, "item", max_columns=25)
    assert [s.name for s in enc.specs] == ["a0", "a1"] and enc.width == 20
    assert enc.skipped["a2"].startswith("its 10 columns would pass the budget of 25 columns")


def test_the_encoder_and_the_metadata_round_trip_through_plain_json():
    items = {"i0": {"lang": "en", "price": "3"}, "i1": {"lang": "fr", "price": "30"}, "i2": {"lang": "en"},
             "i3": {"lang": "fr", "price": "8"}}
    users = {"u0": {"lang": "en", "fav": "Drama"}, "u1": {"lang": "fr", "fav": "Comedy"},
             "u2": {"lang": "fr", "fav": "Drama"}, "u3": {"lang": "en", "fav": "Comedy"}}
    meta = fit_metadata(list(items), ["Drama", "Comedy", "Drama", "Comedy"], items, users, log=lambda m: None)
    assert meta is not None
    text = json.dumps(meta.to_json())
    again = Metadata.from_json(json.loads(text), ["Drama", "Comedy", "Drama", "Comedy"])
    assert again.feature_names == meta.feature_names
    window, w = np.array([0, 1, 0]), np.array([0.5, 0.7, 1.0], np.float32)
    for user in ("u0", "u1", "nobody", None):
        np.testing.assert_array_equal(again.columns(np.arange(4), user, window, w),
                                      meta.columns(np.arange(4), user, window, w))
    enc = meta.item_encoder
    assert enc is not None
    assert AttributeEncoder.from_json(json.loads(json.dumps(enc.to_json()))).feature_names == enc.feature_names


def test_metadata_columns_affinity_matches_and_unknown_users():
    items = {"i0": {"lang": "en"}, "i1": {"lang": "fr"}, "i2": {"lang": "en"}, "i3": {"lang": "fr"}}
    users = {"u0": {"lang": "en", "fav": "Drama"}, "u1": {"lang": "fr", "fav": "Comedy"},
             "u2": {"lang": "fr", "fav": "Drama"}, "u3": {"lang": "en", "fav": "Comedy"}}
    cats = ["Drama", "Comedy", "Comedy", "Drama"]
    meta = fit_metadata(list(items), cats, items, users, log=lambda m: None)
    assert meta is not None
    names = meta.feature_names
    assert names == ["item.lang=en", "item.lang=fr", "affinity.lang", "user.fav=Comedy", "user.fav=Drama",
                     "user.lang=en", "user.lang=fr", "user.unknown", "match.lang", "match.category~fav"]
    col = {n: i for i, n in enumerate(names)}
    # history: two English items and one French one, the French one most recent
    x = meta.columns(np.arange(4), "u0", np.array([0, 2, 1]), np.array([1.0, 1.0, 2.0], np.float32))
    assert x[:, col["affinity.lang"]].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5])
    x = meta.columns(np.arange(4), "u0", np.array([0, 2]), np.array([1.0, 3.0], np.float32))
    assert x[:, col["affinity.lang"]].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert x[:, col["match.lang"]].tolist() == [1, 0, 1, 0]  # u0 speaks English
    assert x[:, col["match.category~fav"]].tolist() == [1, 0, 0, 1]  # u0 likes Drama
    assert x[:, col["user.unknown"]].tolist() == [0, 0, 0, 0]
    y = meta.columns(np.arange(4), "stranger", np.array([], np.int64), np.array([], np.float32))
    assert y[:, col["user.unknown"]].tolist() == [1, 1, 1, 1]
    assert y[:, col["match.lang"]].tolist() == [0, 0, 0, 0] and y[:, col["affinity.lang"]].tolist() == [0, 0, 0, 0]


def test_the_user_table_is_bounded_users_with_events_first():
    users = {f"u{n}": {"seg": "ab"[n % 2]} for n in range(10)}
    logged = []
    meta = fit_metadata(["i0", "i1"], ["", ""], None, users, users_first=["u9", "u7", "zz"], max_users=4,
                        log=logged.append)
    assert meta is not None and meta.user_ids == ["u9", "u7", "u0", "u1"]
    assert any("6 of 10 users with attributes left out" in m for m in logged)


# --- training and serving --------------------------------------------------------------------


@pytest.fixture(scope="module")
def language_data(tmp_path_factory):
    """Synthetic data where the item's language matters (users reject other languages)."""
    root = tmp_path_factory.mktemp("language")
    events, items = write_dataset(root, 300, 200, 8000, seed=0, language_bias=0.95)
    with open(root / "users.csv", newline="", encoding="utf-8") as f:
        users = {row.pop("user_id"): row for row in csv.DictReader(f)}
    return events, items, users


@pytest.fixture(scope="module")
def attribute_model_dir(language_data, tmp_path_factory):
    """Both jobs in one process (``recsys train --users``), as the local stack trains."""
    events, items, _ = language_data
    out = tmp_path_factory.mktemp("attr-model")
    train.train(events, items, out, hyperparameters=HPS, log=lambda m: None,
                users_path=events.parent / "users.csv")
    return out


def test_a_model_with_attributes_has_their_features_and_serves_the_same_scores(attribute_model_dir, language_data,
                                                                                monkeypatch):
    monkeypatch.syspath_prepend("sagemaker")
    inference = importlib.import_module("inference")
    model = inference.model_fn(str(attribute_model_dir))
    assert (attribute_model_dir / FILE).exists()
    names = model.builder.feature_names
    assert names[: len(FEATURES)] == list(FEATURES)
    for name in ("item.language=en", "item.price", "affinity.language", "user.language=fr", "user.age",
                 "user.unknown", "match.language"):
        assert name in names, name
    assert model.manifest["ranker"]["features"] == names
    ranker = json.loads((attribute_model_dir / "ranker.json").read_text())
    assert ranker["feature_names"] == names
    # offline: the builder and the ranker as training and evaluation use them
    _, _, users = language_data
    history = model.catalogue.item_ids[:3]
    candidates = model.catalogue.item_ids[3:40]
    for user in ("u00001", "u00002"):
        c = model.builder.build([model.catalogue.lookup(history)], fixed_items=[model.catalogue.lookup(candidates)],
                                users=[user])[0]
        offline = dict(zip(candidates, model.ranker.score(c.features).tolist()))
        body = json.dumps({"action": "rank", "history": history, "itemIds": candidates, "userId": user}).encode()
        out, _ = inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"), model))
        online = {row["itemId"]: row["score"] for row in json.loads(out)["items"]}
        assert online.keys() == offline.keys()
        for item, score in offline.items():
            assert online[item] == pytest.approx(score, abs=1e-6)
    # the user's attributes change the order: two users of different languages, same history
    assert users["u00001"]["language"] != users["u00002"]["language"]
    a = model.rank(history, candidates, user_id="u00001")
    b = model.rank(history, candidates, user_id="u00002")
    assert [i for i, _ in a] != [i for i, _ in b]
    recommended = model.handle({"action": "recommend", "history": history, "k": 5, "userId": "u00001"})
    assert len(recommended["items"]) == 5
    bad = model.handle({"action": "recommend", "history": history, "userId": 7})
    assert bad["error"]["type"] == "InvalidRequest" and "userId" in bad["error"]["message"]


def test_without_attributes_the_features_and_the_artifact_stay_as_before(trained_model_dir, recommender):
    assert recommender.metadata is None
    assert recommender.builder.feature_names == list(FEATURES)
    assert not (trained_model_dir / FILE).exists()
    assert json.loads((trained_model_dir / "ranker.json").read_text())["feature_names"] == list(FEATURES)


def test_a_ranker_trained_on_other_features_is_refused(attribute_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(attribute_model_dir, broken)
    (broken / FILE).unlink()  # the ranker expects the attribute columns: loading must fail loudly
    with pytest.raises(ValueError, match="ranker was trained on features"):
        Recommender.load(broken)


def _two_stage(events, items, users, with_attributes: bool) -> dict:
    from recsys import evaluate

    events_data, items_data, seqs, summary = train.load_data(events, items, log=lambda m: None)
    if not with_attributes:
        items_data.attributes = [{} for _ in items_data.attributes]
    first_seen = evaluate.first_seen_positions(events_data.item_ids, seqs.item_ids)
    report = evaluate.run(seqs, first_seen, log=lambda m: None, fit=lambda part: train.fit(
        part, items_data, HPS, summary, log=lambda m: None, users=users if with_attributes else None))
    return report["models"]["two_stage"]


def test_an_informative_attribute_raises_the_held_out_metric(language_data):
    events, items, users = language_data
    without = _two_stage(events, items, users, with_attributes=False)
    with_attributes = _two_stage(events, items, users, with_attributes=True)
    # measured: HR@10 0.519 -> 0.585, NDCG@10 0.372 -> 0.412 (docs/ML.md, "Item and user metadata")
    assert with_attributes["HR@10"] > without["HR@10"] + 0.03, (without, with_attributes)
    assert with_attributes["NDCG@10"] > without["NDCG@10"] + 0.02, (without, with_attributes)


def test_both_jobs_with_a_users_channel_give_the_ranker_user_features(language_data, tmp_path):
    """SageMaker's layout: job 1 reads SM_CHANNEL_ITEMS and SM_CHANNEL_USERS and fits the encoders,
    job 2 trains the ranker on their columns, and the served model answers by userId."""
    import os
    import subprocess
    import sys
    import tarfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    events, items, _ = language_data
    for name, source in (("ev", events), ("it", items), ("us", Path(events).parent / "users.csv")):
        (tmp_path / name).mkdir()
        (tmp_path / name / Path(source).name).write_bytes(Path(source).read_bytes())

    def run(script, env):
        return subprocess.run([sys.executable, str(repo / "sagemaker" / script), "--dim", "16", "--ranker_users", "500"],
                              env={**os.environ, "PYTHONPATH": "", **env}, capture_output=True, text=True, timeout=300,
                              cwd=str(repo / "sagemaker"))

    job1 = run("train_retrieval.py", {"SM_CHANNEL_EVENTS": str(tmp_path / "ev"), "SM_CHANNEL_ITEMS": str(tmp_path / "it"),
                                      "SM_CHANNEL_USERS": str(tmp_path / "us"), "SM_MODEL_DIR": str(tmp_path / "m1")})
    assert job1.returncode == 0, job1.stderr
    assert "[attributes] user.language: categorical (4 value(s))" in job1.stdout
    assert "[attributes] item.price: numeric (log1p, clipped, standardised)" in job1.stdout
    (tmp_path / "retrieval").mkdir()
    with tarfile.open(tmp_path / "retrieval" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "m1", arcname=".")
    job2 = run("train_ranker.py", {"SM_CHANNEL_EVENTS": str(tmp_path / "ev"), "SM_CHANNEL_RETRIEVAL": str(tmp_path / "retrieval"),
                                   "SM_MODEL_DIR": str(tmp_path / "m2"), "SM_OUTPUT_DATA_DIR": str(tmp_path / "out")})
    assert job2.returncode == 0, job2.stderr
    model = Recommender.load(tmp_path / "m2")
    assert {"match.language", "user.language=en", "affinity.language"} <= set(model.builder.feature_names)
    assert json.loads((tmp_path / "m2" / "ranker.json").read_text())["feature_names"] == model.builder.feature_names
    history = model.catalogue.item_ids[:3]
    assert model.handle({"action": "rank", "history": history, "itemIds": model.catalogue.item_ids[3:30],
                         "userId": "u00001"}) != model.handle(
        {"action": "rank", "history": history, "itemIds": model.catalogue.item_ids[3:30], "userId": "u00002"})


def test_recsys_evaluate_takes_a_users_file(language_data, tmp_path, capsys):
    from recsys.cli import main

    events, items, _ = language_data
    assert main(["evaluate", "--events", str(events), "--items", str(items), "--users",
                 str(events.parent / "users.csv"), "--output", str(tmp_path / "r.json"), "-H", "dim=16"]) == 0
    assert "[attributes] user.language: categorical (4 value(s))" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["users_file"] == str(events.parent / "users.csv")
    assert report["models"]["two_stage"]["HR@10"] > 0
