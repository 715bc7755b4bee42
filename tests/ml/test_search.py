"""Search through the model: typos, prefixes, unknown words, empty and non-ASCII queries, filters,
personalised ordering, the endpoint protocol, latency and the search section of ``recsys evaluate``."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from recsys import protocol, search_eval
from recsys.text import tokenize


@pytest.fixture(scope="module")
def rec(recommender):
    assert recommender.text_index is not None, "the session model was trained with an items file"
    return recommender


def _ids(results):
    return [i for i, _ in results]


def _item_with_long_word(rec):
    """An item whose title has a word of 6+ letters (a typo in it is a typo, not a new word)."""
    for i, title in enumerate(rec.catalogue.titles):
        if any(len(w) >= 6 for w in tokenize(title)):
            return i, title
    raise AssertionError("no title with a long word in the synthetic catalogue")


def test_whole_title_finds_the_item_first(rec):
    for i in range(0, len(rec.catalogue), 17):
        found = _ids(rec.search(rec.catalogue.titles[i], 10))
        # series parts share their title ("The X", "The X 2"): the exact item must be in the top 3
        assert rec.catalogue.item_ids[i] in found[:3], (rec.catalogue.titles[i], found)


def test_one_character_typos_find_the_item(rec):
    rng = np.random.default_rng(0)
    titles = rec.catalogue.titles
    sample = range(0, len(titles), 5)
    hits = 0
    for i in sample:
        t = titles[i]
        pos = int(rng.integers(len(t)))
        if rec.catalogue.item_ids[i] in _ids(rec.search(t[:pos] + t[pos + 1:], 10)):
            hits += 1
    assert hits / len(sample) >= 0.95
    i, title = _item_with_long_word(rec)
    word = max(tokenize(title), key=len)
    typo = title.lower().replace(word, word[:2] + word[3:], 1)  # third letter dropped
    assert rec.catalogue.item_ids[i] in _ids(rec.search(typo, 10)), typo
    answer = rec.handle({"action": "search", "query": typo, "k": 10})
    assert rec.catalogue.item_ids[i] in [e["itemId"] for e in answer["items"]]


def test_prefix_of_a_title_finds_it(rec):
    i, title = _item_with_long_word(rec)
    prefix = title[: max(3, len(title) // 2 + 2)]
    assert rec.catalogue.item_ids[i] in _ids(rec.search(prefix, 10)), prefix
    answer = rec.handle({"action": "search", "query": prefix, "k": 10})
    assert rec.catalogue.item_ids[i] in [e["itemId"] for e in answer["items"]]
    # a word still being typed: the items with a word starting that way come first, then (the
    # co-visitation expansion) items often consumed with them
    word = max(tokenize(title), key=len)[:4]
    starts = [any(w.startswith(word) for w in tokenize(rec.catalogue.titles[rec.catalogue.index[f]]))
              for f in _ids(rec.search(word, 20))]
    assert starts[0] and starts == sorted(starts, reverse=True), (word, starts)


def test_unknown_words_return_nothing(rec):
    assert rec.search("qzxwvj", 10) == []
    assert rec.search("zzqx xxjw", 10) == []
    answer = rec.handle({"action": "search", "query": "qzxwvj", "k": 5})
    assert answer["items"] == [] and "error" not in answer


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_empty_query_is_a_clear_error(rec, query):
    with pytest.raises(protocol.InvalidRequest, match="query"):
        rec.search(query, 10)
    answer = rec.handle({"action": "search", "query": query})
    assert answer["error"]["type"] == "InvalidRequest"
    assert "query" in answer["error"]["message"]


def test_oversize_query_is_a_clear_error(rec):
    query = "river " * 100
    with pytest.raises(protocol.InvalidRequest, match=str(protocol.MAX_QUERY_CHARS)):
        rec.search(query, 10)
    answer = rec.handle({"action": "search", "query": query})
    assert answer["error"]["type"] == "InvalidRequest"
    assert str(protocol.MAX_QUERY_CHARS) in answer["error"]["message"]


def test_non_string_query_is_a_clear_error(rec):
    with pytest.raises(protocol.InvalidRequest, match="query"):
        rec.search(42, 10)  # type: ignore[arg-type]
    assert rec.handle({"action": "search", "query": ["river"]})["error"]["type"] == "InvalidRequest"


def test_model_without_text_index_says_so(rec):
    from recsys import Recommender

    bare = Recommender(rec.catalogue, rec.retrieval, rec.ranker, rec.manifest, rec.ordering, None)
    with pytest.raises(protocol.InvalidRequest, match="text index"):
        bare.search("river", 10)
    answer = bare.handle({"action": "search", "query": "river"})
    assert "text index" in answer["error"]["message"]


def test_accents_and_case_do_not_matter(rec):
    _, title = _item_with_long_word(rec)
    accented = title.upper().replace("E", "É").replace("A", "Á")
    plain = rec.search(title, 10)
    assert rec.search(accented, 10) == plain
    answer = rec.handle({"action": "search", "query": accented, "k": 10})
    assert [(e["itemId"], e["score"]) for e in answer["items"]] == plain


@pytest.mark.parametrize("query", ["東京物語", "Ωμέγα", "🎬🍿", "\u200b\u00a0river\u00a0"])
def test_non_ascii_queries_are_answered(rec, query):
    results = rec.search(query, 10)
    assert isinstance(results, list)
    if not tokenize(query):
        assert results == []
    answer = rec.handle({"action": "search", "query": query})
    assert "error" not in answer
    assert json.loads(json.dumps(answer, ensure_ascii=False)) == answer


def test_non_ascii_query_finds_a_plain_title(rec):
    # a zero-width space and no-break spaces around a real word: still that word
    found = _ids(rec.search("\u200b\u00a0river\u00a0", 20))
    assert found
    assert all("river" in rec.catalogue.titles[rec.catalogue.index[f]].lower() for f in found[:3])


def _category_histories(rec, a: str, b: str, n: int = 8):
    cats = rec.catalogue
    pick = {c: [cats.item_ids[i] for i in range(len(cats)) if cats.category_of(i) == c][:n] for c in (a, b)}
    assert len(pick[a]) >= 3 and len(pick[b]) >= 3
    return pick[a], pick[b]


def test_search_is_personalised_by_history(rec):
    cats = rec.catalogue
    counts = np.bincount(cats.category_codes)
    a, b = (cats.category_names[c] for c in np.argsort(-counts)[:2])
    hist_a, hist_b = _category_histories(rec, a, b)
    # an ambiguous query: a word in every title ("The ...")
    order_a = rec.search("the", 10, history=hist_a)
    order_b = rec.search("the", 10, history=hist_b)
    assert _ids(order_a) != _ids(order_b)
    share_a = np.mean([cats.category_of(cats.index[i]) == a for i in _ids(order_a)])
    share_b = np.mean([cats.category_of(cats.index[i]) == a for i in _ids(order_b)])
    # each user sees more of the category they watch
    assert share_a > share_b
    # through the endpoint protocol too
    via_a = rec.handle({"action": "search", "query": "the", "k": 10, "history": hist_a})
    via_b = rec.handle({"action": "search", "query": "the", "k": 10, "history": hist_b})
    assert [e["itemId"] for e in via_a["items"]] == _ids(order_a)
    assert [e["itemId"] for e in via_b["items"]] == _ids(order_b)


def test_relevance_still_leads_a_personalised_search(rec):
    i, title = _item_with_long_word(rec)
    cats = rec.catalogue
    other = next(c for c in cats.category_names if c != cats.category_of(i))
    hist, _ = _category_histories(rec, other, cats.category_of(i))
    # a user who watches another category still gets the title they typed first
    assert _ids(rec.search(title, 10, history=hist))[0] in {
        cats.item_ids[j] for j in range(len(cats)) if cats.titles[j] == title}


def test_without_history_relevance_then_popularity(rec):
    results = rec.search("the", 20)
    items = rec.catalogue.lookup(_ids(results))
    rel = rec.text_index.score("the", items)
    pop = rec.builder.log_pop[items]
    # among items the text index finds equally relevant, the more popular comes first
    for x in range(len(items)):
        for y in range(x + 1, len(items)):
            if abs(rel[x] - rel[y]) < 1e-6:
                assert pop[x] >= pop[y] - 1e-9, (results[x], results[y])
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True)


def test_filters_apply(rec):
    cats = rec.catalogue
    category = cats.category_names[int(np.bincount(cats.category_codes).argmax())]
    results = rec.search("the", 20, filters={"includeCategories": [category]})
    assert results and all(cats.category_of(cats.index[i]) == category for i in _ids(results))
    excluded = rec.search("the", 20, filters={"excludeCategories": [category]})
    assert excluded and all(cats.category_of(cats.index[i]) != category for i in _ids(excluded))
    i, title = _item_with_long_word(rec)
    item_id = cats.item_ids[i]
    assert item_id in _ids(rec.search(title, 10))
    assert item_id not in _ids(rec.search(title, 10, filters={"excludeItemIds": [item_id]}))
    answer = rec.handle({"action": "search", "query": title, "k": 10,
                         "filters": {"excludeItemIds": [item_id], "includeCategories": [cats.category_of(i)]}})
    assert answer["items"] and item_id not in [e["itemId"] for e in answer["items"]]
    assert all(cats.category_of(cats.index[e["itemId"]]) == cats.category_of(i) for e in answer["items"])


def test_k_bounds_the_answer(rec):
    assert len(rec.search("the", 3)) == 3
    with pytest.raises(protocol.InvalidRequest, match="k must be"):
        rec.search("the", 0)


def test_search_is_fast(rec):
    """CPU time per query (the machine running the tests is shared, wall time is not a measure)."""
    hist = rec.catalogue.item_ids[:50]
    queries = ["the", "silent rivr", "gold", "the hidden garden", "drama", "mid"]
    for q in queries:  # warm up
        rec.search(q, 10, history=hist)
    start = time.thread_time()
    n = 0
    for _ in range(5):
        for q in queries:
            rec.search(q, 10, history=hist)
            rec.search(q, 10)
            n += 2
    per_query_ms = (time.thread_time() - start) / n * 1000
    assert per_query_ms < 10, per_query_ms


def test_make_queries_are_deterministic_and_well_formed():
    titles = ["Toy Story", "Heat", "Amélie", "It", "Twelve Monkeys"]
    a = search_eval.make_queries(titles, seed=3)
    assert a == search_eval.make_queries(titles, seed=3)
    assert a["whole"] == titles
    assert a["prefix"] == ["Toy S", "Hea", "Amé", "It", "Twelve "]
    for title, typo in zip(titles, a["typo"]):
        assert len(typo) == len(title) - 1
        assert any(title[:p] + title[p + 1:] == typo for p in range(len(title)))


def test_evaluate_search_on_the_session_model(rec, synthetic_dataset):
    from recsys import evaluate, train

    _, _, seqs, _ = train.load_data(*synthetic_dataset, log=lambda m: None)
    part, targets, _ = evaluate.leave_last_out(seqs)
    # the session model was fitted on all events: fine for the mechanics checked here
    result = search_eval.evaluate_search(rec, part.items, targets, max_users=30, log=None)
    assert result["users"] == 30
    assert set(result["methods"]) == set(search_eval.METHODS)
    text = result["methods"]["text_only"]
    assert text["whole"]["HR@10"] >= 0.9
    assert text["typo"]["HR@10"] >= 0.8
    # the typo-tolerant index beats plain word TF-IDF on typos
    assert text["typo"]["MRR"] > result["methods"]["tfidf_word"]["typo"]["MRR"]
    again = search_eval.evaluate_search(rec, part.items, targets, max_users=30, log=None)
    assert again["methods"] == result["methods"]  # deterministic sample and typos
    assert "search" in search_eval.format_table(result)


def test_evaluate_cli_reports_search(tmp_path, capsys):
    from recsys.cli import main
    from recsys.synth import write_dataset

    events, items = write_dataset(tmp_path / "data", n_users=120, n_items=60, n_events=2500, seed=1)
    out = tmp_path / "report.json"
    code = main(["evaluate", "--events", str(events), "--items", str(items), "--output", str(out),
                 "-H", "dim=16", "-H", "ranker_users=500"])
    assert code == 0
    report = json.loads(out.read_text())
    search = report["search"]
    assert 0 < search["users"] <= search_eval.DEFAULT_MAX_USERS
    for method in search_eval.METHODS:
        for kind in search_eval.KINDS:
            m = search["methods"][method][kind]
            assert 0.0 <= m["MRR"] <= m["HR@10"] <= 1.0
    assert search["methods"]["search"]["whole"]["HR@10"] >= 0.9
    assert search["latency"]["search"]["p50_ms"] > 0
    printed = capsys.readouterr().out
    assert "text_only" in printed and "tfidf_word" in printed


def test_evaluate_cli_without_items_has_no_search(tmp_path):
    from recsys.cli import main
    from recsys.synth import write_dataset

    events, _ = write_dataset(tmp_path / "data", n_users=80, n_items=40, n_events=1500, seed=2)
    out = tmp_path / "report.json"
    assert main(["evaluate", "--events", str(events), "--output", str(out),
                 "-H", "dim=16", "-H", "ranker_users=300"]) == 0
    assert "search" not in json.loads(out.read_text())
