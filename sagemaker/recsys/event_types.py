"""Event types that mean something: per-type weights, the event-value threshold and the ranker's
target types (hyperparameters ``event_weights``, ``event_value_threshold``, ``target_event_types``).

* ``event_weights``: a JSON object (``{"view": 1, "cart": 3, "purchase": 5}``) or ``type:weight``
  pairs (``view:1,cart:3,purchase:5``); weights are finite numbers >= 0. An event whose type is not
  listed weighs :data:`DEFAULT_EVENT_WEIGHT` (1), or the weight of the key ``*`` when given.
  Unset (the default): every event weighs 1, which is the unweighted model.
* ``event_value_threshold``: events whose ``event_value`` is below it are dropped before training
  (Personalize's ``eventValueThreshold``: only events with a value >= the threshold are used);
  events without a value are kept. Unset: no event is dropped.
* ``target_event_types``: a JSON list or comma-separated types (``purchase``); the ranker learns to
  predict the user's events of these types from the history before them. Unset: any event.

The weight of an event multiplies its contribution to every count stage 1 makes: popularity and
trend add the event's weight instead of 1; a co-occurrence count ``C[a, b]`` (the embeddings'
PPMI, the co-visitation and item-kNN graphs) adds, for each occurrence of ``b`` near ``a``, the
weight of the event on ``b``; EASE's user-item matrix holds the largest weight of the user's
events on the item instead of 1. The query (a history's recency weights) does not read event
types: the history the endpoint is sent (DynamoDB's ``recentItems``) carries none, and offline
and online queries stay the same.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

DEFAULT_EVENT_WEIGHT = 1.0
DEFAULT_KEY = "*"


def _number(name: str, event_type: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{name}: the weight of event type {event_type!r} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: the weight of event type {event_type!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: the weight of event type {event_type!r} must be a finite number >= 0, got {raw!r}")
    return value


def parse_event_weights(raw: Any, name: str = "event_weights") -> Dict[str, float]:
    """``event_weights`` (JSON object, ``type:weight,...`` pairs, or a mapping) -> {type: weight}.

    Raises:
        ValueError: naming ``name``, for a malformed spec, a repeated type or a bad weight.
    """
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        pairs: List[Tuple[str, Any]] = [(str(k), v) for k, v in raw.items()]
    else:
        text = str(raw).strip()
        if not text:
            return {}
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{name}: not a JSON object ({exc.msg}): {text!r}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{name}: expected a JSON object of event type -> weight, got {text!r}")
            pairs = [(str(k), v) for k, v in obj.items()]
        else:
            pairs = []
            for part in text.split(","):
                if not part.strip():
                    continue
                if ":" not in part:
                    raise ValueError(f"{name}: expected type:weight pairs separated by commas "
                                     f"(e.g. view:1,cart:3,purchase:5), got {part.strip()!r}")
                key, value = part.rsplit(":", 1)
                pairs.append((key.strip(), value.strip()))
    out: Dict[str, float] = {}
    for key, value in pairs:
        key = key.strip()
        if key in out:
            raise ValueError(f"{name}: event type {key!r} is given twice")
        out[key] = _number(name, key, value)
    return out


def format_event_weights(weights: Mapping[str, float]) -> str:
    """The canonical spelling (a JSON object with sorted keys): what the artifact records."""
    return json.dumps({k: float(v) for k, v in sorted(weights.items())}, sort_keys=True) if weights else ""


def canonical_event_weights(raw: Any) -> str:
    """Validate ``event_weights`` and return its canonical spelling ("" = unset)."""
    return format_event_weights(parse_event_weights(raw))


def parse_event_types(raw: Any, name: str = "target_event_types") -> Tuple[str, ...]:
    """``target_event_types`` (JSON list, comma-separated text, or a sequence) -> sorted types.

    Raises:
        ValueError: naming ``name``, for a malformed list or an empty type.
    """
    if raw is None:
        return ()
    if isinstance(raw, (list, tuple, set, frozenset)):
        values = list(raw)
    else:
        text = str(raw).strip()
        if not text:
            return ()
        if text.startswith("["):
            try:
                values = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{name}: not a JSON list ({exc.msg}): {text!r}") from None
            if not isinstance(values, list):
                raise ValueError(f"{name}: expected a JSON list of event types, got {text!r}")
        else:
            values = text.split(",")
    out = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: event types must be non-empty strings, got {value!r} in {raw!r}")
        out.append(value.strip())
    return tuple(sorted(set(out)))


def canonical_event_types(raw: Any) -> str:
    """Validate ``target_event_types`` and return its canonical spelling ("" = any event)."""
    return ",".join(parse_event_types(raw))


def parse_threshold(raw: Any, name: str = "event_value_threshold") -> Optional[float]:
    """``event_value_threshold`` -> a finite float, or None for unset (``None``, "", "none").

    Raises:
        ValueError: naming ``name``, for a value that is not a finite number.
    """
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "null")):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"{name}: must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {raw!r}")
    return value


def event_weight_array(types: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    """Per event, its type's weight (float32), unlisted types the default weight."""
    default = float(weights.get(DEFAULT_KEY, DEFAULT_EVENT_WEIGHT))
    types = np.asarray(types, dtype=object)
    out = np.full(len(types), default, np.float32)
    for event_type, weight in weights.items():
        if event_type != DEFAULT_KEY:
            out[types == event_type] = weight
    return out


def sequence_weights(types: Optional[Sequence[np.ndarray]], spec: str) -> Optional[List[np.ndarray]]:
    """Per user, the weights of their events under ``spec`` (an ``event_weights`` value); None
    when every event weighs 1 (nothing to weight: the unweighted code path, bit for bit).

    Raises:
        ValueError: weights given but the sequences carry no event types, or every event weighs 0.
    """
    weights = parse_event_weights(spec)
    if not weights or all(w == 1.0 for w in weights.values()):
        return None
    if types is None:
        raise ValueError("event_weights is set but these sequences carry no event types")
    out = [event_weight_array(t, weights) for t in types]
    if out and not any(float(w.sum()) > 0 for w in out):
        raise ValueError(f"event_weights {spec} gives every event of the data weight 0")
    return out


def drop_below_threshold(events, threshold: Optional[float]):
    """``events`` without the rows whose ``event_value`` is below ``threshold`` (rows without a
    value are kept); the same object when there is no threshold.

    Raises:
        ValueError: a threshold is set but the events carry no values, or no event is left.
    """
    if threshold is None:
        return events
    values = getattr(events, "event_values", None)
    if values is None:
        raise ValueError("event_value_threshold is set but the events carry no event_value column")
    values = np.asarray(values, np.float64)
    keep = ~(values < threshold)  # NaN (no value) compares False: kept
    if not keep.any():
        raise ValueError(f"event_value_threshold {threshold:g} drops every event")
    if keep.all():
        return events
    import dataclasses

    changes = {f.name: getattr(events, f.name)[keep] for f in dataclasses.fields(events)
               if isinstance(getattr(events, f.name), np.ndarray) and len(getattr(events, f.name)) == len(keep)}
    return dataclasses.replace(events, **changes)
