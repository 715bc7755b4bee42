"""Retrieval benchmark: the project's hnswlib configuration vs exact search vs faiss HNSW.

Vectors are a clustered Gaussian mixture (``n_centres`` centres, a decaying spectrum like the
PPMI-SVD embeddings ``u * sqrt(s)``, L2-normalised), never uniform random: HNSW recall on uniform
random 64-d vectors says little about learned embeddings. Queries are fresh draws from the same
mixture (not indexed items). Ground truth is exact inner-product top-k (numpy matmul +
argpartition), which is also the exact-search contender.

Timings: ``*_wall_s`` is wall-clock time (perf_counter), ``*_cpu_s`` is this process's CPU time
(all threads, ``time.process_time``). The machine is shared, so wall time is inflated by other
load; CPU time is the steadier figure. Single-query latencies are per call, one query at a time,
one thread (BLAS limited to one thread for the exact search too).

    python -m bench.retrieval --sizes 10000,100000 --output /tmp/retrieval.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
from recsys.retrieval import RetrievalParams
from threadpoolctl import threadpool_limits

DIM = 64
EF_SWEEP = (10, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 384, 512)
CACHE = Path(os.environ.get("RECSYS_BENCH_CACHE", Path.home() / ".cache" / "recsys-bench"))


def clustered_vectors(n: int, dim: int = DIM, n_centres: int = 4096, spread: float = 0.5,
                      seed: int = 0, draw_seed: int | None = None) -> np.ndarray:
    """``n`` L2-normalised float32 vectors from a Gaussian mixture with a decaying spectrum.

    Args:
        n: number of vectors.
        dim: dimension.
        n_centres: mixture components (clamped to ``n``); assignment is Zipf-like so a few
            clusters are large, as categories and genres are.
        spread: within-cluster standard deviation relative to the spread of the centres.
        seed: seed of the mixture (centres and cluster sizes).
        draw_seed: seed of the draws from it (default ``seed``); another value gives fresh
            points of the same mixture, e.g. queries.
    """
    rng = np.random.default_rng(seed)
    n_centres = max(1, min(n_centres, n))
    spectrum = (np.arange(1, dim + 1, dtype=np.float32) ** -0.5)
    centres = rng.standard_normal((n_centres, dim), dtype=np.float32) * spectrum
    weights = 1.0 / np.arange(1, n_centres + 1) ** 0.7
    if draw_seed is not None:
        rng = np.random.default_rng(draw_seed)
    assign = rng.choice(n_centres, size=n, p=weights / weights.sum())
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 200_000):  # bounded temporaries at 1M
        stop = min(n, start + 200_000)
        block = rng.standard_normal((stop - start, dim), dtype=np.float32) * (spread * spectrum)
        block += centres[assign[start:stop]]
        out[start:stop] = block
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def exact_top_k(queries: np.ndarray, base: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """Exact inner-product top-``k`` ids per query, best first (the recall-1.0 reference)."""
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), chunk):
        scores = queries[s:s + chunk] @ base.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        out[s:s + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def exact_single(base: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """One-query exact search: matmul + argpartition + sort of the top k."""
    def search(q: np.ndarray) -> np.ndarray:
        scores = base @ q
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part])]
    return search


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean fraction of the true top-``k`` present in the first ``k`` found ids."""
    hits = 0
    for f, t in zip(found[:, :k].tolist(), truth[:, :k].tolist()):
        hits += len(set(f) & set(t))
    return hits / float(k * len(truth))


