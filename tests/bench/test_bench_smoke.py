"""Smoke test of the benchmark runner at tiny sizes: every part runs and writes the contract JSON.

Parts whose optional library (faiss, gensim) is absent are skipped by the runner itself; the
assertions below only demand them when the library is installed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")  # comes with scikit-learn

from bench import http_load, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench-results")
    cache = tmp_path_factory.mktemp("bench-cache") / "bench"
    assert run.main(["--smoke", "--output-dir", str(out), "--cache", str(cache)]) == 0
    return {"dir": out, "result": json.loads((out / "smoke.json").read_text())}


def test_retrieval_entries_have_the_contract_fields_and_exact_is_the_reference(smoke):
    entries = smoke["result"]["retrieval"]
    assert [e["n_items"] for e in entries] == [2000]
    e = entries[0]
    for key in ("n_items", "recall_at_10", "speedup_vs_exact", "p99_ms"):
        assert key in e
    assert e["exact"]["recall_at_10"] == 1.0
    # at 2,000 items HNSW with ef=128 must find (nearly) every true neighbour
    assert e["recall_at_10"] >= 0.95
    curve = e["hnswlib"]["curve"]
    assert [c["ef"] for c in curve] == [16, 64, 128]
    assert curve[-1]["recall_at_10"] >= curve[0]["recall_at_10"]
    if importlib.util.find_spec("faiss"):
        assert e["faiss_hnsw"]["curve"] and e["latency_vs_faiss"] is not None


def test_endpoint_measures_the_four_stage_recommend(smoke):
    (ep,) = smoke["result"]["endpoint"]
    assert ep["n_items"] == 2000
    assert 0 < ep["p50_ms"] <= ep["p99_ms"]
    assert ep["mean_candidates"] > 100  # every source contributed: a real candidate set, not a stub
    assert ep["rss_bytes"] > ep["raw_bytes"]["vectors"]
    assert any("candidates.py" in row["function"] or "knn_query" in row["function"]
               for row in ep["profile_top_self"])


def test_training_and_quality_tables(smoke):
    res = smoke["result"]
    emb = res["training"]["embeddings"]
    assert emb["ppmi_svd"]["events_per_s_cpu"] > 0
    assert 0.0 <= emb["ppmi_svd"]["HR@10"] <= 1.0
    if importlib.util.find_spec("gensim"):
        assert "gensim_matched_negatives" in emb
    (table,) = res["quality"]
    assert {"recsys two-stage", "popularity", "EASE"} <= set(table["models"])
    # both harnesses split the same file under the same protocol: the same users are evaluated
    assert table["recsys_split"]["users"] == table["peers_split"]["users"]
    # the project's popularity row and the independent popularity peer must agree
    assert table["models"]["recsys popularity"]["HR@10"] == pytest.approx(table["models"]["popularity"]["HR@10"])
    if importlib.util.find_spec("matplotlib"):
        assert set(res["plots"]) == {"smoke_retrieval.png", "smoke_endpoint.png", "smoke_quality.png"}
    for name in res["plots"]:  # empty without matplotlib (the bench extra)
        assert (smoke["dir"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(res["targets"], dict)


def test_http_load_refuses_non_loopback_urls():
    for url in ("http://10.0.0.1:8080", "http://example.com:80", "https://127.0.0.1:8080", "http://127.0.0.1"):
        with pytest.raises(http_load.NotLoopback):
            http_load.check_loopback(url)
    assert http_load.check_loopback("http://localhost:9") == ("127.0.0.1", 9)
    proc = subprocess.run([sys.executable, "-m", "bench.http_load", "--url", "http://192.168.1.1:80",
                           "--duration", "1"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "loopback" in proc.stderr


def test_http_load_against_a_local_server_counts_errors():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            # similar-items requests fail: the tool must count them as errors, not latencies
            code = 503 if self.path.startswith("/items/") else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = http_load.run_load(f"http://127.0.0.1:{server.server_address[1]}", 2, 5.0, max_requests=60,
                                 mix=True)
    finally:
        server.shutdown()
    assert res["requests"] == 60  # bounded by count before the 5 s duration
    assert res["errors"] > 0 and set(res["error_kinds"]) == {"HTTP 503"}
    assert res["ok"] + res["errors"] == 60
    assert res["p50_ms"] is not None and res["p50_ms"] <= res["p99_ms"]


def test_the_operating_point_is_the_cheapest_ef_that_reaches_the_target_recall():
    from bench import retrieval

    curve = [{"ef": ef, "recall_at_10": r, "p50_ms": ms, "p99_ms": ms * 2, "qps": 1000 / ms, "cpu_ms_per_query": ms}
             for ef, r, ms in ((16, 0.95, 0.1), (32, 0.991, 0.2), (64, 0.999, 0.4), (128, 1.0, 0.8))]
    entry = {"exact": {"p50_ms": 30.0, "cpu_ms_per_query": 32.0},
             "hnswlib": {"configured_ef": 128, "recall_at_100": 0.99, "curve": curve}}
    retrieval.summarise_entry(entry)
    assert entry["ef"] == 32 and entry["recall_at_10"] == 0.991
    assert entry["speedup_vs_exact"] == 150.0 and entry["speedup_vs_exact_cpu"] == 160.0
    assert entry["at_configured_ef"] == {"ef": 128, "recall_at_10": 1.0, "p50_ms": 0.8, "speedup_vs_exact": 37.5}
    # no ef reaches the target: the best recall is reported, and the target check fails on it
    low = [dict(c, recall_at_10=c["recall_at_10"] - 0.05) for c in curve]
    entry = retrieval.summarise_entry({"exact": entry["exact"], "hnswlib": {"configured_ef": 128,
                                                                            "recall_at_100": 0.9, "curve": low}})
    assert entry["ef"] == 128 and entry["recall_at_10"] < 0.99
    result = {"retrieval": [dict(entry, n_items=1_000_000)]}
    assert run.summarise(result)["1M recall@10 >= 0.99 (ef 128)"] is False


def test_report_prints_tables_from_a_result(tmp_path, capsys):
    from bench import report

    assert report.main([str(ROOT / "bench" / "results" / "quick.json"), "--sections", "targets,endpoint"]) == 0
    out = capsys.readouterr().out
    assert "| 1,000,000 |" in out and "RSS / raw" in out
    assert report.main([str(tmp_path / "missing.json")]) == 2
