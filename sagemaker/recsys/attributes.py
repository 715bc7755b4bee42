"""Item and user attributes as ranker features: the encoding contract (docs/ML.md, "Item and user metadata").

An :class:`AttributeEncoder` is fitted on the attribute rows of one kind of entity (items or
users) and decides, per attribute:

* **numeric** when every present value parses as a finite number: ``t = sign(v) * log1p(|v|)``,
  clipped to the 1st-99th percentile of ``t`` over the fitted rows, then standardised with the
  clipped values' mean and standard deviation. A missing value encodes as 0 (the mean) and, when
  the fitted rows had missing values, a ``<name>.missing`` column is 1.
* **categorical** otherwise: the value (or the ``|``-separated values, Personalize's multi-value
  form) one-hot over the ``max_values`` (20) most frequent values seen in at least two rows
  (ties by value), with every other value in ``<name>=__other__``; missing is all zeros.
* **skipped**, with the reason in :attr:`AttributeEncoder.skipped` (and the training log): an
  attribute missing in more than ``max_missing`` (90 %) of the rows, with a single value, numeric
  but constant after clipping, or categorical whose kept values cover under half of the rows
  that have one (an id or free text); and past the budgets of ``max_attributes`` (50) attributes
  and ``max_columns`` (128) columns per side, in name order (the encoded table lives in the
  endpoint's memory: entities x columns x 4 bytes).

Missing means absent, empty, or one of ``nan``, ``null``, ``none``, ``n/a`` (any case).

:class:`Metadata` turns the fitted encoders into ranker columns appended after
:data:`recsys.candidates.FEATURES`: ``item.*`` (the candidate's attributes), ``affinity.<a>``
(the recency-weighted share of the history's items that share the candidate's value of the
categorical item attribute ``a``), ``user.*`` (the requesting user's attributes, with
``user.unknown`` when the user has no row), ``match.<a>`` (a categorical attribute of the same
name on both sides shares a value), ``product.<a>`` (a numeric attribute of the same name on both
sides: the product of the standardised values) and ``match.category~<b>`` (the candidate's
category is one of the values of the user's categorical attribute ``b``). The same object builds
these columns in training, in evaluation and in the endpoint; it is saved as ``attributes.json``
(plain JSON: the encoders and the raw values of the kept attributes, re-encoded on load).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

NUMERIC = "numeric"
CATEGORICAL = "categorical"
OTHER = "__other__"
MAX_VALUES = 20
MIN_VALUE_ROWS = 2
MAX_MISSING = 0.9
MIN_COVERAGE = 0.5
MAX_ATTRIBUTES = 50
MAX_COLUMNS = 128  # per side: the encoded matrix is (entities x columns) float32 in the endpoint's memory
MAX_USERS = 200_000
SEPARATOR = "|"
MISSING_TOKENS = frozenset({"", "nan", "null", "none", "n/a"})
FORMAT = 1
FILE = "attributes.json"

Log = Callable[[str], None]
Row = Mapping[str, Any]


def _present(value: Any) -> Optional[str]:
    """The value as stripped text, or None when it counts as missing."""
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value).strip()
    return None if text.lower() in MISSING_TOKENS else text


def _number(text: str) -> Optional[float]:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _squash(v: float) -> float:
    return math.copysign(math.log1p(abs(v)), v)


def _values(text: str) -> List[str]:
    return [p.strip() for p in text.split(SEPARATOR) if p.strip()]


@dataclass
class AttributeSpec:
    """How one attribute is encoded (see the module docstring)."""

    name: str
    kind: str
    values: List[str] = field(default_factory=list)  # categorical: the kept values
    other: bool = False  # categorical: an __other__ column
    missing: bool = False  # numeric: a .missing column
    lo: float = 0.0  # numeric: clip bounds of the squashed value, then (t - center) / scale
    hi: float = 0.0
    center: float = 0.0
    scale: float = 1.0

    def columns(self) -> List[str]:
        if self.kind == NUMERIC:
            return [self.name] + ([f"{self.name}.missing"] if self.missing else [])
        return [f"{self.name}={v}" for v in self.values] + ([f"{self.name}={OTHER}"] if self.other else [])

    def encode(self, raw: Any, out: np.ndarray) -> None:
        """Write this attribute's columns for one raw value into ``out`` (zeros on entry)."""
        text = _present(raw)
        if self.kind == NUMERIC:
            v = _number(text) if text is not None else None
            if v is None:
                if self.missing:
                    out[1] = 1.0
                return
            t = min(max(_squash(v), self.lo), self.hi)
            out[0] = (t - self.center) / self.scale
            return
        if text is None:
            return
        position = {v: n for n, v in enumerate(self.values)}
        for value in _values(text):
            n = position.get(value)
            if n is not None:
                out[n] = 1.0
            elif self.other:
                out[len(self.values)] = 1.0

    def kept(self, raw: Any) -> List[str]:
        """Categorical: the kept values of one raw value."""
        text = _present(raw)
        if text is None:
            return []
        keep = set(self.values)
        return [v for v in _values(text) if v in keep]

    def to_json(self) -> Dict[str, Any]:
        if self.kind == NUMERIC:
            return {"name": self.name, "kind": NUMERIC, "missing": self.missing, "lo": self.lo, "hi": self.hi,
                    "center": self.center, "scale": self.scale}
        return {"name": self.name, "kind": CATEGORICAL, "values": list(self.values), "other": self.other}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttributeSpec:
        if data.get("kind") == NUMERIC:
            return cls(str(data["name"]), NUMERIC, missing=bool(data["missing"]), lo=float(data["lo"]),
                       hi=float(data["hi"]), center=float(data["center"]), scale=float(data["scale"]))
        if data.get("kind") == CATEGORICAL:
            return cls(str(data["name"]), CATEGORICAL, values=[str(v) for v in data["values"]],
                       other=bool(data["other"]))
        raise ValueError(f"attribute {data.get('name')!r}: unknown kind {data.get('kind')!r}")


