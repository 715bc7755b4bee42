"""``recsys data import``: a Personalize dataset export (or CSV/JSON Lines with a column map) ->
the project's canonical files.

Each given input is loaded with its schema (:mod:`recsys.schemas`) and the loaders' bad-row
rules; only when all of them load are ``events.csv``, ``items.csv`` and ``users.csv`` written to
the output folder (each through a temporary file), so a failed import leaves no half-written
dataset. The report is what the loaders counted, per file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from . import data

EVENTS_FILE = "events.csv"
ITEMS_FILE = "items.csv"
USERS_FILE = "users.csv"


def _counts(report: data.LoadReport) -> Dict[str, Any]:
    """What an items or users load reports (the event-only counts left out)."""
    return {k: v for k, v in report.to_json().items()
            if k in ("source", "rows", "bad_rows", "examples")}


def import_dataset(out_dir: data.PathLike, events: Optional[data.PathLike] = None,
                   items: Optional[data.PathLike] = None, users: Optional[data.PathLike] = None,
                   column_map: Optional[Mapping[str, str]] = None,
                   max_bad_fraction: float = data.DEFAULT_MAX_BAD_FRACTION) -> Dict[str, Any]:
    """Validate the given files and write their canonical forms under ``out_dir``.

    Args:
        out_dir: the output folder (created if needed).
        events, items, users: the interactions, items and users files or folders (any may be
            omitted, not all).
        column_map: canonical column name -> source column (:func:`recsys.schemas.parse_column_map`).
        max_bad_fraction: the loaders' bad-row threshold.

    Returns:
        ``{"out": folder, "events": {...}, "items": {...}, "users": {...}}``: per given input, the
        written file and the loader's report (rows, bad rows, examples, duplicates, ...); for
        events also the count per ``event_type`` and how many rows have an ``event_value``.

    Raises:
        DataError: an input that cannot be used (the loaders' one-line reason).
        ValueError: no input given.
    """
    if events is None and items is None and users is None:
        raise ValueError("give at least one of --events, --items, --users")
    mapping = dict(column_map or {})
    loaded_events = data.load_events(events, max_bad_fraction, column_map=mapping) if events is not None else None
    loaded_items = data.load_items(items, max_bad_fraction, column_map=mapping) if items is not None else None
    loaded_users = data.load_users(users, max_bad_fraction, column_map=mapping) if users is not None else None
    out = Path(out_dir)
    report: Dict[str, Any] = {"out": str(out)}
    if loaded_events is not None:
        path = data.write_events(loaded_events, out / EVENTS_FILE)
        report["events"] = {"file": str(path), **loaded_events.report.to_json(),
                            "event_types": dict(sorted(Counter(loaded_events.event_types.tolist()).items())),
                            "with_event_value": int(np.isfinite(loaded_events.event_values).sum())}
    if loaded_items is not None:
        path = data.write_items(loaded_items, out / ITEMS_FILE)
        report["items"] = {"file": str(path), **_counts(loaded_items.report)}
    if loaded_users is not None:
        path = data.write_users(loaded_users, out / USERS_FILE)
        report["users"] = {"file": str(path), **_counts(loaded_users.report)}
    return report


def summary_lines(report: Mapping[str, Any]) -> list:
    """One human line per imported file (what ``recsys data import`` prints on stderr)."""
    lines = []
    for kind in ("events", "items", "users"):
        part = report.get(kind)
        if not part:
            continue
        line = f"[import] {kind}: {part['rows']:,} rows -> {part['file']}"
        if part["bad_rows"]:
            line += f"; skipped {part['bad_rows']:,} bad row(s), e.g. " + "; ".join(part["examples"])
        if part.get("duplicates"):
            line += f"; dropped {part['duplicates']:,} duplicate(s)"
        lines.append(line)
    return lines
