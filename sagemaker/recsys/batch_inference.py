"""Batch inference in Amazon Personalize's batch shapes: input lines in, output lines out.

One pure function, :func:`transform_lines`, serves both ways of running a batch: the
``recsys batch-inference`` command (local files) and SageMaker Batch Transform (``inference.py``
answers an ``application/jsonlines`` request with it). No AWS imports.

Input lines (JSON Lines, one object a line), by job:

- ``users`` (Personalize's USER_PERSONALIZATION): ``{"userId": "u1"}``
- ``items`` (RELATED_ITEMS): ``{"itemId": "i1"}``
- ``ranking`` (PERSONALIZED_RANKING): ``{"userId": "u1", "itemList": ["i1", "i2"]}``

Output lines, one per input line and in the same order::

    {"input": {"userId": "u1"}, "output": {"recommendedItems": ["i3", ...], "scores": [0.91, ...]},
     "error": null}

A line that cannot be answered keeps its place with ``"output": {"recommendedItems": []}`` and
an ``error`` string; the batch goes on. As in Personalize, a user or item the model has never
seen is not an error: it gets the popular items (the cold-start answer), and ranking puts the
unknown items of ``itemList`` last with score 0.

Histories: the endpoint gets a user's history from the API, which reads the users table in
DynamoDB. A Batch Transform container is network-isolated and reads nothing but its model, so a
batch uses the histories the model was trained on: training writes ``histories.jsonl`` (the
last ``MAX_RECENT_ITEMS`` items of each user, as loaded into the users table) into the model
directory. Events a user sent after that training are not seen by the batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from . import protocol
from .batch_contract import MAX_RECENT_ITEMS
from .protocol import InvalidRequest

JOBS = ("users", "items", "ranking")
REQUIRED_FIELDS = {"users": ("userId",), "items": ("itemId",), "ranking": ("userId", "itemList")}
DEFAULT_NUM_RESULTS = 25  # Personalize's default numResults
MAX_NUM_RESULTS = protocol.MAX_K  # 500, Personalize's maximum too
HISTORIES_FILE = "histories.jsonl"
MAX_ID_CHARS = 256  # Personalize's userId / itemId length limit
# the container's environment (the transform job's Environment) selects the job
ENV_JOB = "RECSYS_BATCH_JOB"
ENV_NUM_RESULTS = "RECSYS_BATCH_NUM_RESULTS"
Histories = Mapping[str, Sequence[str]]


def check_job(job: Any) -> str:
    """``job`` if it is one of :data:`JOBS`.

    Raises:
        ValueError: Another value; the message lists the allowed ones.
    """
    if job not in JOBS:
        raise ValueError(f"job must be one of {', '.join(JOBS)}; got {job!r}")
    return str(job)


def check_num_results(value: Any) -> int:
    """``numResults`` as an int in 1..:data:`MAX_NUM_RESULTS` (a numeric string is accepted).

    Raises:
        ValueError: Not an integer in range.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUM_RESULTS:
        raise ValueError(f"numResults must be an integer between 1 and {MAX_NUM_RESULTS}; got {value!r}")
    return value


def write_histories(user_ids: Sequence[str], item_ids: Sequence[str], sequences: Sequence[Any],
                    model_dir: Union[str, Path]) -> Path:
    """Write ``histories.jsonl`` into ``model_dir``: each user's last ``MAX_RECENT_ITEMS`` items.

    Args:
        user_ids: The users, in the order of ``sequences``.
        item_ids: Item index -> external id (the model's catalogue order).
        sequences: Per user, the item indices oldest first (``Sequences.items``).
        model_dir: The model directory.

    Returns:
        The file written.
    """
    path = Path(model_dir) / HISTORIES_FILE
    with open(path, "w", encoding="utf-8") as f:
        for user, seq in zip(user_ids, sequences):
            recent = [item_ids[int(i)] for i in list(seq)[-MAX_RECENT_ITEMS:]]
            f.write(json.dumps({"userId": user, "recentItems": recent}, separators=(",", ":")) + "\n")
    return path