def _fit_one(name: str, raw: Sequence[Any], max_values: int, max_missing: float
             ) -> Tuple[Optional[AttributeSpec], str]:
    """One attribute's spec, or (None, why it is skipped)."""
    n = len(raw)
    present = [t for t in (_present(v) for v in raw) if t is not None]
    missing_fraction = 1.0 - len(present) / n if n else 1.0
    if missing_fraction > max_missing:
        return None, f"missing in {missing_fraction:.0%} of rows (more than {max_missing:.0%})"
    distinct = set(present)
    if len(distinct) < 2:
        return None, f"a single value ({next(iter(distinct))!r})" if distinct else "no values"
    numbers = [_number(t) for t in present]
    if all(v is not None for v in numbers):
        t = np.array([_squash(float(v)) for v in numbers if v is not None], np.float64)
        lo, hi = (float(q) for q in np.percentile(t, [1, 99]))
        clipped = np.clip(t, lo, hi)
        scale = float(clipped.std())
        if scale < 1e-9:
            return None, "numeric but constant once clipped to its 1st-99th percentile"
        return AttributeSpec(name, NUMERIC, missing=len(present) < n, lo=lo, hi=hi,
                             center=float(clipped.mean()), scale=scale), ""
    rows_with: Dict[str, int] = {}
    for text in present:
        for value in set(_values(text)):
            rows_with[value] = rows_with.get(value, 0) + 1
    ranked = sorted((v for v, c in rows_with.items() if c >= MIN_VALUE_ROWS), key=lambda v: (-rows_with[v], v))
    values = ranked[:max_values]
    keep = set(values)
    covered = sum(1 for text in present if keep.intersection(_values(text)))
    coverage = covered / len(present)
    if coverage < MIN_COVERAGE:
        return None, (f"{len(rows_with):,} distinct values, the {len(values)} kept ones cover {coverage:.0%} of "
                      f"the rows that have one (under {MIN_COVERAGE:.0%}: an id or free text?)")
    other = any(v not in keep for v in rows_with)
    return AttributeSpec(name, CATEGORICAL, values=values, other=other), ""


