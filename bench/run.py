"""The benchmark runner: ``python -m bench.run --quick | --full | --quality-events FILE``.

* ``--quick`` (``make bench-quick``): retrieval at 10k, 100k and 1M clustered vectors (hnswlib as
  configured, efConstruction 200, vs exact vs faiss HNSW), the four-stage endpoint at 100k and 1M items, the embedding trainer vs gensim on
  200k synthetic events, and the quality table on the demo synthetic data (peers without SASRec).
  Writes ``bench/results/quick.json`` and the plots.
* ``--full`` (``make bench``): the same at efConstruction 200 everywhere, the training comparison
  and a full ``recsys.train.train`` on 1M events, the quality table with every peer (SASRec
  included) on the synthetic data and on MovieLens-100K when ``~/.cache/recsys-bench/ml-100k``
  exists. Writes ``bench/results/full.json``.
* ``--quality-events FILE [--quality-items FILE]``: only the quality table for that file.
* ``--smoke``: tiny sizes, for the test suite.

Parts whose optional library is missing (faiss, gensim, torch, matplotlib) are skipped and say so.
Each part is described in its module: bench.retrieval, bench.endpoint, bench.training,
bench.quality, bench.http_load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import endpoint, quality, retrieval, training

RESULTS = Path(__file__).resolve().parent / "results"

# catalogue size -> efConstruction; n_queries, latency queries
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"sizes": {2000: 200}, "n_queries": 100, "n_latency": 50, "n_exact": 20, "ef_sweep": (16, 64, 128),
              "endpoint_sizes": (2000,), "endpoint_requests": 50,
              "training": (200, 150, 4000), "full_train": False, "quality": (150, 100, 3000),
              "quality_peers": ["popularity", "item-kNN", "EASE"], "ml100k": False},
    "quick": {"sizes": {10_000: 200, 100_000: 200, 1_000_000: 200}, "n_queries": 1000, "n_latency": 500,
              "n_exact": 100, "ef_sweep": retrieval.EF_SWEEP, "endpoint_sizes": (100_000, 1_000_000),
              "endpoint_requests": 1000, "training": (6000, 4000, 200_000), "full_train": False,
              "quality": (2000, 1000, 60_000), "quality_peers": "no-sasrec", "ml100k": False},
    "full": {"sizes": {10_000: 200, 100_000: 200, 1_000_000: 200}, "n_queries": 1000, "n_latency": 1000,
             "n_exact": 200, "ef_sweep": retrieval.EF_SWEEP, "endpoint_sizes": (100_000, 1_000_000),
             "endpoint_requests": 2000, "training": (30_000, 20_000, 1_000_000), "full_train": True,
             "quality": (2000, 1000, 60_000), "quality_peers": None, "ml100k": True},
}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "load_average_at_start": os.getloadavg()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, ValueError):
        pass
    return info


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_retrieval(profile: dict[str, Any], cache: Path) -> list[dict[str, Any]]:
    """Retrieval at every size of the profile; saves each index for the endpoint part."""
    with_faiss = _has("faiss")
    if not with_faiss:
        _log("[retrieval] faiss not installed: the faiss HNSW peer is skipped")
    return [retrieval.bench_size(n, ef_construction=efc, n_queries=profile["n_queries"],
                                 n_latency=profile["n_latency"], n_exact_latency=profile["n_exact"],
                                 ef_sweep=profile["ef_sweep"], with_faiss=with_faiss,
                                 save_to=cache / f"vectors-{n}-efc{efc}", log=_log)
            for n, efc in profile["sizes"].items()]


def run_endpoint(profile: dict[str, Any], cache: Path) -> list[dict[str, Any]]:
    """The four-stage endpoint at each size, on the retrieval part's vectors and index."""
    out = []
    for n in profile["endpoint_sizes"]:
        efc = profile["sizes"][n]
        vectors = cache / f"vectors-{n}-efc{efc}"
        model_dir = cache / f"model-{n}-efc{efc}"
        if not (model_dir / "manifest.json").exists():
            endpoint.build_model_dir(vectors, model_dir, log=_log)
        result = endpoint.measure_in_subprocess(model_dir, profile["endpoint_requests"])
        _log(f"[endpoint] n={n:,}: p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms wall; "
             f"CPU p50 {result['cpu_p50_ms']} p99 {result['cpu_p99_ms']} ms; RSS {result['rss_bytes'] / 2**20:.0f} MiB")
        out.append(result)
    return out


