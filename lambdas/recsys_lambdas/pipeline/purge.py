"""Rewrite the raw event log without the users deleted since the last purge (right to be forgotten).

``DELETE /users/{userId}`` writes a deletion record (``contracts.deletion_key``) and training drops
the user's rows through its ``deletions`` channel from the next run on; this pipeline step (state
``PurgeDeletedUsers``, before training) then removes the rows from the log itself, so the raw
events in S3 no longer hold them either. The rule is the training loader's
(``recsys.data.load_events``): after the identity records (an anonymous session merged into a user
is that user's), a row whose user was deleted at or after the row was received (``received_at``,
else ``timestamp``) goes; ``tests/lambdas/pipeline/test_pipeline_purge.py`` checks that loading the
purged log without deletions gives what loading the original log with them gives.

One run:

1. **Pending deletions**: the deletion records with no purge record (``contracts.purge_key``) as
   recent as they are. None pending: the step ends without reading the log.
2. **Identity records** from every log object (a session may be merged after its rows were
   logged), then **each object that may hold a pending user's rows** (written before the latest
   pending deletion plus Firehose's buffering) is read; one with such rows is written again without
   them (or deleted, when nothing is left), and the version it replaced is deleted too (the bucket
   is versioned: an overwrite alone would keep the rows for the noncurrent-version lifetime).
3. **Purge records** for the pending users, only when every object was done: a run that ran out
   of Lambda time (``context.get_remaining_time_in_millis``) says ``complete: false`` and the next
   run finishes the job (objects already rewritten hold nothing more to remove). Training does not
   wait for the purge: its ``deletions`` channel drops the rows either way.

Log objects are JSON Lines (as Firehose writes the API's log) or CSV with a header (data a team
uploaded), optionally gzip-compressed; a user column is ``user_id`` (any case, ``USER_ID`` too).
An object in neither shape fails the step with its key: a deletion is never skipped silently.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from recsys_lambdas import contracts

ENV_EVENTS_BUCKET = "EVENTS_BUCKET"
# Firehose delivers a record at most this long after receiving it (the delivery stream's
# buffering interval, cdk/recsys_infra/storage.py, plus retries): an object written later than
# this after a deletion holds no row the deletion covers, unless uploaded by hand (see _may_hold).
FIREHOSE_DELIVERY_SLACK_S = 3600
# Stop starting new objects when less than this much Lambda time is left.
TIME_MARGIN_S = 60
_GZIP_MAGIC = b"\x1f\x8b"


class PurgeError(ValueError):
    """A log object or a deletion record the step cannot read; the message names it."""


@dataclass
class PurgeReport:
    """What one run did (the Step Functions task's result)."""

    pending_users: int = 0
    objects_scanned: int = 0
    objects_rewritten: int = 0
    objects_deleted: int = 0
    versions_deleted: int = 0
    rows_removed: int = 0
    complete: bool = True
    skipped_objects: list[str] = field(default_factory=list)  # out of time: the next run does them

    def to_json(self) -> dict[str, Any]:
        return {
            "pendingUsers": self.pending_users,
            "objectsScanned": self.objects_scanned,
            "objectsRewritten": self.objects_rewritten,
            "objectsDeleted": self.objects_deleted,
            "versionsDeleted": self.versions_deleted,
            "rowsRemoved": self.rows_removed,
            "complete": self.complete,
            "skippedObjects": len(self.skipped_objects),
        }


def seconds(value: Any) -> float:
    """Unix seconds (number or numeric string) or ISO-8601 (UTC when naive), as the loader reads
    times (``recsys.data.parse_timestamp``)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("missing")
    if isinstance(value, (int, float)):
        ts = float(value)
    else:
        text = str(value).strip()
        try:
            ts = float(text)
        except ValueError:
            iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
            dt = datetime.fromisoformat(iso)  # ValueError: neither
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(ts):
        raise ValueError(f"{value!r} is not a finite time")
    return ts


# --- the rule ------------------------------------------------------------------------------


def _field(row: Mapping[str, Any], name: str) -> Any:
    if name in row:
        return row[name]
    for key, value in row.items():  # CSV headers in another case (USER_ID)
        if isinstance(key, str) and key.strip().lower() == name:
            return value
    return None


def _text(row: Mapping[str, Any], name: str) -> str:
    value = _field(row, name)
    return "" if value is None else str(value).strip()


def identity(row: Mapping[str, Any]) -> Optional[tuple[str, str]]:
    """``(session owner, user)`` of an identity record, else None."""
    if _text(row, "record_type") != contracts.IDENTITY_RECORD_TYPE:
        return None
    session, user = _text(row, "session_owner"), _text(row, "user_id")
    if session.startswith(contracts.SESSION_OWNER_PREFIX) and user and not user.startswith(
        contracts.SESSION_OWNER_PREFIX
    ):
        return session, user
    return None


def forgotten(row: Mapping[str, Any], owner_of: Mapping[str, str],
              deletions: Mapping[str, float]) -> bool:
    """Whether the training loader would drop ``row`` for a deletion: its user (after the identity
    records ``owner_of``) was deleted at or after the row was received. Identity records of a
    deleted user go too (they name the user)."""
    ident = identity(row)
    if ident is not None:
        return ident[1] in deletions and _received(row) <= deletions[ident[1]]
    user = _text(row, "user_id")
    user = owner_of.get(user, user)
    if user not in deletions:
        return False
    return _received(row) <= deletions[user]


def _received(row: Mapping[str, Any]) -> float:
    for name in ("received_at", "timestamp"):
        value = _field(row, name)
        if value not in (None, ""):
            try:
                return seconds(value)
            except ValueError:
                continue
    return -math.inf  # no readable time: the loader skips the row as bad; remove it with the user


# --- reading and writing log objects -------------------------------------------------------


@dataclass
class LogObject:
    """One log object's rows, in its own format, ready to be written back without some."""

    key: str
    compressed: bool
    kind: str  # "jsonl" or "csv"
    records: list[Any]  # JSON Lines: each line as read (written back byte for byte); CSV: fields
    rows: list[dict[str, Any]]  # each record as the rule reads it

    def without(self, drop: Callable[[Mapping[str, Any]], bool]) -> tuple[bytes, int]:
        """The object's bytes without the rows ``drop`` selects, and how many it dropped."""
        kept = [n for n, row in enumerate(self.rows) if not drop(row)]
        removed = len(self.rows) - len(kept)
        if self.kind == "jsonl":
            text = "".join(self.records[n] for n in kept)
        else:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(self.records[0])
            writer.writerows(self.records[n + 1] for n in kept)
            text = buf.getvalue()
        data = text.encode("utf-8")
        return (gzip.compress(data, mtime=0) if self.compressed else data), removed


def _decode(key: str, body: bytes) -> tuple[str, bool]:
    compressed = body[:2] == _GZIP_MAGIC
    try:
        return (gzip.decompress(body) if compressed else body).decode("utf-8"), compressed
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise PurgeError(f"s3 object {key}: not UTF-8 text or gzip ({exc})") from None


def parse_object(key: str, body: bytes) -> LogObject:
    """A log object's rows (JSON Lines or CSV with a header, optionally gzip-compressed).

    Raises:
        PurgeError: not UTF-8 (or broken gzip), or CSV without a user_id column.
    """
    text, compressed = _decode(key, body)
    if not text.strip():
        return LogObject(key, compressed, "jsonl", [], [])
    if text.lstrip().startswith("{"):
        lines = [line if line.endswith("\n") else line + "\n"
                 for line in text.splitlines(keepends=True) if line.strip()]
        rows = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None  # the loader skips it as a bad row; it names no user
            rows.append(row if isinstance(row, dict) else {})
        return LogObject(key, compressed, "jsonl", lines, rows)
    try:
        records = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise PurgeError(f"s3 object {key}: malformed CSV ({exc})") from None
    header = [h.strip() for h in records[0]]
    if not any(h.lower() == "user_id" for h in header):
        raise PurgeError(f"s3 object {key}: CSV header {header} has no user_id column")
    records = [r for r in records if r]  # blank lines
    return LogObject(key, compressed, "csv", records,
                     [dict(zip(header, r)) for r in records[1:]])


def identities(key: str, body: bytes) -> Iterator[tuple[str, str]]:
    """The identity records of a log object, without parsing rows that cannot be one."""
    text, _ = _decode(key, body)
    if contracts.IDENTITY_RECORD_TYPE not in text:
        return
    for row in parse_object(key, body).rows:
        ident = identity(row)
        if ident is not None:
            yield ident


# --- the step ------------------------------------------------------------------------------


def _list(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def _read_json(s3: Any, bucket: str, key: str) -> Any:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PurgeError(f"s3 object {key}: not JSON ({exc})") from None


def pending_deletions(s3: Any, bucket: str) -> dict[str, tuple[float, str]]:
    """Deleted users whose rows may still be in the log: user -> (deletedAt, record key).

    Raises:
        PurgeError: a deletion record without a userId or a readable deletedAt.
    """
    purged = {obj["Key"][len(contracts.PURGES_PREFIX):]: obj
              for obj in _list(s3, bucket, contracts.PURGES_PREFIX)}
    out: dict[str, tuple[float, str]] = {}
    for obj in _list(s3, bucket, contracts.DELETIONS_PREFIX):
        key = obj["Key"]
        if key == contracts.DELETIONS_MARKER or not key.endswith(".json"):
            continue
        done = purged.get(key[len(contracts.DELETIONS_PREFIX):])
        if done is not None and done["LastModified"] > obj["LastModified"]:
            continue  # purged after the record was last written
        record = _read_json(s3, bucket, key)
        user = record.get("userId") if isinstance(record, dict) else None
        if not isinstance(user, str) or not user:
            raise PurgeError(f"s3 object {key}: a deletion record needs a userId")
        try:
            when = seconds(record.get("deletedAt"))
        except ValueError as exc:
            raise PurgeError(f"s3 object {key}: deletedAt {exc}") from None
        if done is not None:
            previous = _read_json(s3, bucket, done["Key"])
            if isinstance(previous, dict) and previous.get("deletedAt") == when:
                continue  # the same deletion written again: purged already
        out[user] = (when, key)
    return out


def _may_hold(obj: Mapping[str, Any], latest_deletion: float) -> bool:
    """Whether a log object can hold a row received before ``latest_deletion``: written before it
    (plus Firehose's delivery delay), or uploaded by hand (not under Firehose's date folders)."""
    written = obj["LastModified"].timestamp()
    return written <= latest_deletion + FIREHOSE_DELIVERY_SLACK_S or not _firehose_key(obj["Key"])


def _firehose_key(key: str) -> bool:
    """Firehose's default keys: ``events/YYYY/MM/DD/HH/<stream>-...``."""
    parts = key[len(contracts.EVENTS_PREFIX):].split("/")
    return len(parts) == 5 and all(p.isdigit() for p in parts[:4])


def purge(s3: Any, bucket: str, *, now: Callable[[], float] = time.time,
          time_left: Callable[[], float] = lambda: math.inf) -> PurgeReport:
    """One run of the step against ``bucket`` (see the module docstring); ``time_left``: seconds
    of Lambda time left."""
    report = PurgeReport()
    pending = pending_deletions(s3, bucket)
    report.pending_users = len(pending)
    if not pending:
        return report
    deletions = {user: when for user, (when, _) in pending.items()}
    latest = max(deletions.values())
    objects = [obj for obj in _list(s3, bucket, contracts.EVENTS_PREFIX)
               if not obj["Key"].endswith("/")]
    # 1. identity records from the whole log (the loader reads them all); one object in memory
    owner_of: dict[str, str] = {}
    for obj in objects:
        if time_left() < TIME_MARGIN_S:
            report.complete = False
            report.skipped_objects = [o["Key"] for o in objects]
            return report
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        for session, user in identities(obj["Key"], body):
            owner_of.setdefault(session, user)  # a session is merged once: the first record holds
    # 2. the objects that may hold a pending user's rows, one at a time
    for obj in objects:
        key = obj["Key"]
        if not _may_hold(obj, latest):
            continue
        if time_left() < TIME_MARGIN_S:
            report.complete = False
            report.skipped_objects.append(key)
            continue
        got = s3.get_object(Bucket=bucket, Key=key)
        log = parse_object(key, got["Body"].read())
        report.objects_scanned += 1
        body, removed = log.without(lambda row: forgotten(row, owner_of, deletions))
        if not removed:
            continue
        report.rows_removed += removed
        if removed == len(log.rows):
            s3.delete_object(Bucket=bucket, Key=key)
            report.objects_deleted += 1
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            report.objects_rewritten += 1
        version = got.get("VersionId")
        if version and version != "null":  # versioned bucket: the replaced version goes too
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
            report.versions_deleted += 1
    if report.complete:
        stamp = now()
        for when, record_key in pending.values():
            s3.put_object(
                Bucket=bucket,
                Key=contracts.purge_key(record_key),
                Body=json.dumps({"deletedAt": when, "purgedAt": round(stamp, 3)}).encode(),
            )
    return report


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Step Functions task: ``{}`` -> :class:`PurgeReport` as JSON (bucket from the environment)."""
    import boto3

    bucket = os.environ.get(ENV_EVENTS_BUCKET, "")
    if not bucket:
        raise PurgeError(f"{ENV_EVENTS_BUCKET} is not set")

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 if context is not None else math.inf

    return purge(boto3.client("s3"), bucket, time_left=time_left).to_json()