def time_queries(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> dict[str, float]:
    """Single-query latency stats (ms) over ``queries``, one at a time, plus QPS and CPU per query."""
    for q in queries[:20]:  # warm caches and lazy allocations
        search(q)
    lat = np.empty(len(queries))
    tcpu = np.empty(len(queries))
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for i, q in enumerate(queries):
        c = time.thread_time()
        t = time.perf_counter()
        search(q)
        lat[i] = time.perf_counter() - t
        tcpu[i] = time.thread_time() - c
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return {
        "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 4),
        "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 4),
        "mean_ms": round(float(lat.mean()) * 1e3, 4),
        "qps": round(len(queries) / wall, 1),
        "cpu_ms_per_query": round(cpu / len(queries) * 1e3, 4),
        "cpu_p50_ms": round(float(np.percentile(tcpu, 50)) * 1e3, 4),
        "cpu_p99_ms": round(float(np.percentile(tcpu, 99)) * 1e3, 4),
    }


def build_hnswlib(base: np.ndarray, m: int, ef_construction: int, threads: int = 2,
                  seed: int = 0) -> tuple[hnswlib.Index, dict[str, float]]:
    """The index exactly as ``recsys.retrieval`` builds it ('ip' space), timed."""
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=len(base), ef_construction=ef_construction, M=m, random_seed=seed)
    index.set_num_threads(threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    index.add_items(base, np.arange(len(base)))
    info = {"build_wall_s": round(time.perf_counter() - wall0, 2),
            "build_cpu_s": round(time.process_time() - cpu0, 2),
            "index_bytes": int(index.index_file_size())}
    index.set_num_threads(1)
    return index, info


def build_faiss(base: np.ndarray, m: int, ef_construction: int, threads: int = 2):
    """faiss ``IndexHNSWFlat`` with inner product and the same M / efConstruction, timed."""
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    wall0, cpu0 = time.perf_counter(), time.process_time()
    index.add(base)
    info = {"build_wall_s": round(time.perf_counter() - wall0, 2),
            "build_cpu_s": round(time.process_time() - cpu0, 2)}
    with tempfile.NamedTemporaryFile(suffix=".faiss") as fh:
        faiss.write_index(index, fh.name)
        info["index_bytes"] = os.path.getsize(fh.name)
    faiss.omp_set_num_threads(1)
    return index, info


def _equal_recall_latency(curve: Sequence[dict[str, float]], target: float) -> float | None:
    """p50 latency a curve needs to reach ``target`` recall@10 (linear interpolation), or None."""
    pts = sorted((c["recall_at_10"], c["p50_ms"]) for c in curve)
    best = None
    for (r0, l0), (r1, l1) in zip(pts, pts[1:]):
        if r0 <= target <= r1 and r1 > r0:
            cand = l0 + (l1 - l0) * (target - r0) / (r1 - r0)
            best = cand if best is None else min(best, cand)
    reach = [lat for r, lat in pts if r >= target]
    if reach:
        best = min(reach) if best is None else min(best, min(reach))
    return best


TARGET_RECALL = 0.99


def operating_ef(curve: Sequence[dict[str, float]]) -> int:
    """The operating point the headline figures are read at: the smallest ef of the sweep that
    reaches ``TARGET_RECALL`` (ef is a serving knob, the ``ef`` hyperparameter; efConstruction
    and M, which fix the graph, are the project's), else the ef with the best recall."""
    ordered = sorted(curve, key=lambda c: c["ef"])
    reaching = [c for c in ordered if c["recall_at_10"] >= TARGET_RECALL]
    best = reaching[0] if reaching else max(ordered, key=lambda c: c["recall_at_10"])
    return int(best["ef"])


def summarise_entry(out: dict[str, Any]) -> dict[str, Any]:
    """The headline fields of one size, read off the measured curves at the operating ef (and the
    configured ef for reference). Pure: re-run on a saved result with ``bench.run --resummarise``."""
    curve = out["hnswlib"]["curve"]
    op_ef = operating_ef(curve)
    at = next(c for c in curve if c["ef"] == op_ef)
    exact = out["exact"]
    out["ef"] = op_ef
    out["hnswlib"]["ef"] = op_ef
    out["recall_at_10"] = at["recall_at_10"]
    out["recall_at_100"] = out["hnswlib"]["recall_at_100"]
    for key in ("p50_ms", "p99_ms", "qps", "cpu_ms_per_query"):
        out[key] = at[key]
    out["speedup_vs_exact"] = round(exact["p50_ms"] / max(at["p50_ms"], 1e-9), 1)
    out["speedup_vs_exact_cpu"] = round(exact["cpu_ms_per_query"] / max(at["cpu_ms_per_query"], 1e-9), 1)
    configured = out["hnswlib"].get("configured_ef")
    conf = next((c for c in curve if c["ef"] == configured), None)
    if conf is not None:
        out["at_configured_ef"] = {"ef": configured, "recall_at_10": conf["recall_at_10"], "p50_ms": conf["p50_ms"],
                                   "speedup_vs_exact": round(exact["p50_ms"] / max(conf["p50_ms"], 1e-9), 1)}
    if "faiss_hnsw" in out:
        # equal recall: each library's own recall/latency curve, interpolated at the operating
        # point's recall (capped at what both curves reach)
        fcurve = out["faiss_hnsw"]["curve"]
        reach = min(max(c["recall_at_10"] for c in curve), max(c["recall_at_10"] for c in fcurve))
        target = min(out["recall_at_10"], reach)
        h_lat = _equal_recall_latency(curve, target)
        f_lat = _equal_recall_latency(fcurve, target)
        out["equal_recall"] = {"recall_at_10": target,
                               "hnswlib_p50_ms": None if h_lat is None else round(h_lat, 4),
                               "faiss_p50_ms": None if f_lat is None else round(f_lat, 4)}
        out["latency_vs_faiss"] = round(h_lat / f_lat, 3) if h_lat and f_lat else None
    return out


def bench_size(n: int, *, ef_construction: int | None = None, n_queries: int = 1000,
               n_latency: int = 500, n_exact_latency: int = 100, ef_sweep: Sequence[int] = EF_SWEEP,
               with_faiss: bool = True, seed: int = 0, save_to: Path | None = None,
               log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every figure for one catalogue size; see the module docstring."""
    p = RetrievalParams()
    efc = ef_construction or p.ef_construction
    wall0 = time.perf_counter()
    centres = min(4096, max(1, n // 64))
    base = clustered_vectors(n, n_centres=centres, seed=seed)
    queries = clustered_vectors(n_queries, n_centres=centres, seed=seed, draw_seed=seed + 1_000_003)
    log(f"[retrieval] n={n:,}: vectors ready ({time.perf_counter() - wall0:.1f}s); exact ground truth")
    with threadpool_limits(2):
        t0, c0 = time.perf_counter(), time.process_time()
        truth = exact_top_k(queries, base, 100)
        gt_wall, gt_cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {
        "n_items": n, "dim": base.shape[1], "n_queries": n_queries, "m": p.hnsw_m,
        "ef_construction": efc, "ef": p.ef, "vectors_bytes": int(base.nbytes),
        "exact_batch": {"queries": n_queries, "wall_s": round(gt_wall, 2), "cpu_s": round(gt_cpu, 2)},
    }
    with threadpool_limits(1):
        exact = time_queries(exact_single(base, 10), queries[:n_exact_latency])
    out["exact"] = {**exact, "recall_at_10": 1.0, "recall_at_100": 1.0}
    log(f"[retrieval] n={n:,}: exact single query p50 {exact['p50_ms']:.3f} ms; building hnswlib (efC={efc})")

    index, info = build_hnswlib(base, p.hnsw_m, efc)
    log(f"[retrieval] n={n:,}: hnswlib built in {info['build_wall_s']}s wall / {info['build_cpu_s']}s CPU")
    curve = []
    for ef in ef_sweep:
        index.set_ef(ef)
        labels, _ = index.knn_query(queries, k=10)
        stats = time_queries(lambda q: index.knn_query(q, k=10), queries[:n_latency])
        curve.append({"ef": ef, "recall_at_10": round(recall(labels, truth, 10), 4), **stats})
    index.set_ef(100)
    labels100, _ = index.knn_query(queries, k=100)
    index.set_ef(p.ef)
    out["hnswlib"] = {**info, "configured_ef": p.ef, "recall_at_100": round(recall(labels100, truth, 100), 4),
                      "recall_at_100_ef": 100, "curve": curve}
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        np.save(save_to / "embeddings.npy", base)
        index.save_index(str(save_to / "hnsw.bin"))
        (save_to / "vectors.json").write_text(json.dumps({"n_items": n, "seed": seed, "m": p.hnsw_m,
                                                           "ef_construction": efc}))

    if with_faiss:
        log(f"[retrieval] n={n:,}: building faiss HNSW (efC={efc})")
        findex, finfo = build_faiss(base, p.hnsw_m, efc)
        log(f"[retrieval] n={n:,}: faiss built in {finfo['build_wall_s']}s wall / {finfo['build_cpu_s']}s CPU")
        fcurve = []
        for ef in ef_sweep:
            findex.hnsw.efSearch = ef
            _, flabels = findex.search(queries, 10)
            stats = time_queries(lambda q: findex.search(q[None, :], 10), queries[:n_latency])
            fcurve.append({"ef": ef, "recall_at_10": round(recall(flabels, truth, 10), 4), **stats})
        findex.hnsw.efSearch = 100
        _, flabels100 = findex.search(queries, 100)
        out["faiss_hnsw"] = {**finfo, "recall_at_100": round(recall(flabels100, truth, 100), 4),
                             "recall_at_100_ef": 100, "curve": fcurve}
    summarise_entry(out)
    out["wall_s"] = round(time.perf_counter() - wall0, 1)
    log(f"[retrieval] n={n:,}: recall@10 {out['recall_at_10']:.4f} p50 {out['p50_ms']:.3f} ms "
        f"p99 {out['p99_ms']:.3f} ms, {out['speedup_vs_exact']}x exact, vs faiss {out.get('latency_vs_faiss')}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.retrieval --sizes 10000,100000 [--ef-construction N] [--output FILE]``."""
    ap = argparse.ArgumentParser(prog="python -m bench.retrieval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--ef-construction", type=int, default=None)
    ap.add_argument("--no-faiss", action="store_true")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args(argv)
    results = [bench_size(int(s), ef_construction=args.ef_construction, with_faiss=not args.no_faiss)
               for s in args.sizes.split(",")]
    text = json.dumps(results, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