def run_training(profile: dict[str, Any], cache: Path) -> dict[str, Any]:
    """Embedding trainer vs gensim, and optionally the full training, on synthetic events."""
    users, items, events = profile["training"]
    ev, it = training.synthetic_events(users, items, events, cache=cache.parent, log=_log)
    with_gensim = _has("gensim")
    if not with_gensim:
        _log("[training] gensim not installed: the Word2Vec comparison is skipped")
    out: dict[str, Any] = {"synthetic": {"users": users, "items": items, "events": events},
                           "embeddings": training.embeddings_vs_gensim(
                               ev, eval_users=min(5000, users), with_gensim=with_gensim, log=_log)}
    if profile["full_train"]:
        out["full_train"] = training.full_training(ev, it, log=_log)
    return out


def _peer_names(spec: Any) -> list[str] | None:
    from bench.peers import available_peers

    if spec == "no-sasrec":
        return [p for p in available_peers() if p != "SASRec"]
    return spec


def run_quality(profile: dict[str, Any], cache: Path) -> list[dict[str, Any]]:
    """The quality table on the synthetic data (and MovieLens-100K in --full)."""
    users, items, events = profile["quality"]
    ev, it = training.synthetic_events(users, items, events, cache=cache.parent, log=_log)
    names = _peer_names(profile["quality_peers"])
    tables = [quality.quality_table(ev, it, names, label=f"synthetic ({users:,} users, {items:,} items, "
                                    f"{events:,} events)", log=_log)]
    ml = cache.parent / "ml-100k"
    if profile["ml100k"] and (ml / "events.csv").exists():
        tables.append(quality.quality_table(ml / "events.csv", ml / "items.csv" if (ml / "items.csv").exists() else None,
                                            names, label="MovieLens-100K", log=_log))
    return tables


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Targets of issue 6 checked against the figures (None where a figure is missing)."""
    checks: dict[str, Any] = {}
    by_n = {e["n_items"]: e for e in result.get("retrieval", [])}
    if 1_000_000 in by_n:
        e = by_n[1_000_000]
        checks[f"1M recall@10 >= 0.99 (ef {e.get('ef')})"] = e["recall_at_10"] >= 0.99
        checks["1M speedup vs exact >= 100x (wall p50)"] = e["speedup_vs_exact"] >= 100
        checks["1M speedup vs exact >= 100x (CPU/query)"] = e.get("speedup_vs_exact_cpu", 0) >= 100
        if e.get("latency_vs_faiss") is not None:
            checks["1M latency within 1.5x of faiss at equal recall"] = e["latency_vs_faiss"] <= 1.5
    for ep in result.get("endpoint", []):
        target = 5.0 if ep["n_items"] <= 100_000 else 10.0
        checks[f"{ep['n_items']:,} items: p99 <= {target} ms (wall)"] = ep["p99_ms"] <= target
        checks[f"{ep['n_items']:,} items: p99 <= {target} ms (CPU)"] = ep["cpu_p99_ms"] <= target
        checks[f"{ep['n_items']:,} items: RSS <= 2x raw vectors + graphs"] = (ep["rss_vs_raw"] or 99) <= 2.0
    tr = result.get("training", {})
    if "full_train" in tr:
        checks["1M-event full training <= 180 s (wall)"] = tr["full_train"]["wall_s"] <= 180
    emb = tr.get("embeddings", {})
    if "gensim_matched_negatives" in emb:
        g, o = emb["gensim_matched_negatives"], emb["ppmi_svd"]
        checks["embeddings at least as fast as gensim (CPU)"] = o["cpu_s"] <= g["cpu_s"]
        checks["embeddings at least as good as gensim (NDCG@10)"] = o["NDCG@10"] >= g["NDCG@10"]
    return checks


def write_plots(result: dict[str, Any], out_dir: Path, prefix: str) -> list[str]:
    """Every plot the result allows (none without matplotlib); returns the file names."""
    if not _has("matplotlib"):
        _log("[plots] matplotlib not installed (it comes with the bench extra): no plots")
        return []
    from bench import plots

    out = []
    if result.get("retrieval"):
        out.append(plots.recall_latency(result["retrieval"], out_dir / f"{prefix}_retrieval.png").name)
    if result.get("endpoint"):
        out.append(plots.endpoint_latency(result["endpoint"], out_dir / f"{prefix}_endpoint.png").name)
    if result.get("quality"):
        out.append(plots.quality_bars(result["quality"], out_dir / f"{prefix}_quality.png").name)
    return out


def resummarise(path: Path, out_dir: Path) -> int:
    """Headline figures, targets and plots of a saved result, re-derived from its measured curves."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    for entry in result.get("retrieval", []):
        retrieval.summarise_entry(entry)
    result["targets"] = summarise(result)
    result["plots"] = write_plots(result, out_dir, path.stem)
    path.write_text(json.dumps(result, indent=2) + "\n")
    for check, ok in result["targets"].items():
        _log(f"[targets] {'PASS' if ok else 'MISS'}  {check}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    mode.add_argument("--smoke", action="store_true")
    mode.add_argument("--quality-events", type=Path, metavar="FILE")
    mode.add_argument("--resummarise", type=Path, metavar="RESULT_JSON",
                      help="re-derive the headline figures, targets and plots of a saved result (no measuring)")
    ap.add_argument("--quality-items", type=Path, metavar="FILE")
    ap.add_argument("--name", help="with --quality-events: results as quality_<name>.json (default: the file's stem)")
    ap.add_argument("--parts", default="retrieval,endpoint,training,quality",
                    help="comma-separated subset of retrieval,endpoint,training,quality")
    ap.add_argument("--output-dir", type=Path, default=RESULTS)
    ap.add_argument("--cache", type=Path, default=retrieval.CACHE / "bench",
                    help="where vectors, indexes, models and synthetic data are cached (never committed)")
    args = ap.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {"machine": machine(), "command": "python -m bench.run " + " ".join(
        argv if argv is not None else sys.argv[1:])}

    if args.resummarise is not None:
        return resummarise(args.resummarise, args.output_dir)
    if args.quality_events is not None:
        for p in (args.quality_events, args.quality_items):
            if p is not None and not p.exists():
                print(f"error: {p} not found", file=sys.stderr)
                return 2
        table = quality.quality_table(args.quality_events, args.quality_items,
                                      label=args.name or args.quality_events.name, log=_log)
        print(quality.format_table(table))
        result["quality"] = [table]
        name = f"quality_{args.name or args.quality_events.stem}"
        result["plots"] = write_plots(result, args.output_dir, name)
        (args.output_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        _log(f"wrote {args.output_dir / (name + '.json')}")
        return 0

    name = "quick" if args.quick else "full" if args.full else "smoke"
    profile = PROFILES[name]
    parts = set(args.parts.split(","))
    unknown = parts - {"retrieval", "endpoint", "training", "quality"}
    if unknown:
        print(f"error: unknown --parts {sorted(unknown)}", file=sys.stderr)
        return 2
    if "retrieval" in parts or "endpoint" in parts:
        result["retrieval"] = run_retrieval(profile, args.cache)
    if "endpoint" in parts:
        result["endpoint"] = run_endpoint(profile, args.cache)
    if "training" in parts:
        result["training"] = run_training(profile, args.cache)
    if "quality" in parts:
        result["quality"] = run_quality(profile, args.cache)
    result["targets"] = summarise(result)
    result["plots"] = write_plots(result, args.output_dir, name)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    (args.output_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    for check, ok in result["targets"].items():
        _log(f"[targets] {'PASS' if ok else 'MISS'}  {check}")
    _log(f"wrote {args.output_dir / (name + '.json')} in {result['wall_s']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
