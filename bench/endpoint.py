"""Endpoint benchmark: the full four-stage ``Recommender.recommend`` at catalogue scale.

Training a model on enough events to fill a 1M-item catalogue takes far longer than a benchmark
run, so the model is ASSEMBLED rather than trained: the clustered embeddings and the HNSW index of
the retrieval benchmark (``bench.retrieval``), random sparse co-visitation and item-kNN graphs
(Zipf-distributed row lengths, ``graph_degree`` edges per item on average, popularity-biased
targets), random precomputed neighbours, Zipf popularity, random trend, a catalogue of 16
categories and a logistic-regression ranker with hand-set plausible weights. Every array has the
shape and dtype a trained artifact has, it is written with ``Recommender.save`` and read back with
``Recommender.load`` (the serving path), so the code measured is exactly the endpoint's. The
ranker's weights change the order of the results, not the work done.

Each size is measured in a fresh process so RSS is the model's alone:

    python -m bench.endpoint --model-dir DIR --requests 1000
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

HISTORY_LEN = 20


def _rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _random_graph(n: int, degree: float, rng: np.random.Generator, popularity: np.ndarray) -> sp.csr_matrix:
    """Random CSR item graph: Zipf-like row lengths averaging ``degree``, popular-biased targets."""
    lengths = np.minimum(rng.zipf(1.6, n), 100).astype(np.float64)
    lengths = np.maximum(1, np.round(lengths * degree / lengths.mean())).astype(np.int64)
    lengths = np.minimum(lengths, 100)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    p = popularity / popularity.sum()
    cdf = np.cumsum(p)
    targets = np.searchsorted(cdf, rng.random(int(indptr[-1])) * cdf[-1]).astype(np.int32)
    targets = np.minimum(targets, n - 1)
    data = rng.random(int(indptr[-1]), dtype=np.float32) + 0.01
    g = sp.csr_matrix((data, targets, indptr), shape=(n, n))
    g.sum_duplicates()  # sorted, unique indices per row, as the trained graphs are
    return g


def build_model_dir(vectors_dir: Path, out_dir: Path, graph_degree: float = 20.0, seed: int = 0,
                    log: Callable[[str], None] = print) -> Path:
    """Assemble a serving model directory from a retrieval-benchmark vectors dir (see module doc)."""
    import hnswlib
    from recsys.candidates import FEATURES
    from recsys.catalogue import Catalogue
    from recsys.model import FORMAT_VERSION, Recommender
    from recsys.ranker import Ranker
    from recsys.retrieval import RetrievalModel, RetrievalParams
    from recsys.synth import CATEGORIES

    rng = np.random.default_rng(seed)
    emb = np.load(vectors_dir / "embeddings.npy")
    n, dim = emb.shape
    meta = json.loads((vectors_dir / "vectors.json").read_text())
    params = RetrievalParams(dim=dim, hnsw_m=meta["m"], ef_construction=meta["ef_construction"])
    index = hnswlib.Index(space="ip", dim=dim)
    index.load_index(str(vectors_dir / "hnsw.bin"), max_elements=n)
    popularity = (1e6 / np.arange(1, n + 1) ** 0.9)[rng.permutation(n)].astype(np.float32)
    trend = rng.normal(0.0, 1.0, n).astype(np.float32)
    neighbours = rng.integers(0, n, (n, params.neighbours), dtype=np.int32)
    neighbour_sims = np.sort(rng.random((n, params.neighbours), dtype=np.float32), axis=1)[:, ::-1].copy()
    covisit = _random_graph(n, graph_degree, rng, popularity)
    knn = _random_graph(n, graph_degree, rng, popularity)
    refs = {"covisit": float(np.median(covisit.data)), "knn": float(np.median(knn.data)), "trend_end": 0.0}
    retrieval = RetrievalModel(params, emb, index, neighbours, neighbour_sims, covisit, knn,
                               popularity, trend, refs, index_recall=-1.0)
    ids = [f"item{i:07d}" for i in range(n)]
    cats = [CATEGORIES[c] for c in rng.integers(0, len(CATEGORIES), n).tolist()]
    catalogue = Catalogue(ids, [f"Title {i}" for i in range(n)], cats)
    weights = {"ann_sim": 1.2, "ann_rr": 0.8, "recent_sim": 0.6, "last_sim": 0.4, "recent_rr": 0.5,
               "covisit": 1.0, "covisit_last": 0.8, "covisit_rr": 0.6, "knn": 0.7, "knn_rr": 0.4,
               "popularity": 0.3, "popular_rr": 0.1, "trend": 0.1, "trending_rr": 0.05,
               "category_affinity": 0.5, "fusion": 1.0, "n_sources": 0.3}
    coef = np.array([weights.get(f, 0.0) for f in FEATURES], np.float32)
    ranker = Ranker(FEATURES, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), coef, -4.0,
                    {"note": "hand-set weights for the benchmark"})
    manifest = {"model_version": f"bench-synthetic-{n}", "format_version": FORMAT_VERSION,
                "note": "assembled by bench.endpoint from synthetic parts, not trained"}
    Recommender(catalogue, retrieval, ranker, manifest).save(out_dir)
    log(f"[endpoint] assembled {n:,}-item model in {out_dir} (covisit {covisit.nnz:,} / knn {knn.nnz:,} edges)")
    return out_dir


def measure(model_dir: Path, n_requests: int = 1000, seed: int = 1, profile_requests: int = 200) -> dict[str, Any]:
    """Load the model and time ``recommend`` one request at a time (run in a fresh process)."""
    from recsys.model import Recommender
    from threadpoolctl import threadpool_limits

    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    rec = Recommender.load(model_dir)
    load_s = time.perf_counter() - t0
    rss = _rss_bytes() - rss0
    r = rec.retrieval
    n = r.n_items
    rng = np.random.default_rng(seed)
    # histories from the popularity distribution (what real users' recent items look like)
    p = r.popularity / r.popularity.sum()
    ids = rec.catalogue.item_ids
    histories = [[ids[i] for i in rng.choice(n, HISTORY_LEN, p=p).tolist()] for _ in range(n_requests + 50)]
    index_bytes = int(r.index.index_file_size()) if r.index is not None else 0
    vector_bytes = int(r.embeddings.shape[0] * r.embeddings.shape[1] * 4)  # float32, as the index holds them
    raw = {"vectors": vector_bytes,
           "hnsw_graph": max(0, index_bytes - vector_bytes),
           "item_graphs": int(sum(g.data.nbytes + g.indices.nbytes + g.indptr.nbytes for g in (r.covisit, r.knn)))}
    with threadpool_limits(1):
        for h in histories[:50]:
            rec.recommend(h, k=10)
        lat = np.empty(n_requests)
        tcpu = np.empty(n_requests)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i, h in enumerate(histories[50:]):
            c = time.thread_time()
            t = time.perf_counter()
            rec.recommend(h, k=10)
            lat[i] = time.perf_counter() - t
            tcpu[i] = time.thread_time() - c
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        sizes = [len(c.items) for c in (rec.builder.build([rec.catalogue.lookup(h)])[0] for h in histories[:50])]
        prof = cProfile.Profile()
        prof.enable()
        for h in histories[50:50 + profile_requests]:
            rec.recommend(h, k=10)
        prof.disable()
    stats = pstats.Stats(prof)
    top = []
    for (fname, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        top.append({"function": f"{Path(fname).name}:{line}({func})", "self_ms_per_request":
                    round(tt / profile_requests * 1e3, 4), "cumulative_ms_per_request": round(ct / profile_requests * 1e3, 4)})
    top.sort(key=lambda x: -x["self_ms_per_request"])
    raw_total = sum(raw.values())
    return {
        "n_items": n, "requests": n_requests, "history_len": HISTORY_LEN, "k": 10,
        "mean_candidates": round(float(np.mean(sizes)), 1),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3),
        "p95_ms": round(float(np.percentile(lat, 95)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 3),
        "mean_ms": round(float(lat.mean()) * 1e3, 3),
        "cpu_ms_per_request": round(cpu / n_requests * 1e3, 3),
        "cpu_p50_ms": round(float(np.percentile(tcpu, 50)) * 1e3, 3),
        "cpu_p99_ms": round(float(np.percentile(tcpu, 99)) * 1e3, 3),
        "requests_per_s_per_core": round(n_requests / cpu, 1),
        "requests_per_s_wall": round(n_requests / wall, 1),
        "load_s": round(load_s, 2),
        "rss_bytes": int(rss),
        "raw_bytes": raw, "raw_total_bytes": int(raw_total),
        "rss_vs_raw": round(rss / raw_total, 2) if raw_total else None,
        "profile_top_self": top[:12],
    }


def measure_in_subprocess(model_dir: Path, n_requests: int = 1000) -> dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter (clean RSS) and return its JSON."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "sagemaker"), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "bench.endpoint", "--model-dir", str(model_dir),
                          "--requests", str(n_requests)], capture_output=True, text=True, check=False,
                         cwd=root, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"endpoint benchmark on {model_dir} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.endpoint --model-dir DIR [--requests N]``: print the measurement as JSON."""
    ap = argparse.ArgumentParser(prog="python -m bench.endpoint", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args(argv)
    if not (args.model_dir / "manifest.json").exists():
        print(f"error: {args.model_dir} is not a model directory (no manifest.json)", file=sys.stderr)
        return 2
    print(json.dumps(measure(args.model_dir, args.requests), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
