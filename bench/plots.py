"""PNG plots of benchmark results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def recall_latency(entries: list[dict[str, Any]], path: Path) -> Path:
    """Recall@10 vs CPU ms per query over ef, hnswlib and faiss HNSW, one panel per catalogue size."""
    fig, axes = plt.subplots(1, len(entries), figsize=(5 * len(entries), 4), squeeze=False)
    for ax, e in zip(axes[0], entries):
        for key, label, style in (("hnswlib", "hnswlib (project)", "o-"), ("faiss_hnsw", "faiss HNSW", "s--")):
            if key not in e:
                continue
            curve = e[key]["curve"]
            ax.plot([c["cpu_ms_per_query"] for c in curve], [c["recall_at_10"] for c in curve], style, label=label, ms=4)
        ax.plot([e["cpu_ms_per_query"]], [e["recall_at_10"]], "r*", ms=14, label=f"operating point ef={e['ef']}")
        ax.axvline(e["exact"]["cpu_ms_per_query"], color="grey", ls=":", label="exact (numpy)")
        ax.set_xscale("log")
        ax.set_xlabel("CPU ms per single query (log)")
        ax.set_ylabel("recall@10")
        ax.set_title(f"{e['n_items']:,} items, d={e['dim']}, M={e['m']}, efC={e['ef_construction']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def endpoint_latency(entries: list[dict[str, Any]], path: Path) -> Path:
    """Four-stage recommend: wall p50/p99 and CPU p50/p99 per request by catalogue size."""
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{e['n_items']:,}" for e in entries]
    keys = [("p50_ms", "wall p50"), ("p99_ms", "wall p99"), ("cpu_p50_ms", "CPU p50"), ("cpu_p99_ms", "CPU p99")]
    width = 0.2
    for i, (key, label) in enumerate(keys):
        ax.bar([x + i * width for x in range(len(entries))], [e.get(key) or 0 for e in entries], width, label=label)
    for x, target in enumerate(5.0 if e["n_items"] <= 100_000 else 10.0 for e in entries):
        ax.hlines(target, x - 0.1, x + 0.7, colors="red", linestyles="--")
    ax.set_xticks([x + 1.5 * width for x in range(len(entries))], labels)
    ax.set_xlabel("catalogue items")
    ax.set_ylabel("ms per request (red: target p99)")
    ax.set_title("recommend(): retrieval + filtering + scoring + ordering")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def quality_bars(tables: list[dict[str, Any]], path: Path, metric: str = "NDCG@10") -> Path:
    """``metric`` of every model, one panel per dataset."""
    fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4), squeeze=False)
    for ax, t in zip(axes[0], tables):
        names = list(t["models"])
        vals = [t["models"][n][metric] for n in names]
        colors = ["tab:red" if n.startswith("recsys") else "tab:blue" for n in names]
        ax.barh(names[::-1], vals[::-1], color=colors[::-1])
        ax.set_xlabel(metric)
        ax.set_title(t["dataset"][:60], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
