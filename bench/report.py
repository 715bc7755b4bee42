"""Markdown tables from a benchmark result, for docs/BENCHMARKS.md:

    python -m bench.report bench/results/quick.json > /tmp/tables.md

Every table in the doc is printed by this module from the JSON, so the doc and the results
cannot drift apart by hand-copying.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MIB = 2**20


def _row(*cells: Any) -> str:
    return "| " + " | ".join("" if c is None else str(c) for c in cells) + " |"


def _f(x: Any, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def targets(result: dict[str, Any]) -> str:
    lines = [_row("target", "met"), _row("---", "---")]
    lines += [_row(name, "**yes**" if ok else "no") for name, ok in result.get("targets", {}).items()]
    return "\n".join(lines)


def retrieval(result: dict[str, Any]) -> str:
    lines = [_row("items", "method", "build wall s", "build CPU s", "index MiB", "recall@10", "recall@100",
                  "p50 ms", "p99 ms", "CPU ms/query", "QPS (wall)"),
             _row(*["---"] * 11)]
    for e in result.get("retrieval", []):
        n = f"{e['n_items']:,}"
        x = e["exact"]
        lines.append(_row(n, "exact (numpy matmul + argpartition)", "-", "-", round(e["vectors_bytes"] / MIB),
                          "1.0", "1.0", _f(x["p50_ms"]), _f(x["p99_ms"]), _f(x["cpu_ms_per_query"]), x["qps"]))
        h = e["hnswlib"]
        lines.append(_row(n, f"**hnswlib (project, M={e['m']}, efC={e['ef_construction']}, ef={e['ef']})**",
                          h["build_wall_s"], h["build_cpu_s"], round(h["index_bytes"] / MIB), _f(e["recall_at_10"], 4),
                          _f(h["recall_at_100"], 4), _f(e["p50_ms"]), _f(e["p99_ms"]), _f(e["cpu_ms_per_query"]), e["qps"]))
        f = e.get("faiss_hnsw")
        if f:
            at = next((c for c in f["curve"] if c["ef"] == e["ef"]), None)
            lines.append(_row(n, f"faiss IndexHNSWFlat (same M/efC, efSearch={e['ef']})", f["build_wall_s"],
                              f["build_cpu_s"], round(f["index_bytes"] / MIB), _f(at and at["recall_at_10"], 4),
                              _f(f.get("recall_at_100", f.get("recall_at_100_at_ef128")), 4), _f(at and at["p50_ms"]),
                              _f(at and at["p99_ms"]), _f(at and at["cpu_ms_per_query"]), at and at["qps"]))
    lines += ["", _row("items", "ef", "speedup vs exact (wall p50)", "speedup vs exact (CPU/query)",
                       "equal recall@10", "hnswlib p50 ms", "faiss p50 ms", "hnswlib / faiss"),
              _row(*["---"] * 8)]
    for e in result.get("retrieval", []):
        eq = e.get("equal_recall", {})
        lines.append(_row(f"{e['n_items']:,}", e["ef"], e["speedup_vs_exact"], e.get("speedup_vs_exact_cpu"),
                          eq.get("recall_at_10"), eq.get("hnswlib_p50_ms"), eq.get("faiss_p50_ms"),
                          e.get("latency_vs_faiss")))
    return "\n".join(lines)


def curves(result: dict[str, Any]) -> str:
    out = []
    for e in result.get("retrieval", []):
        fc = {c["ef"]: c for c in e.get("faiss_hnsw", {}).get("curve", [])}
        lines = [f"Recall@10 and latency over ef, {e['n_items']:,} items:", "",
                 _row("ef", "hnswlib recall@10", "hnswlib p50 ms", "hnswlib CPU ms", "faiss recall@10", "faiss p50 ms",
                      "faiss CPU ms"), _row(*["---"] * 7)]
        for c in e["hnswlib"]["curve"]:
            f = fc.get(c["ef"], {})
            lines.append(_row(c["ef"], _f(c["recall_at_10"], 4), _f(c["p50_ms"]), _f(c["cpu_ms_per_query"]),
                              _f(f.get("recall_at_10"), 4), _f(f.get("p50_ms")), _f(f.get("cpu_ms_per_query"))))
        out.append("\n".join(lines))
    return "\n\n".join(out)


def endpoint(result: dict[str, Any]) -> str:
    lines = [_row("items", "candidates", "p50 ms", "p95 ms", "p99 ms", "CPU p50 ms", "CPU p99 ms",
                  "req/s per core (CPU)", "RSS MiB", "raw vectors+HNSW+graphs MiB", "RSS / raw"),
             _row(*["---"] * 11)]
    for e in result.get("endpoint", []):
        lines.append(_row(f"{e['n_items']:,}", round(e["mean_candidates"]), _f(e["p50_ms"]), _f(e["p95_ms"]),
                          _f(e["p99_ms"]), _f(e["cpu_p50_ms"]), _f(e["cpu_p99_ms"]), e["requests_per_s_per_core"],
                          f"{e['rss_bytes'] / MIB:,.0f}", f"{e['raw_total_bytes'] / MIB:,.0f}", e["rss_vs_raw"]))
    return "\n".join(lines)


def training(result: dict[str, Any]) -> str:
    emb = result.get("training", {}).get("embeddings", {})
    names = {"ppmi_svd": "**recsys PPMI + SVD**", "gensim_matched_negatives": "gensim Word2Vec sg, negative=1 (matched)",
             "gensim_5_negatives": "gensim Word2Vec sg, negative=5 (default)"}
    lines = [_row("trainer", "wall s", "CPU s", "events/s (CPU)", "HR@10", "NDCG@10", "HR@20", "NDCG@20"),
             _row(*["---"] * 8)]
    for key, label in names.items():
        if key in emb:
            t = emb[key]
            lines.append(_row(label, t["wall_s"], t["cpu_s"], f"{t['events_per_s_cpu']:,}", _f(t["HR@10"], 4),
                              _f(t["NDCG@10"], 4), _f(t["HR@20"], 4), _f(t["NDCG@20"], 4)))
    return "\n".join(lines)


def quality(result: dict[str, Any]) -> str:
    out = []
    for table in result.get("quality", []):
        lines = [f"**{table['dataset']}** (users in the split: recsys {table['recsys_split']['users']:,}, "
                 f"peers {table['peers_split']['users']:,})", "",
                 _row("model", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "seconds"), _row(*["---"] * 6)]
        for name, m in table["models"].items():
            label = f"**{name}**" if name == "recsys two-stage" else name
            lines.append(_row(label, _f(m["HR@10"], 4), _f(m["NDCG@10"], 4), _f(m["HR@20"], 4), _f(m["NDCG@20"], 4),
                              m.get("seconds")))
        out.append("\n".join(lines))
    return "\n\n".join(out)


SECTIONS = {"targets": targets, "retrieval": retrieval, "curves": curves, "endpoint": endpoint,
            "training": training, "quality": quality}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", type=Path, help="a bench/results/*.json file")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = ap.parse_args(argv)
    try:
        result = json.loads(args.result.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.result}: {exc}", file=sys.stderr)
        return 2
    unknown = [s for s in args.sections.split(",") if s not in SECTIONS]
    if unknown:
        print(f"error: unknown section(s) {unknown}; known: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    for name in args.sections.split(","):
        print(f"<!-- {name} -->\n{SECTIONS[name](result)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
