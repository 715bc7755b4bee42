"""Loading the events and items contract (CSV with a header, or JSON Lines) into encoded arrays.

The columns of each dataset (interactions, items, users), their accepted spellings (Amazon
Personalize's ``USER_ID``, ``ITEM_ID``, ``TIMESTAMP``, ``EVENT_TYPE``, ``EVENT_VALUE``, any case) and
the column map for other names are in :mod:`recsys.schemas`; headers are mapped to the canonical
names once per file (CSV) or per distinct set of keys (JSON Lines).

Events: ``user_id``, ``item_id``, ``timestamp`` (Unix seconds or ISO-8601), optional ``event_type``,
``event_value`` (a number, NaN when absent), ``session_id``, ``weight`` and ``event_id``. The API's event log is at-least-once (a retried request
can write a row again), so rows repeating an earlier row's ``(user_id, event_id)`` are dropped, the
first kept, and counted in the report's ``duplicates``; rows without ``event_id`` are all kept.
Deletion records (``DELETE /users/{userId}``, the optional ``deletions`` channel: JSON objects
``{"userId", "deletedAt"}``) drop every row of the user received up to ``deletedAt``, including the
rows of anonymous sessions merged into the user, counted in ``deleted_rows``. Items: ``item_id``, ``title``, optional ``category`` and any further
attributes. Users: ``user_id`` and any attributes. Bad rows are counted, skipped and reported with examples; past ``max_bad_fraction``
(default 1 %) loading fails with :class:`DataError`, and so does an empty or unreadable input.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import schemas
from .batch_contract import IDENTITY_RECORD_TYPE, SESSION_OWNER_PREFIX

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_MAX_BAD_FRACTION = 0.01
MAX_EXAMPLES = 5
EVENT_REQUIRED = schemas.INTERACTIONS.required
ITEM_REQUIRED = schemas.ITEMS.required
USER_REQUIRED = schemas.USERS.required
ColumnMap = Optional[Dict[str, str]]  # canonical name -> source column (schemas.parse_column_map)
USERS_MODEL_FILE = "users.csv"  # the users table a model carries (write_users), for user features
DATA_SUFFIXES = (".csv", ".jsonl", ".json", ".ndjson", ".txt", ".gz", "")


class DataError(ValueError):
    """Input data that cannot be used; the message says which file, which row and why."""


@dataclass
class LoadReport:
    """What a loader read: rows kept, rows skipped and a few examples of why."""

    source: str
    rows: int = 0
    bad_rows: int = 0
    duplicates: int = 0  # rows dropped because an earlier row had the same (user_id, event_id)
    merged_sessions: int = 0  # anonymous sessions whose rows were read as a user's (identity records)
    deleted_rows: int = 0  # rows dropped because their user was deleted (deletion records)
    deleted_users: int = 0  # deleted users who had rows
    examples: List[str] = field(default_factory=list)

    def add_bad(self, where: str, reason: str) -> None:
        self.bad_rows += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    @property
    def bad_fraction(self) -> float:
        total = self.rows + self.bad_rows
        return self.bad_rows / total if total else 0.0

    def to_json(self) -> dict:
        return {"source": self.source, "rows": self.rows, "bad_rows": self.bad_rows,
                "duplicates": self.duplicates, "merged_sessions": self.merged_sessions,
                "deleted_rows": self.deleted_rows, "deleted_users": self.deleted_users,
                "examples": self.examples}


@dataclass
class Events:
    """Raw events in file order (ties in time keep this order)."""

    user_ids: np.ndarray  # object array of str
    item_ids: np.ndarray  # object array of str
    timestamps: np.ndarray  # float64 Unix seconds
    weights: np.ndarray  # float32
    event_types: np.ndarray  # object array of str ('' when absent)
    event_values: np.ndarray  # float64 (``event_value``; NaN when absent or empty)
    report: LoadReport

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass
class Items:
    """Item metadata in file order."""

    item_ids: List[str]
    titles: List[str]
    categories: List[str]
    attributes: List[Dict[str, str]]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass
class Users:
    """User metadata in file order: ``attributes[n]`` holds user ``user_ids[n]``'s non-empty columns."""

    user_ids: List[str]
    attributes: List[Dict[str, str]]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.user_ids)