def load_histories(path: Union[str, Path]) -> Dict[str, List[str]]:
    """Read a histories file: ``histories.jsonl`` of a model, or a pipeline's ``batch/users.jsonl``
    (both have ``userId`` and ``recentItems``, oldest first). A missing file is no histories.

    Raises:
        ValueError: A line is not a JSON object with a string ``userId`` and a list ``recentItems``.
    """
    p = Path(path)
    if not p.exists():
        return {}
    out: Dict[str, List[str]] = {}
    with open(p, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{p} line {number}: not JSON ({exc})") from None
            if not isinstance(row, dict) or not isinstance(row.get("userId"), str) \
                    or not isinstance(row.get("recentItems"), list):
                raise ValueError(f"{p} line {number}: expected {{\"userId\": str, \"recentItems\": [...]}}")
            out[row["userId"]] = [str(i) for i in row["recentItems"]]
    return out


def _parse(line: str, job: str) -> Dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise InvalidRequest(f"the line is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise InvalidRequest(f"the line must be a JSON object, got {type(record).__name__}")
    missing = [name for name in REQUIRED_FIELDS[job] if name not in record]
    if missing:
        raise InvalidRequest(f"required fields for the {job} job are {', '.join(REQUIRED_FIELDS[job])}; "
                             f"missing {', '.join(missing)}")
    for name in ("userId", "itemId"):
        if name in REQUIRED_FIELDS[job]:
            value = record[name]
            if not isinstance(value, str) or not value:
                raise InvalidRequest(f"{name} must be a non-empty string, got {value!r}")
            if len(value) > MAX_ID_CHARS:
                raise InvalidRequest(f"{name} has {len(value)} characters; at most {MAX_ID_CHARS}")
    if job == "ranking":
        items = record["itemList"]
        if not isinstance(items, list) or not items:
            raise InvalidRequest("itemList must be a non-empty list of item ids")
        if len(items) > protocol.MAX_RANK_ITEMS:
            raise InvalidRequest(f"itemList has {len(items)} items; at most {protocol.MAX_RANK_ITEMS} allowed")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise InvalidRequest(f"itemList[{i}] must be a non-empty string")
    return record


def transform_line(model: Any, line: str, job: str, num_results: int = DEFAULT_NUM_RESULTS,
                   histories: Optional[Histories] = None) -> Dict[str, Any]:
    """One Personalize batch output record for one input line (never raises for a bad line).

    Args:
        model: A :class:`recsys.model.Recommender`.
        line: One input line (its newline may be included).
        job: ``users``, ``items`` or ``ranking``.
        num_results: Items per line for ``users`` and ``items`` (``ranking`` returns all of
            ``itemList``).
        histories: userId -> items, oldest first (see :func:`load_histories`).

    Returns:
        ``{"input": ..., "output": {"recommendedItems": [...], "scores": [...]}, "error": None}``,
        or ``{"input": ..., "output": {"recommendedItems": []}, "error": "..."}``; ``input`` is
        the line's object, or the line's text when it is not a JSON object.
    """
    text = line.rstrip("\r\n")
    echoed: Any = text
    try:
        record = _parse(text, job)
        echoed = record
        histories = histories or {}
        if job == "users":
            user = record["userId"]
            scored = model.recommend(list(histories.get(user, ())), num_results, user_id=user)
        elif job == "items":
            item = record["itemId"]
            # Personalize's related items answer an item it has not seen with popular items
            scored = model.similar(item, num_results) if model.has_item(item) else model.popular(num_results)
        else:
            user = record["userId"]
            scored = model.rank(list(histories.get(user, ())), record["itemList"], user_id=user)
    except (InvalidRequest, protocol.ItemNotFound) as exc:
        try:
            parsed = json.loads(text)
            echoed = parsed if isinstance(parsed, dict) else text
        except ValueError:
            pass
        return {"input": echoed, "output": {"recommendedItems": []}, "error": str(exc)}
    return {"input": echoed,
            "output": {"recommendedItems": [i for i, _ in scored], "scores": [s for _, s in scored]},
            "error": None}


def transform_lines(model: Any, lines: Iterable[str], job: str,
                    num_results: Union[int, str] = DEFAULT_NUM_RESULTS,
                    histories: Optional[Histories] = None) -> Iterator[str]:
    """Personalize batch output lines (JSON, no newline) for ``lines``, one per non-blank line,
    in order. See :func:`transform_line`.

    Raises:
        ValueError: ``job`` or ``num_results`` is invalid (the whole batch is wrong, not a line).
    """
    job = check_job(job)
    k = check_num_results(num_results)
    for line in lines:
        if not line.strip():
            continue
        yield json.dumps(transform_line(model, line, job, k, histories), separators=(",", ":"))
