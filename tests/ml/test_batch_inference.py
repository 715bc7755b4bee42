"""Batch inference in Personalize's batch shapes: the pure function, the container's jsonlines
path (as Batch Transform calls it) and ``recsys batch-inference``."""

from __future__ import annotations

import importlib
import json

import pytest
from recsys import batch_inference as bi
from recsys.batch_contract import MAX_RECENT_ITEMS


@pytest.fixture(scope="module")
def histories(trained_model_dir):
    return bi.load_histories(trained_model_dir / bi.HISTORIES_FILE)


@pytest.fixture(scope="module")
def known_user(histories):
    """A user with a median history (the heaviest users have seen most of the small catalogue)."""
    users = sorted(histories, key=lambda u: (len(histories[u]), u))
    return users[len(users) // 2]


def _out(recommender, lines, job, num_results=bi.DEFAULT_NUM_RESULTS, histories=None):
    return [json.loads(line) for line in bi.transform_lines(recommender, lines, job, num_results, histories)]


def test_training_writes_the_histories_the_users_table_gets(trained_model_dir, batch_output_dir, histories):
    users = {}
    for line in (batch_output_dir / "batch" / "users.jsonl").read_text().splitlines():
        row = json.loads(line)
        users[row["userId"]] = row["recentItems"]
    assert histories == users  # the batch sees what the endpoint saw right after this training
    assert max(len(h) for h in histories.values()) <= MAX_RECENT_ITEMS


def test_users_job_is_the_endpoints_recommend_with_the_trained_history(recommender, histories, known_user):
    (out,) = _out(recommender, [json.dumps({"userId": known_user})], "users", 7, histories)
    expected = recommender.recommend(histories[known_user], 7, user_id=known_user)
    assert list(out) == ["input", "output", "error"]
    assert out == {"input": {"userId": known_user},
                   "output": {"recommendedItems": [i for i, _ in expected], "scores": [s for _, s in expected]},
                   "error": None}
    assert len(expected) == 7
    assert not set(out["output"]["recommendedItems"]) & set(histories[known_user])  # seen items are filtered
    # the history matters: without it the same user gets the cold-start answer
    (cold,) = _out(recommender, [json.dumps({"userId": known_user})], "users", 7, {})
    assert cold["output"]["recommendedItems"] != out["output"]["recommendedItems"]


def test_an_unknown_user_gets_the_popular_items_like_personalize(recommender, histories):
    (out,) = _out(recommender, ['{"userId": "never-seen"}'], "users", 5, histories)
    assert out["error"] is None
    assert out["output"]["recommendedItems"] == [i for i, _ in recommender.popular(5)]


def test_default_num_results_is_personalizes_25(recommender, histories, known_user):
    (out,) = _out(recommender, [json.dumps({"userId": known_user})], "users", histories=histories)
    assert len(out["output"]["recommendedItems"]) == 25 == len(out["output"]["scores"])


def test_items_job_is_related_items_and_an_unknown_item_gets_popular_items(recommender):
    item = recommender.catalogue.item_ids[3]
    known, unknown = _out(recommender, [json.dumps({"itemId": item}), '{"itemId": "no-such-item"}'], "items", 6)
    assert known == {"input": {"itemId": item},
                     "output": {"recommendedItems": [i for i, _ in recommender.similar(item, 6)],
                                "scores": [s for _, s in recommender.similar(item, 6)]},
                     "error": None}
    assert item not in known["output"]["recommendedItems"]
    assert unknown["error"] is None
    assert unknown["output"]["recommendedItems"] == [i for i, _ in recommender.popular(6)]


def test_ranking_job_orders_all_of_item_list_with_unknown_items_last(recommender, histories, known_user):
    items = list(recommender.catalogue.item_ids[10:14])
    line = {"userId": known_user, "itemList": ["zz-unknown", *items]}
    (out,) = _out(recommender, [json.dumps(line)], "ranking", 2, histories)  # numResults does not cut a ranking
    expected = recommender.rank(histories[known_user], ["zz-unknown", *items], user_id=known_user)
    assert out["input"] == line and out["error"] is None
    assert out["output"]["recommendedItems"] == [i for i, _ in expected]
    assert sorted(out["output"]["recommendedItems"]) == sorted(line["itemList"])
    assert out["output"]["recommendedItems"][-1] == "zz-unknown" and out["output"]["scores"][-1] == 0.0


def test_each_bad_line_gets_its_error_and_the_batch_goes_on(recommender, histories, known_user):
    lines = [
        "{not json",
        '["a list"]',
        '{"itemId": "i1"}',
        '{"userId": ""}',
        "",  # blank lines are skipped
        json.dumps({"userId": known_user}),
    ]
    out = _out(recommender, lines, "users", 3, histories)
    assert len(out) == 5
    for bad in out[:4]:
        assert bad["output"] == {"recommendedItems": []} and isinstance(bad["error"], str)
    assert out[0]["input"] == "{not json" and "not valid JSON" in out[0]["error"]
    assert "JSON object" in out[1]["error"]
    assert out[2]["input"] == {"itemId": "i1"} and "missing userId" in out[2]["error"]
    assert "non-empty string" in out[3]["error"]
    assert out[4]["error"] is None and len(out[4]["output"]["recommendedItems"]) == 3
    ranking = _out(recommender, ['{"userId": "u", "itemList": []}', '{"userId": "u"}',
                                 '{"userId": "u", "itemList": [1]}'], "ranking")
    assert ["non-empty list" in ranking[0]["error"], "missing itemList" in ranking[1]["error"],
            "itemList[0]" in ranking[2]["error"]] == [True, True, True]


@pytest.mark.parametrize("job, num_results, message", [
    ("segments", 5, "job must be one of users, items, ranking"),
    ("users", 0, "numResults must be an integer between 1 and 500"),
    ("users", 501, "numResults must be an integer between 1 and 500"),
    ("users", "x", "numResults must be"),
])
def test_a_bad_job_or_num_results_fails_the_whole_batch(recommender, job, num_results, message):
    with pytest.raises(ValueError, match=message):
        list(bi.transform_lines(recommender, ['{"userId": "u"}'], job, num_results))


def test_the_output_line_is_personalizes_serialization(recommender):
    (line,) = bi.transform_lines(recommender, ['{"userId": "new"}'], "users", 2)
    items = [i for i, _ in recommender.popular(2)]
    scores = [s for _, s in recommender.popular(2)]
    assert line == ('{"input":{"userId":"new"},"output":{"recommendedItems":' + json.dumps(items).replace(" ", "")
                    + ',"scores":' + json.dumps(scores).replace(" ", "") + '},"error":null}')


def test_inference_answers_a_multi_record_jsonlines_request(trained_model_dir, monkeypatch, histories, known_user):
    """What Batch Transform sends with SplitType Line and BatchStrategy MultiRecord: several
    lines in one application/jsonlines body; each answered in order, no trailing newline."""
    monkeypatch.syspath_prepend("sagemaker")
    monkeypatch.setenv(bi.ENV_JOB, "users")
    monkeypatch.setenv(bi.ENV_NUM_RESULTS, "4")
    inference = importlib.import_module("inference")
    model = inference.model_fn(str(trained_model_dir))
    body = (json.dumps({"userId": known_user}) + "\n{oops\n" + '{"userId": "cold"}\n').encode()
    out, content_type = inference.output_fn(
        inference.predict_fn(inference.input_fn(body, "application/jsonlines"), model), "application/jsonlines")
    assert content_type == "application/jsonlines"
    assert not out.endswith("\n")
    rows = [json.loads(line) for line in out.split("\n")]
    assert [r["input"] for r in rows] == [{"userId": known_user}, "{oops", {"userId": "cold"}]
    expected = model.recommend(histories[known_user], 4, user_id=known_user)
    assert rows[0]["output"]["recommendedItems"] == [i for i, _ in expected]
    assert rows[1]["error"] and rows[2]["error"] is None and len(rows[2]["output"]["recommendedItems"]) == 4
    monkeypatch.setenv(bi.ENV_JOB, "ranking")
    ranked = inference.predict_fn(inference.input_fn(b'{"userId": "cold", "itemList": ["a"]}', "application/jsonlines"),
                                  model)
    assert json.loads(inference.output_fn(ranked)[0])["output"]["recommendedItems"] == ["a"]
    # the endpoint's JSON requests are unchanged
    single = inference.predict_fn(inference.input_fn(b'{"action": "popular", "k": 2}', "application/json"), model)
    assert len(single["items"]) == 2


def test_cli_batch_inference_writes_personalizes_out_file(trained_model_dir, tmp_path, histories, known_user, capsys):
    from recsys.cli import main

    source = tmp_path / "users.jsonl"
    source.write_text(json.dumps({"userId": known_user}) + "\n" + '{"userId": 5}\n')
    out_dir = tmp_path / "out"
    assert main(["batch-inference", "--model-dir", str(trained_model_dir), "--input", str(source),
                 "--out", str(out_dir), "--num-results", "3"]) == 0
    rows = [json.loads(line) for line in (out_dir / "users.jsonl.out").read_text().splitlines()]
    assert rows[0]["output"]["recommendedItems"] == [
        i for i, _ in __import__("recsys").Recommender.load(trained_model_dir).recommend(
            histories[known_user], 3, user_id=known_user)]
    assert rows[1]["error"] and len(rows) == 2
    assert json.loads(capsys.readouterr().out) == {"lines": 2, "errors": 1,
                                                   "output": str(out_dir / "users.jsonl.out")}


def test_cli_bad_input_is_one_line_and_a_non_zero_exit(trained_model_dir, tmp_path, capsys):
    from recsys.cli import main

    source = tmp_path / "in.jsonl"
    source.write_text('{"userId": "u"}\n')

    def run(**overrides):
        args = {"--model-dir": str(trained_model_dir), "--input": str(source), "--out": str(tmp_path / "o"),
                **overrides}
        status = main(["batch-inference", *[x for pair in args.items() for x in pair]])
        return status, capsys.readouterr().err.strip()

    for overrides, message in (
        ({"--num-results": "0"}, "numResults must be an integer between 1 and 500"),
        ({"--input": str(tmp_path / "none.jsonl")}, "no such input"),
        ({"--model-dir": str(tmp_path)}, "not a model directory"),
    ):
        status, err = run(**overrides)
        assert status == 2 and len(err.splitlines()) == 1 and message in err, (overrides, err)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
    with pytest.raises(SystemExit) as exc:
        run(**{"--job": "segments"})
    assert exc.value.code == 2