# --- reading files ----------------------------------------------------------------------------


def _data_files(path: PathLike) -> List[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(
            f for f in p.rglob("*")
            # "_..." names are markers (the pipeline's, Hadoop's _SUCCESS), ".*" hidden files
            if f.is_file() and not f.name.startswith((".", "_")) and f.suffix.lower() in DATA_SUFFIXES
            and f.name != "manifest.json"
        )
        if not files:
            raise DataError(f"{p}: directory holds no data files (.csv, .jsonl, .json, .gz)")
        return files
    if not p.exists():
        raise DataError(f"{p}: file not found")
    return [p]


def _open_text(path: Path) -> io.TextIOBase:
    try:
        if path.suffix.lower() == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="strict", newline="")
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _renames(path: Path, keys: Sequence[str], schema: schemas.Schema,
             column_map: ColumnMap) -> Optional[Dict[str, str]]:
    """Source column -> canonical name for the columns that need renaming (``None``: none do).

    Raises:
        DataError: a column left unmapped is spelled like a canonical name another column took.
    """
    resolved = schema.resolve(keys, column_map)
    produced = set(resolved.values())
    clash = [k for k in keys if k not in resolved and k in produced]
    if clash:
        owner = next(src for src, dst in resolved.items() if dst == clash[0])
        raise DataError(f"{path}: columns {owner!r} and {clash[0]!r} both give {clash[0]}; "
                        "drop one or map the one to use")
    renames = {k: v for k, v in resolved.items() if k != v}
    return renames or None


def _mapped_names(schema: schemas.Schema, column_map: ColumnMap) -> set:
    """The normalized names a header column can be taken under: names, aliases, map sources."""
    names = {schemas.normalize(n) for col in schema.columns for n in (col.name, *col.aliases)}
    return names | {schemas.normalize(s) for s in (column_map or {}).values()}


def _never_renamed_key(key: str, schema: schemas.Schema, column_map: ColumnMap) -> bool:
    """True when :meth:`recsys.schemas.Schema.resolve` can never rename ``key``, whatever the
    other keys: it matches no column name, alias or column-map source."""
    return schemas.normalize(key) not in _mapped_names(schema, column_map)


def _never_renamed(schema: schemas.Schema, column_map: ColumnMap) -> set:
    """The canonical names (unless a column map takes one as its source): a row whose keys are
    all canonical names, or names :func:`_never_renamed_key` clears, needs no renaming."""
    sources = {schemas.normalize(s) for s in (column_map or {}).values()}
    return {n for n in schema.names if schemas.normalize(n) not in sources}


