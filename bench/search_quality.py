"""Search quality and latency of ``recsys.text.TextIndex`` on a real movie catalogue.

MovieLens-100K's 1,682 titles are read from the ``recbole==1.2.1`` wheel (downloaded with pip into
``~/.cache/recsys-bench``, never committed; no test depends on it). Every item is queried with:

* its whole title,
* a prefix (the first half of the title's characters, as if still typing),
* a typo (one character dropped at a random position, fixed seed; spaces included).

HR@10 (the intended item in the top 10) and MRR (over the top 10) are reported for the text index
and for plain TF-IDF baselines on the same item texts (``title + " " + category`` with the
first-listed genre as the category, as in the project's items file). MovieLens lists a few films
twice under two ids; a result with the same (normalised) title as the target counts as a hit, and
the strict by-id figures are in the JSON too. Latency is measured on the real catalogue and on a
synthetic 100k-item catalogue made of words from the real titles.

Usage::

    .venv/bin/python bench/search_quality.py [--cache DIR] [--out bench/results/search_quality.json]
        [--seed 0] [--large-items 100000]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer

try:
    from recsys.text import TextIndex, normalize
except ImportError:  # run as a script from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sagemaker"))
    from recsys.text import TextIndex, normalize

RECBOLE_SPEC = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
ITEM_FILE = "recbole/dataset_example/ml-100k/ml-100k.item"
K = 10

Searcher = Callable[[str, int], np.ndarray]


def load_catalogue(cache: Path) -> list[dict[str, str]]:
    """Return ML-100K items as dicts (item_id, title, genres), extracting them into ``cache``."""
    extracted = cache / "ml-100k.item"
    if not extracted.exists():
        wheel = cache / RECBOLE_WHEEL
        if not wheel.exists():
            cache.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RECBOLE_SPEC,
                 "-d", str(cache)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0 or not wheel.exists():
                sys.exit(f"search_quality: could not download {RECBOLE_SPEC}: {proc.stderr[-300:]}")
        with zipfile.ZipFile(wheel) as zf:
            extracted.write_bytes(zf.read(ITEM_FILE))
    text = extracted.read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = [h.split(":", 1)[0] for h in next(reader)]
    rows = [dict(zip(header, row)) for row in reader if row]
    return [
        {"item_id": r["item_id"], "title": r["movie_title"].strip(), "genres": r.get("class", "")}
        for r in rows
        if r.get("movie_title", "").strip()
    ]


def make_queries(titles: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Whole titles, first-half prefixes and seeded typos: one character dropped, two adjacent
    characters swapped, two characters dropped (positions uniform, spaces included)."""
    rng = np.random.default_rng(seed)

    def drop(text: str) -> str:
        pos = int(rng.integers(len(text)))
        return text[:pos] + text[pos + 1 :]

    def swap(text: str) -> str:
        if len(text) < 2:
            return text
        pos = int(rng.integers(len(text) - 1))
        return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]

    def keep_nonempty(typo: str, title: str) -> str:
        return typo if typo.strip() else title

    typos = [keep_nonempty(drop(t), t) for t in titles]
    swaps = [keep_nonempty(swap(t), t) for t in titles]
    two_drops = [keep_nonempty(drop(drop(t)) if len(t) > 2 else t, t) for t in titles]
    return {
        "whole": list(titles),
        "prefix": [t[: max(1, math.ceil(len(t) / 2))] for t in titles],
        "typo": typos,
        "swap": swaps,
        "two_drops": two_drops,
    }


def sklearn_searcher(texts: Sequence[str], **kwargs) -> Searcher:
    """Plain TF-IDF cosine search with scikit-learn (the baselines)."""
    vectorizer = TfidfVectorizer(**kwargs)
    matrix = vectorizer.fit_transform(texts).T.tocsr()

    def search(query: str, k: int) -> np.ndarray:
        scores = np.asarray((vectorizer.transform([query]) @ matrix).todense()).ravel()
        hits = np.flatnonzero(scores > 0)
        order = np.lexsort((hits, -scores[hits]))[:k]
        return hits[order]

    return search