class AttributeEncoder:
    """Fitted per-attribute specs of one entity kind; columns are ``<prefix>.<column>``."""

    def __init__(self, prefix: str, specs: Sequence[AttributeSpec], skipped: Optional[Mapping[str, str]] = None) -> None:
        self.prefix = prefix
        self.specs = list(specs)
        self.skipped: Dict[str, str] = dict(skipped or {})
        self.by_name = {s.name: s for s in self.specs}
        self.slices: Dict[str, slice] = {}
        start = 0
        for s in self.specs:
            width = len(s.columns())
            self.slices[s.name] = slice(start, start + width)
            start += width
        self.width = start

    @classmethod
    def fit(cls, rows: Sequence[Row], prefix: str, max_values: int = MAX_VALUES, max_missing: float = MAX_MISSING,
            max_attributes: int = MAX_ATTRIBUTES, exclude: Sequence[str] = (),
            max_columns: int = MAX_COLUMNS) -> AttributeEncoder:
        """Decide each attribute's encoding from ``rows`` (one mapping per entity, missing keys = missing).

        Raises:
            ValueError: ``max_values`` < 1 or ``max_missing`` outside [0, 1].
        """
        if max_values < 1:
            raise ValueError(f"max_values must be at least 1, got {max_values}")
        if not 0.0 <= max_missing <= 1.0:
            raise ValueError(f"max_missing must be in [0, 1], got {max_missing}")
        names = sorted({k for r in rows for k in r if isinstance(k, str) and k not in exclude})
        specs: List[AttributeSpec] = []
        skipped: Dict[str, str] = {}
        width = 0
        for name in names:
            spec, why = _fit_one(name, [r.get(name) for r in rows], max_values, max_missing)
            if spec is None:
                skipped[name] = why
            elif len(specs) >= max_attributes:
                skipped[name] = f"more than {max_attributes} usable attributes (names sorted, the first kept)"
            elif width + len(spec.columns()) > max_columns:
                skipped[name] = (f"its {len(spec.columns())} columns would pass the budget of {max_columns} "
                                 "columns per side (names sorted, the first kept)")
            else:
                specs.append(spec)
                width += len(spec.columns())
        return cls(prefix, specs, skipped)

    @property
    def feature_names(self) -> List[str]:
        return [f"{self.prefix}.{c}" for s in self.specs for c in s.columns()]

    def transform(self, rows: Sequence[Row]) -> np.ndarray:
        """``(len(rows), width)`` float32 columns."""
        out = np.zeros((len(rows), self.width), np.float32)
        for n, row in enumerate(rows):
            for s in self.specs:
                if s.name in row:
                    s.encode(row[s.name], out[n, self.slices[s.name]])
                elif s.kind == NUMERIC and s.missing:
                    out[n, self.slices[s.name].start + 1] = 1.0
        return out

    def describe(self) -> List[str]:
        """One line per attribute: how it is encoded or why it is skipped (for the training log)."""
        lines = []
        for s in self.specs:
            how = (f"numeric (log1p, clipped, standardised{', missing indicator' if s.missing else ''})"
                   if s.kind == NUMERIC else
                   f"categorical ({len(s.values)} value(s){' + other' if s.other else ''})")
            lines.append(f"{self.prefix}.{s.name}: {how}")
        lines += [f"{self.prefix}.{name}: skipped, {why}" for name, why in sorted(self.skipped.items())]
        return lines

    def to_json(self) -> Dict[str, Any]:
        return {"prefix": self.prefix, "specs": [s.to_json() for s in self.specs], "skipped": self.skipped}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttributeEncoder:
        return cls(str(data["prefix"]), [AttributeSpec.from_json(s) for s in data["specs"]], data.get("skipped"))


def _kept_rows(encoder: AttributeEncoder, rows: Sequence[Row]) -> List[Dict[str, str]]:
    """The raw values of the encoder's attributes only (what the artifact stores)."""
    names = [s.name for s in encoder.specs]
    out = []
    for row in rows:
        kept = {}
        for name in names:
            text = _present(row.get(name))
            if text is not None:
                kept[name] = text
        out.append(kept)
    return out