def _rows(path: Path, schema: schemas.Schema, report: LoadReport,
          column_map: ColumnMap = None) -> Iterator[Tuple[str, dict]]:
    """Yield (where, row dict) from a CSV-with-header or JSON Lines file, sniffed by content, with
    the columns ``schema`` knows under their canonical names (other columns keep theirs)."""
    required = schema.required
    handle = _open_text(path)
    try:
        try:
            head = handle.read(4096)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        handle.seek(0)
        if not head.strip():
            return
        if head.lstrip().startswith("{"):
            shapes: Dict[Tuple[str, ...], Optional[Dict[str, str]]] = {}  # keys -> renames
            plain = _never_renamed(schema, column_map)  # a row with only these keys is used as it is
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path.name} line {lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    report.add_bad(where, f"invalid JSON ({exc.msg})")
                    continue
                if not isinstance(row, dict):
                    report.add_bad(where, "a JSON line must be an object")
                    continue
                if not plain.issuperset(row):  # the fast path (one C-level pass) of the event log
                    keys = tuple(row)
                    try:
                        renames = shapes[keys]
                    except KeyError:
                        renames = shapes[keys] = _renames(path, keys, schema, column_map)
                        plain.update(k for k in keys if _never_renamed_key(k, schema, column_map))
                    if renames is not None:
                        row = {renames.get(k, k): v for k, v in row.items()}
                yield where, row
        else:
            reader = csv.DictReader(handle)
            given = [h.strip() for h in (reader.fieldnames or [])]
            renames = _renames(path, given, schema, column_map) or {}
            header = [renames.get(h, h) for h in given]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"{path}: CSV header {given} lacks required column(s) {missing}; "
                    f"expected at least {list(required)} (or Personalize's names; map others "
                    f"with a column map, e.g. {missing[0]}=<your column>)"
                )
            reader.fieldnames = header
            for lineno, row in enumerate(reader, start=2):
                where = f"{path.name} line {lineno}"
                if None in row:  # more fields than the header
                    report.add_bad(where, f"{len(header) + len(row[None])} fields, header has {len(header)}")
                    continue
                yield where, row
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    finally:
        handle.close()


def parse_timestamp(value: object) -> float:
    """Unix seconds (int/float or numeric string) or ISO-8601 -> float seconds (UTC if naive)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("missing")
    if isinstance(value, (int, float)):
        ts = float(value)
    else:
        text = str(value).strip()
        if not text:
            raise ValueError("missing")
        try:
            ts = float(text)
        except ValueError:
            iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
            try:
                dt = datetime.fromisoformat(iso)
            except ValueError:
                raise ValueError(f"{text!r} is neither Unix seconds nor ISO-8601") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            ts = dt.timestamp()
    if not math.isfinite(ts):
        raise ValueError(f"{value!r} is not a finite time")
    return ts


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _event_value(raw: object) -> Optional[float]:
    """An ``event_value`` cell -> float (NaN for blank text); ``None`` when not a finite number."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw:
            return math.nan
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _check_threshold(report: LoadReport, kind: str, max_bad_fraction: float) -> None:
    if report.rows == 0:
        detail = f" ({report.bad_rows} bad rows, e.g. {report.examples[0]})" if report.bad_rows else ""
        raise DataError(f"{report.source}: no valid {kind} rows{detail}")
    if report.bad_fraction > max_bad_fraction:
        raise DataError(
            f"{report.source}: {report.bad_rows} of {report.rows + report.bad_rows} {kind} rows are bad "
            f"({report.bad_fraction:.1%} > the {max_bad_fraction:.1%} threshold); first: "
            + "; ".join(report.examples)
        )