def evaluate(search: Searcher, queries: Sequence[str], same_title: list[np.ndarray]) -> dict:
    """HR@K and MRR@K; ``same_title[i]`` holds the ids that count as item i (duplicates)."""
    hits = strict_hits = 0
    rr = strict_rr = 0.0
    misses = []
    for target, query in enumerate(queries):
        found = search(query, K)
        ok = np.flatnonzero(np.isin(found, same_title[target]))
        if ok.size:
            hits += 1
            rr += 1.0 / (ok[0] + 1)
        elif len(misses) < 15:
            misses.append(query)
        exact = np.flatnonzero(found == target)
        if exact.size:
            strict_hits += 1
            strict_rr += 1.0 / (exact[0] + 1)
    n = len(queries)
    return {
        f"HR@{K}": hits / n,
        f"MRR@{K}": rr / n,
        f"HR@{K}_strict_id": strict_hits / n,
        f"MRR@{K}_strict_id": strict_rr / n,
        "n_queries": n,
        "example_misses": misses,
    }


def latency_ms(search: Searcher, queries: Sequence[str]) -> dict[str, float]:
    """Per-query wall time and CPU time of the calling thread, in milliseconds.

    On a shared, overloaded machine the wall time mostly measures waiting for a core; the CPU
    time is what the query itself costs.
    """
    wall, cpu = [], []
    for query in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        search(query, K)
        cpu.append((time.thread_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    w, c = np.array(wall), np.array(cpu)
    return {
        "p50": float(np.percentile(w, 50)),
        "p95": float(np.percentile(w, 95)),
        "p99": float(np.percentile(w, 99)),
        "max": float(w.max()),
        "cpu_p50": float(np.percentile(c, 50)),
        "cpu_p95": float(np.percentile(c, 95)),
        "cpu_p99": float(np.percentile(c, 99)),
        "n": len(wall),
    }


def synthetic_catalogue(titles: Sequence[str], n_items: int, seed: int) -> list[str]:
    """``n_items`` texts of 1-6 words drawn (with their real frequencies) from the titles."""
    rng = np.random.default_rng(seed)
    words = [w for t in titles for w in t.split()]
    lengths = rng.integers(1, 7, size=n_items)
    picks = rng.integers(len(words), size=int(lengths.sum()))
    out, pos = [], 0
    for n in lengths:
        out.append(" ".join(words[i] for i in picks[pos : pos + n]))
        pos += n
    return out


def dir_size(path: str) -> int:
    """Bytes in the files of ``path``."""
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def large_scale(titles: Sequence[str], n_items: int, seed: int) -> dict:
    """Build/save/load time, artifact size and query latency on a synthetic catalogue."""
    texts = synthetic_catalogue(titles, n_items, seed)
    start = time.perf_counter()
    index = TextIndex.build(texts)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        index.save(tmp)
        size = dir_size(tmp)
        start = time.perf_counter()
        loaded = TextIndex.load(tmp)
        load_s = time.perf_counter() - start
    queries = make_queries(texts[:300], seed)
    lat = {kind: latency_ms(lambda q, k: loaded.query(q, k)[0], qs) for kind, qs in queries.items()}
    short = [t[:1] for t in texts[:300]] + [t[:2] for t in texts[:300]]
    lat["one_or_two_chars"] = latency_ms(lambda q, k: loaded.query(q, k)[0], short)
    return {
        "n_items": n_items,
        "n_features": len(loaded.vocabulary),
        "item_matrix_nnz": int(loaded.item_matrix.nnz),
        "build_s": build_s,
        "load_s": load_s,
        "artifact_bytes": size,
        "query_latency_ms": lat,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="~/.cache/recsys-bench", help="data cache (outside the repo)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "search_quality.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large-items", type=int, default=100_000,
                        help="size of the synthetic catalogue for latency (0 to skip)")
    args = parser.parse_args(argv)

    items = load_catalogue(Path(args.cache).expanduser())
    titles = [it["title"] for it in items]
    texts = [f"{it['title']} {it['genres'].split(' ')[0]}".strip() for it in items]
    norm_titles = np.array([normalize(t) for t in titles])
    same_title = [np.flatnonzero(norm_titles == t) for t in norm_titles]
    queries = make_queries(titles, args.seed)

    start = time.perf_counter()
    index = TextIndex.build(texts)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        index.save(tmp)
        size = dir_size(tmp)
        index = TextIndex.load(tmp)  # measure what serving uses: the loaded artifact

    methods: dict[str, Searcher] = {
        "text_index": lambda q, k: index.query(q, k)[0],
        "tfidf_word": sklearn_searcher(texts),
        "tfidf_char_wb_3_5": sklearn_searcher(texts, analyzer="char_wb", ngram_range=(3, 5)),
    }
    quality: dict[str, dict[str, dict]] = {}
    for name, search in methods.items():
        quality[name] = {kind: evaluate(search, qs, same_title) for kind, qs in queries.items()}
    latency = {
        name: latency_ms(search, queries["typo"]) for name, search in methods.items()
    }

    print(f"MovieLens-100K titles: {len(titles)} items "
          f"({sum(len(s) > 1 for s in same_title)} share a title with another id)\n")
    print(f"{'HR@10 / MRR@10':<12}" + "".join(f"{name:>24}" for name in methods))
    for kind in queries:
        cells = "".join(
            f"{quality[name][kind]['HR@10']:>15.4f} / {quality[name][kind]['MRR@10']:.4f}"
            for name in methods
        )
        print(f"{kind:<12}{cells}")
    print("\nquery latency on the catalogue (typo queries, ms):")
    for name, lat in latency.items():
        print(f"  {name:<20} wall p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  p99 {lat['p99']:.2f}"
              f"   cpu p50 {lat['cpu_p50']:.2f}  p95 {lat['cpu_p95']:.2f}  p99 {lat['cpu_p99']:.2f}")
    print("\ntext_index misses (first few per query kind; not written to the JSON, which holds no "
          "catalogue text):")
    for kind in queries:
        print(f"  {kind:<10} {quality['text_index'][kind]['example_misses'][:8]}")
    for per_kind in quality.values():
        for metrics in per_kind.values():
            metrics.pop("example_misses")
    print(f"\ntext_index build {build_s:.2f} s, artifact {size / 1e6:.2f} MB")

    large = None
    if args.large_items:
        large = large_scale(titles, args.large_items, args.seed)
        print(f"\nsynthetic catalogue of {large['n_items']} items: build {large['build_s']:.1f} s, "
              f"load {large['load_s']:.2f} s, artifact {large['artifact_bytes'] / 1e6:.1f} MB, "
              f"{large['n_features']} features")
        for kind, lat in large["query_latency_ms"].items():
            print(f"  {kind:<17} wall p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  "
                  f"p99 {lat['p99']:.2f}   cpu p50 {lat['cpu_p50']:.2f}  p95 {lat['cpu_p95']:.2f}  "
                  f"p99 {lat['cpu_p99']:.2f} (ms)")

    result = {
        "dataset": "MovieLens-100K titles (recbole==1.2.1 wheel)",
        "n_items": len(titles),
        "item_text": "title + first genre",
        "k": K,
        "seed": args.seed,
        "queries": {
            "whole": "the full title",
            "prefix": "first ceil(len/2) characters of the title",
            "typo": "title with one character (any position, spaces included) dropped",
            "swap": "title with two adjacent characters swapped",
            "two_drops": "title with two characters dropped",
        },
        "hit_rule": "a result with the target's normalised title counts (duplicate ids); "
                    "*_strict_id figures require the exact id",
        "text_index_params": index.params,
        "quality": quality,
        "latency_ms_typo_queries": latency,
        "text_index_build_s": build_s,
        "text_index_artifact_bytes": size,
        "large_catalogue": large,
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": sp.__name__ and __import__("scipy").__version__,
            "scikit-learn": sklearn.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1m_at_end": os.getloadavg()[0],
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