class Metadata:
    """Attribute columns for the ranker: built per candidate list, the same online and offline.

    Args:
        item_encoder: fitted on the items' attribute rows, or None.
        item_rows: per catalogue index, the item's raw attributes (``{}`` when unknown).
        item_categories: per catalogue index, the item's category (for ``match.category~*``).
        user_encoder: fitted on the users' attribute rows, or None.
        user_ids, user_rows: the users' ids and raw attributes (the table shipped with the model).
    """

    def __init__(self, item_encoder: Optional[AttributeEncoder], item_rows: Sequence[Row],
                 item_categories: Sequence[str], user_encoder: Optional[AttributeEncoder] = None,
                 user_ids: Sequence[str] = (), user_rows: Sequence[Row] = ()) -> None:
        if item_encoder is not None and not item_encoder.specs:
            item_encoder = None
        if user_encoder is not None and not user_encoder.specs:
            user_encoder = None
        if len(user_ids) != len(user_rows):
            raise ValueError(f"{len(user_ids)} user ids but {len(user_rows)} user rows")
        self.item_encoder, self.user_encoder = item_encoder, user_encoder
        self.item_categories = list(item_categories)
        self.item_rows = _kept_rows(item_encoder, item_rows) if item_encoder else [{} for _ in self.item_categories]
        self.user_ids = list(user_ids) if user_encoder else []
        self.user_rows = _kept_rows(user_encoder, user_rows) if user_encoder else []
        self.user_index = {u: n for n, u in enumerate(self.user_ids)}
        n_items = len(self.item_categories)
        if len(self.item_rows) != n_items:
            raise ValueError(f"{len(self.item_rows)} item rows for a catalogue of {n_items} items")
        self.item_matrix = item_encoder.transform(self.item_rows) if item_encoder else np.zeros((n_items, 0), np.float32)
        # affinity: the categorical item attributes' kept-value columns
        self.affinity: List[Tuple[str, slice]] = []
        if item_encoder:
            for s in item_encoder.specs:
                if s.kind == CATEGORICAL:
                    sl = item_encoder.slices[s.name]
                    self.affinity.append((s.name, slice(sl.start, sl.start + len(s.values))))
        self.user_width = user_encoder.width if user_encoder else 0
        self.user_matrix = user_encoder.transform(self.user_rows) if user_encoder else np.zeros((0, 0), np.float32)
        self.no_user = user_encoder.transform([{}])[0] if user_encoder else np.zeros(0, np.float32)
        # crosses: (name, item-side (n_items, m) matrix, user-side (n_users, m) matrix, the same for no user, kind)
        self.crosses: List[Tuple[str, np.ndarray, np.ndarray, np.ndarray, str]] = []
        if item_encoder and user_encoder:
            for s in item_encoder.specs:
                u = user_encoder.by_name.get(s.name)
                if u is None or u.kind != s.kind:
                    continue
                isl, usl = item_encoder.slices[s.name], user_encoder.slices[s.name]
                if s.kind == NUMERIC:
                    self.crosses.append((f"product.{s.name}", self.item_matrix[:, isl.start:isl.start + 1],
                                         self.user_matrix[:, usl.start:usl.start + 1],
                                         self.no_user[usl.start:usl.start + 1], "product"))
                    continue
                shared = sorted(set(s.values) & set(u.values))
                if shared:
                    ipos = [isl.start + s.values.index(v) for v in shared]
                    upos = [usl.start + u.values.index(v) for v in shared]
                    self.crosses.append((f"match.{s.name}", self.item_matrix[:, ipos], self.user_matrix[:, upos],
                                         self.no_user[upos], "match"))
        if user_encoder:
            categories = sorted(set(self.item_categories) - {""})
            for u in user_encoder.specs:
                shared = sorted(set(u.values) & set(categories)) if u.kind == CATEGORICAL else []
                if not shared:
                    continue
                item_side = np.array([[1.0 if c == v else 0.0 for v in shared] for c in self.item_categories],
                                     np.float32).reshape(n_items, len(shared))
                usl = user_encoder.slices[u.name]
                upos = [usl.start + u.values.index(v) for v in shared]
                self.crosses.append((f"match.category~{u.name}", item_side, self.user_matrix[:, upos],
                                     self.no_user[upos], "match"))

    @property
    def feature_names(self) -> List[str]:
        names: List[str] = []
        if self.item_encoder:
            names += self.item_encoder.feature_names
            names += [f"affinity.{name}" for name, _ in self.affinity]
        if self.user_encoder:
            names += [*self.user_encoder.feature_names, "user.unknown"]
        names += [c[0] for c in self.crosses]
        return names

    @property
    def width(self) -> int:
        return len(self.feature_names)

    def columns(self, items: np.ndarray, user_id: Optional[str], window: np.ndarray,
                window_weights: np.ndarray) -> np.ndarray:
        """``(len(items), width)`` columns for one request: candidates ``items`` (catalogue indices)
        of the user ``user_id`` (None or unknown: ``user.unknown`` = 1) whose recent history is
        ``window`` with recency weights ``window_weights``."""
        items = np.asarray(items, np.int64)
        n = len(items)
        parts: List[np.ndarray] = []
        if self.item_encoder:
            parts.append(self.item_matrix[items])
            total = float(np.sum(window_weights)) if len(window) else 0.0
            for _, sl in self.affinity:
                if total <= 0:
                    parts.append(np.zeros((n, 1), np.float32))
                    continue
                profile = (window_weights @ self.item_matrix[np.asarray(window, np.int64), sl]) / total
                parts.append((self.item_matrix[items, sl] * profile[None, :]).max(axis=1, initial=0.0)[:, None])
        row = self.user_index.get(user_id) if user_id is not None else None
        if self.user_encoder:
            user = self.user_matrix[row] if row is not None else self.no_user
            parts.append(np.broadcast_to(user, (n, self.user_width)))
            parts.append(np.full((n, 1), 0.0 if row is not None else 1.0, np.float32))
        for _, item_side, user_side, no_user, kind in self.crosses:
            u = user_side[row] if row is not None else no_user
            values = item_side[items] * u[None, :]
            parts.append((values.sum(axis=1) if kind == "product" else (values > 0).any(axis=1))[:, None])
        if not parts:
            return np.zeros((n, 0), np.float32)
        return np.concatenate([p.astype(np.float32, copy=False) for p in parts], axis=1)

    # --- persistence ---------------------------------------------------------------------------

    def to_json(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "items": None if self.item_encoder is None else {
                "encoder": self.item_encoder.to_json(), "rows": self.item_rows},
            "users": None if self.user_encoder is None else {
                "encoder": self.user_encoder.to_json(), "user_ids": self.user_ids, "rows": self.user_rows},
        }

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), separators=(",", ":")))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], item_categories: Sequence[str]) -> Metadata:
        if data.get("format") != FORMAT:
            raise ValueError(f"attributes format {data.get('format')!r}, this code reads {FORMAT}")
        items, users = data.get("items"), data.get("users")
        item_encoder = AttributeEncoder.from_json(items["encoder"]) if items else None
        user_encoder = AttributeEncoder.from_json(users["encoder"]) if users else None
        return cls(item_encoder, items["rows"] if items else [{} for _ in item_categories], item_categories,
                   user_encoder, users["user_ids"] if users else (), users["rows"] if users else ())

    @classmethod
    def load(cls, path, item_categories: Sequence[str]) -> Metadata:
        return cls.from_json(json.loads(Path(path).read_text()), item_categories)

    @property
    def empty(self) -> bool:
        return self.width == 0