def load_deletions(path: Optional[PathLike]) -> Dict[str, float]:
    """The deletion records under ``path`` (the ``deletions`` channel): user id -> the latest
    ``deletedAt`` (Unix seconds). ``None`` or a missing folder: no deletions. Files that are not
    deletion records (the pipeline's marker, ``{}``) are skipped.

    Raises:
        DataError: a file that is not JSON, or a record without a user id or a valid time (a
            deletion must never be skipped silently).
    """
    out: Dict[str, float] = {}
    if path is None or not Path(path).exists():
        return out
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*.json") if p.is_file())
    for file in files:
        try:
            record = json.loads(file.read_text(encoding="utf-8") or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{file}: not a deletion record (JSON object): {exc}") from None
        if record == {}:
            continue  # the marker that keeps the prefix non-empty
        user = record.get("userId") if isinstance(record, dict) else None
        if not isinstance(user, str) or not user:
            raise DataError(f"{file}: a deletion record needs a userId")
        try:
            when = parse_timestamp(record.get("deletedAt"))
        except ValueError as exc:
            raise DataError(f"{file}: deletedAt {exc}") from None
        out[user] = max(when, out.get(user, when))
    return out


def load_events(path: PathLike, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
                deletions: Optional[Dict[str, float]] = None, column_map: ColumnMap = None) -> Events:
    """Load events from a file or a directory of files (e.g. a SageMaker channel).

    Files are read in path order (the event log's keys sort by delivery time), rows in file order.
    Identity records (``record_type: "identity"``, written by the API when an anonymous session is
    merged into a user) make every row of their ``session_owner`` a row of their ``user_id``.
    Then a row whose ``(user_id, event_id)`` an earlier row had is a duplicate: dropped and
    counted in ``report.duplicates``, not a bad row. With ``deletions`` (:func:`load_deletions`),
    a row whose user (after the identity records) was deleted at or after the row was received
    (``received_at``, else ``timestamp``) is dropped and counted in ``report.deleted_rows``.
    ``event_value`` becomes ``Events.event_values`` (NaN when absent or empty; a value that is
    not a finite number makes the row bad). ``column_map`` (canonical name -> source column, from
    :func:`recsys.schemas.parse_column_map`) names columns the schema's aliases do not cover.

    Raises:
        DataError: empty/unreadable input, missing columns, or too many bad rows.
    """
    report = LoadReport(source=str(path))
    users: List[str] = []
    items: List[str] = []
    times: List[float] = []
    weights: List[float] = []
    types: List[str] = []
    values: List[float] = []
    event_ids: List[str] = []
    received: List[float] = []
    owner_of: Dict[str, str] = {}  # anonymous session owner -> the user it was merged into
    for file in _data_files(path):
        for where, row in _rows(file, schemas.INTERACTIONS, report, column_map):
            if _text(row, "record_type") == IDENTITY_RECORD_TYPE:
                session, user = _text(row, "session_owner"), _text(row, "user_id")
                if not session.startswith(SESSION_OWNER_PREFIX) or not user or user.startswith(SESSION_OWNER_PREFIX):
                    report.add_bad(where, "identity record needs session_owner (an anonymous session) and user_id")
                    continue
                owner_of.setdefault(session, user)  # a session is merged once: the first record holds
                continue
            user, item = _text(row, "user_id"), _text(row, "item_id")
            if not user:
                report.add_bad(where, "user_id is missing")
                continue
            if not item:
                report.add_bad(where, "item_id is missing")
                continue
            try:
                ts = parse_timestamp(row.get("timestamp"))
            except ValueError as exc:
                report.add_bad(where, f"timestamp {exc}")
                continue
            raw_weight = row.get("weight")
            weight = 1.0
            if raw_weight not in (None, ""):
                try:
                    weight = float(raw_weight)
                except (TypeError, ValueError):
                    report.add_bad(where, f"weight {raw_weight!r} is not a number")
                    continue
                if not math.isfinite(weight) or weight < 0:
                    report.add_bad(where, f"weight {raw_weight!r} must be a finite number >= 0")
                    continue
            raw_value = row.get("event_value")
            value = math.nan
            if raw_value is not None and raw_value != "":
                parsed = _event_value(raw_value)
                if parsed is None:
                    report.add_bad(where, f"event_value {raw_value!r} is not a finite number")
                    continue
                value = parsed
            users.append(user)
            items.append(item)
            times.append(ts)
            weights.append(weight)
            types.append(_text(row, "event_type"))
            values.append(value)
            event_ids.append(_text(row, "event_id"))
            try:
                received.append(parse_timestamp(row["received_at"]) if row.get("received_at") not in (None, "") else ts)
            except ValueError:
                received.append(ts)
    if owner_of:
        users = [owner_of.get(u, u) for u in users]
        report.merged_sessions = len(owner_of)
    keep: List[int] = []
    seen: set = set()
    deletions = deletions or {}
    forgotten: set = set()
    for n, (user, event_id) in enumerate(zip(users, event_ids)):
        if user in deletions and received[n] <= deletions[user]:
            report.deleted_rows += 1
            forgotten.add(user)
            continue
        if event_id:
            if (user, event_id) in seen:
                report.duplicates += 1
                continue
            seen.add((user, event_id))
        keep.append(n)
    report.rows = len(keep)
    report.deleted_users = len(forgotten)
    _check_threshold(report, "event", max_bad_fraction)
    return Events(
        user_ids=np.array([users[n] for n in keep], dtype=object),
        item_ids=np.array([items[n] for n in keep], dtype=object),
        timestamps=np.array([times[n] for n in keep], dtype=np.float64),
        weights=np.array([weights[n] for n in keep], dtype=np.float32),
        event_types=np.array([types[n] for n in keep], dtype=object),
        event_values=np.array([values[n] for n in keep], dtype=np.float64),
        report=report,
    )


def load_items(path: PathLike, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
               column_map: ColumnMap = None) -> Items:
    """Load item metadata; the first row of a duplicated item id wins (later ones are bad rows).

    Columns other than ``item_id``, ``title`` and ``category`` (after the header mapping of
    :data:`recsys.schemas.ITEMS` and ``column_map``) are attributes, under their names in the file.
    """
    report = LoadReport(source=str(path))
    ids: List[str] = []
    titles: List[str] = []
    cats: List[str] = []
    attrs: List[Dict[str, str]] = []
    seen = set()
    for file in _data_files(path):
        for where, row in _rows(file, schemas.ITEMS, report, column_map):
            item = _text(row, "item_id")
            if not item:
                report.add_bad(where, "item_id is missing")
                continue
            if item in seen:
                report.add_bad(where, f"item_id {item!r} appears again")
                continue
            seen.add(item)
            ids.append(item)
            titles.append(_text(row, "title") or item)
            cats.append(_text(row, "category"))
            attrs.append({
                k: _text(row, k) for k in row
                if k not in ("item_id", "title", "category") and isinstance(k, str) and _text(row, k)
            })
            report.rows += 1
    _check_threshold(report, "item", max_bad_fraction)
    return Items(ids, titles, cats, attrs, report)


def load_users(path: PathLike, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
               column_map: ColumnMap = None) -> Users:
    """Load user metadata (:data:`recsys.schemas.USERS`): ``user_id`` and, as attributes, every
    other non-empty column under its name in the file. The first row of a user id wins; a repeat
    is a bad row.

    Raises:
        DataError: empty/unreadable input, no ``user_id`` column, or too many bad rows.
    """
    report = LoadReport(source=str(path))
    ids: List[str] = []
    attrs: List[Dict[str, str]] = []
    seen = set()
    for file in _data_files(path):
        for where, row in _rows(file, schemas.USERS, report, column_map):
            user = _text(row, "user_id")
            if not user:
                report.add_bad(where, "user_id is missing")
                continue
            if user in seen:
                report.add_bad(where, f"user_id {user!r} appears again")
                continue
            seen.add(user)
            ids.append(user)
            attrs.append({k: _text(row, k) for k in row if k != "user_id" and isinstance(k, str) and _text(row, k)})
            report.rows += 1
    _check_threshold(report, "user", max_bad_fraction)
    return Users(ids, attrs, report)


# --- writing the canonical files ----------------------------------------------------------------


def _number(value: float) -> str:
    """A float as the canonical files write it: ``10`` for 10.0, else the shortest repr."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _write_csv(path: Path, header: Sequence[str], rows: Iterator[Sequence[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def _attribute_columns(rows: Sequence[Dict[str, str]], taken: Sequence[str]) -> List[str]:
    names: Dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in taken:
                names.setdefault(key, None)
    return list(names)


def write_events(events: Events, path: PathLike) -> Path:
    """``events`` as a canonical events CSV: ``user_id,item_id,timestamp`` and, when any row has
    one, ``event_type``, ``event_value`` (empty for NaN) and ``weight``."""
    header = ["user_id", "item_id", "timestamp"]
    has_type = bool(len(events)) and any(t for t in events.event_types)
    has_value = bool(np.isfinite(events.event_values).any())
    has_weight = bool((events.weights != 1).any())
    header += [name for name, used in (("event_type", has_type), ("event_value", has_value),
                                       ("weight", has_weight)) if used]

    def rows() -> Iterator[List[str]]:
        for n in range(len(events)):
            row = [events.user_ids[n], events.item_ids[n], _number(float(events.timestamps[n]))]
            if has_type:
                row.append(events.event_types[n])
            if has_value:
                value = float(events.event_values[n])
                row.append("" if math.isnan(value) else _number(value))
            if has_weight:
                row.append(_number(float(events.weights[n])))
            yield row

    return _write_csv(Path(path), header, rows())


def write_items(items: Items, path: PathLike) -> Path:
    """``items`` as a canonical items CSV: ``item_id,title,category`` then every attribute."""
    base = list(schemas.ITEMS.names)
    extra = _attribute_columns(items.attributes, base)
    rows = ([i, t, c, *(a.get(k, "") for k in extra)]
            for i, t, c, a in zip(items.item_ids, items.titles, items.categories, items.attributes))
    return _write_csv(Path(path), base + extra, rows)


def write_users(users: Users, path: PathLike) -> Path:
    """``users`` as a canonical users CSV: ``user_id`` then every attribute (empty when absent)."""
    extra = _attribute_columns(users.attributes, ["user_id"])
    rows = ([u, *(a.get(k, "") for k in extra)] for u, a in zip(users.user_ids, users.attributes))
    return _write_csv(Path(path), ["user_id", *extra], rows)


# --- encoding ---------------------------------------------------------------------------------


@dataclass
class Sequences:
    """Events encoded as per-user, time-ordered item-index sequences over a fixed catalogue."""

    item_ids: List[str]  # index -> external id
    user_ids: List[str]
    items: List[np.ndarray]  # per user: int32 item indices, oldest first (ties keep file order)
    times: List[np.ndarray]  # per user: float64 seconds, same order
    # per user: each event's event_type (object array of str, same order); None when unknown
    types: Optional[List[np.ndarray]] = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_events(self) -> int:
        return int(sum(len(s) for s in self.items))

    def item_index(self) -> Dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}


def encode(events: Events, catalogue: Optional[Sequence[str]] = None) -> Sequences:
    """Group events by user and order each user's events by time (stable: ties keep file order).

    Args:
        events: loaded events.
        catalogue: item ids that define the item index (e.g. from the items file). Event items not in
            it are appended after it, in order of first appearance.
    """
    item_ids: List[str] = list(catalogue) if catalogue is not None else []
    index = {item: i for i, item in enumerate(item_ids)}
    item_codes = np.empty(len(events), dtype=np.int32)
    for n, item in enumerate(events.item_ids):
        code = index.get(item)
        if code is None:
            code = index[item] = len(item_ids)
            item_ids.append(item)
        item_codes[n] = code
    user_ids, first_pos, user_codes = np.unique(events.user_ids, return_index=True, return_inverse=True)
    # users in order of first appearance, so the encoding does not depend on id spelling
    appearance = np.argsort(first_pos, kind="stable")
    remap = np.empty_like(appearance)
    remap[appearance] = np.arange(len(appearance))
    user_codes = remap[user_codes.ravel()]
    order = np.lexsort((np.arange(len(events)), events.timestamps, user_codes))
    sorted_users = user_codes[order]
    bounds = np.flatnonzero(np.diff(sorted_users)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(order)]))
    seq_items = [item_codes[order[s:e]] for s, e in zip(starts, ends)]
    seq_times = [events.timestamps[order[s:e]] for s, e in zip(starts, ends)]
    seq_types = [events.event_types[order[s:e]] for s, e in zip(starts, ends)]
    return Sequences(
        item_ids=item_ids,
        user_ids=[str(u) for u in user_ids[appearance]],
        items=seq_items,
        times=seq_times,
        types=seq_types,
    )
