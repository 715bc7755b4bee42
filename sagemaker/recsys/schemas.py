"""The three input datasets (interactions, items, users), each written once.

The loaders (:mod:`recsys.data`) map a file's header with these schemas, the documentation's
"Bring your data" table is generated from them (:func:`markdown_table`; a test compares the
two), and a test checks the event columns against the PutEvents fields of the OpenAPI document.

A header column matches a schema column when its name, compared without case and without
``_``, ``-`` or spaces, is the column's name or one of its aliases: Amazon Personalize's
``USER_ID``, ``ITEM_ID``, ``TIMESTAMP``, ``EVENT_TYPE``, ``EVENT_VALUE`` and ``SESSION_ID``
work unchanged, and so do the API's ``userId``-style names. Other names are given with a
column map (:func:`parse_column_map`: ``user=customer_id,item=sku,timestamp=ts``).

This module imports nothing beyond the standard library: it runs in the SageMaker containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Column:
    """One column of a dataset.

    Attributes:
        name: the canonical (snake_case) name, the one the project's own files use.
        type: ``string``, ``float`` or ``timestamp`` (Unix seconds or ISO-8601).
        required: whether every file must have the column.
        description: what the column means and how the loader uses it.
        aliases: other accepted names (matched without case, ``_``, ``-`` or spaces).
        api_field: where the API receives the value (``Schema.property``, in the OpenAPI
            document's components), if it does.
    """

    name: str
    type: str
    required: bool
    description: str
    aliases: Tuple[str, ...] = ()
    api_field: Optional[str] = None

    @property
    def short(self) -> str:
        """The name without ``_id`` (``user`` for ``user_id``), accepted in a column map."""
        return self.name[: -len("_id")] if self.name.endswith("_id") else self.name


def normalize(name: str) -> str:
    """A header name as it is compared: lower case, without ``_``, ``-``, spaces or a BOM."""
    return "".join(ch for ch in name.strip().lower().lstrip("\ufeff") if ch not in "_- ")


@dataclass(frozen=True)
class Schema:
    """A dataset's columns; ``other_columns`` says what happens to the rest of a file's columns."""

    name: str
    columns: Tuple[Column, ...]
    other_columns: str  # "ignored" or "attributes"

    @property
    def required(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def resolve(self, header: Sequence[str], column_map: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """Header column -> canonical name, for the header columns this schema knows.

        Each canonical column takes, in this order: the source column ``column_map`` names for
        it (if the header has it), the header column spelled as the canonical name, then the
        first header column matching the name or an alias. A header column is used at most once;
        the others are left out of the result (attributes or ignored, per ``other_columns``).

        Args:
            header: the file's column names (a CSV header, or a JSON object's keys).
            column_map: canonical name -> source column name (:func:`parse_column_map`); names
                of other datasets' columns are ignored here.
        """
        out: Dict[str, str] = {}
        taken: set = set()
        normalized = [normalize(h) for h in header]
        for col in self.columns:
            source = (column_map or {}).get(col.name)
            chosen: Optional[str] = None
            if source is not None:
                chosen = next((h for h in header if h == source and h not in taken), None)
                if chosen is None:
                    chosen = next((h for h, n in zip(header, normalized)
                                   if n == normalize(source) and h not in taken), None)
            if chosen is None:
                chosen = next((h for h in header if h == col.name and h not in taken), None)
            if chosen is None:
                for wanted in (col.name, *col.aliases):
                    key = normalize(wanted)
                    chosen = next((h for h, n in zip(header, normalized) if n == key and h not in taken), None)
                    if chosen is not None:
                        break
            if chosen is not None:
                out[chosen] = col.name
                taken.add(chosen)
        return out


INTERACTIONS = Schema("interactions", (
    Column("user_id", "string", True,
           "The user. The API's log writes anonymous sessions' rows as `__session__:<sessionId>`.",
           ("USER_ID", "userId"), "PutEventsRequest.userId"),
    Column("item_id", "string", True, "The item interacted with.", ("ITEM_ID", "itemId"), "Event.itemId"),
    Column("timestamp", "timestamp", True,
           "When it happened: Unix seconds, or ISO-8601 (UTC when no offset is given).",
           ("TIMESTAMP", "sentAt"), "Event.sentAt"),
    Column("event_type", "string", False,
           "The kind of interaction (e.g. `view`, `cart`, `purchase`); empty when absent.",
           ("EVENT_TYPE", "eventType"), "Event.eventType"),
    Column("event_value", "float", False,
           "A number attached to the event (e.g. a price, a rating, a watch fraction); "
           "NaN when absent or empty, a bad row when not a finite number.",
           ("EVENT_VALUE", "eventValue"), "Event.eventValue"),
    Column("session_id", "string", False, "The client's session.", ("SESSION_ID", "sessionId"),
           "PutEventsRequest.sessionId"),
    Column("event_id", "string", False,
           "Idempotency key: a later row with the same `(user_id, event_id)` is dropped as a duplicate.",
           ("EVENT_ID", "eventId"), "Event.eventId"),
    Column("weight", "float", False, "A finite number >= 0 (default 1), checked and kept with the row; no model reads it: weigh events by type with the `event_weights` hyperparameter.", ("WEIGHT",)),
    Column("received_at", "timestamp", False,
           "When the API received the event (the log writes it); deletions cut at this time, "
           "else at `timestamp`.", ("RECEIVED_AT",)),
    Column("record_type", "string", False,
           "`identity` marks an identity record (an anonymous session merged into `user_id`), "
           "not an event.", ("RECORD_TYPE",)),
    Column("session_owner", "string", False,
           "In an identity record: the `__session__:` owner whose rows become `user_id`'s.",
           ("SESSION_OWNER",)),
), "ignored")

ITEMS = Schema("items", (
    Column("item_id", "string", True, "The item; the first row of an id wins, a repeat is a bad row.",
           ("ITEM_ID", "itemId")),
    Column("title", "string", False, "Display text, indexed for search (default: the item id).",
           ("TITLE", "NAME")),
    Column("category", "string", False,
           "The category (one value), used by the per-category cap and the candidate features.",
           ("CATEGORY", "CATEGORY_L1")),
), "attributes")

USERS = Schema("users", (
    Column("user_id", "string", True, "The user; the first row of an id wins, a repeat is a bad row.",
           ("USER_ID", "userId")),
), "attributes")

SCHEMAS: Tuple[Schema, ...] = (INTERACTIONS, ITEMS, USERS)

# PutEvents fields the API writes to the event log that training does not read.
LOGGED_NOT_LOADED: Tuple[str, ...] = (
    "PutEventsRequest.trackingId", "Event.properties", "Event.recommendationId", "Event.impression",
    "Event.metricAttribution",
)


def parse_column_map(text: Optional[str]) -> Dict[str, str]:
    """``"user=customer_id,item=sku,timestamp=ts"`` -> ``{"user_id": "customer_id", ...}``.

    The left side names a column of any dataset: its canonical name, its name without ``_id``
    or an alias (case-insensitive); the right side is the column in the file.

    Raises:
        ValueError: a pair without ``=``, an empty side, an unknown column or one named twice.
    """
    out: Dict[str, str] = {}
    if not text or not text.strip():
        return out
    known: Dict[str, str] = {}
    for schema in SCHEMAS:
        for col in schema.columns:
            for name in (col.name, col.short, *col.aliases):
                known.setdefault(normalize(name), col.name)
    for pair in text.split(","):
        if not pair.strip():
            continue
        if "=" not in pair:
            raise ValueError(f"column map: {pair.strip()!r} is not column=source_column")
        target, source = (s.strip() for s in pair.split("=", 1))
        if not target or not source:
            raise ValueError(f"column map: {pair.strip()!r} has an empty side")
        canonical = known.get(normalize(target))
        if canonical is None:
            names = sorted({c.name for s in SCHEMAS for c in s.columns})
            raise ValueError(f"column map: unknown column {target!r}; known: {', '.join(names)}")
        if canonical in out:
            raise ValueError(f"column map: {canonical} is mapped twice")
        out[canonical] = source
    return out


def format_column_map(column_map: Mapping[str, str]) -> str:
    """The inverse of :func:`parse_column_map` (canonical names on the left)."""
    return ",".join(f"{k}={v}" for k, v in column_map.items())


def markdown_table(schema: Schema) -> str:
    """The schema as a Markdown table (the one docs/ML.md shows under "Bring your data")."""
    lines = ["| column | type | required | also accepted | description |", "| --- | --- | --- | --- | --- |"]
    for col in schema.columns:
        aliases = ", ".join(f"`{a}`" for a in col.aliases) or "-"
        lines.append(f"| `{col.name}` | {col.type} | {'yes' if col.required else 'no'} | {aliases} | "
                     f"{col.description} |")
    return "\n".join(lines)


def all_names(schemas: Iterable[Schema] = SCHEMAS) -> List[str]:
    """Every canonical column name, once, in schema order."""
    seen: List[str] = []
    for schema in schemas:
        for name in schema.names:
            if name not in seen:
                seen.append(name)
    return seen