def fit_metadata(item_ids: Sequence[str], item_categories: Sequence[str],
                 item_attributes: Optional[Mapping[str, Row]] = None,
                 user_attributes: Optional[Mapping[str, Row]] = None,
                 users_first: Sequence[str] = (), max_values: int = MAX_VALUES, max_missing: float = MAX_MISSING,
                 max_users: int = MAX_USERS, log: Log = print) -> Optional[Metadata]:
    """Fit the encoders on the catalogue's item attributes and the users' attributes.

    Args:
        item_ids, item_categories: the catalogue, in index order.
        item_attributes: item id -> raw attributes (title and category excluded); None = none.
        user_attributes: user id -> raw attributes; None = none.
        users_first: user ids to keep first in the shipped table (those with events), the rest
            follow in id order up to ``max_users``.

    Returns:
        The metadata, or None when no attribute is usable (the ranker's features stay as they are).
    """
    item_encoder = user_encoder = None
    item_rows: List[Row] = [{} for _ in item_ids]
    if item_attributes:
        item_rows = [item_attributes.get(i, {}) for i in item_ids]
        item_encoder = AttributeEncoder.fit(item_rows, "item", max_values, max_missing)
        for line in item_encoder.describe():
            log(f"[attributes] {line}")
    user_ids: List[str] = []
    user_rows: List[Row] = []
    if user_attributes:
        order = [u for u in dict.fromkeys(users_first) if u in user_attributes]
        listed = set(order)
        order += sorted(u for u in user_attributes if u not in listed)
        if len(order) > max_users:
            log(f"[attributes] {len(order) - max_users:,} of {len(order):,} users with attributes left out of "
                f"the model's user table (max_users={max_users:,}); they are served as unknown users")
            order = order[:max_users]
        user_ids = order
        user_rows = [user_attributes[u] for u in order]
        user_encoder = AttributeEncoder.fit(user_rows, "user", max_values, max_missing)
        for line in user_encoder.describe():
            log(f"[attributes] {line}")
    metadata = Metadata(item_encoder, item_rows, item_categories, user_encoder, user_ids, user_rows)
    if metadata.empty:
        return None
    log(f"[attributes] {metadata.width} ranker feature(s) from attributes: "
        + ", ".join(metadata.feature_names[:12]) + (" ..." if metadata.width > 12 else ""))
    return metadata
