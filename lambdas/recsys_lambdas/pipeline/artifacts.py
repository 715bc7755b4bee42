"""Reading the training output from S3 and the record of the serving model.

A SageMaker training job writes ``<output>/<job>/output/model.tar.gz`` (the model) and, next to
it, ``output.tar.gz`` (what the script wrote to ``SM_OUTPUT_DATA_DIR``: ``manifest.json`` and
``batch/*.jsonl``). The promoted model is recorded in ``models/serving.json`` of the artifacts
bucket, which the evaluation gate reads as "the serving model", and each promotion adds a copy
under ``models/serving-history/`` (keys never rewritten, so no lifecycle rule expires them): the
models a rollback may return to (``recsys deploy rollback``).
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Iterator
from typing import IO, Any, Optional

from recsys_lambdas import contracts

SERVING_RECORD_KEY = contracts.MODELS_PREFIX + "serving.json"
SERVING_HISTORY_PREFIX = contracts.MODELS_PREFIX + "serving-history/"
MANIFEST_NAME = "manifest.json"
BATCH_FILES = ("users", "items", "recommendations")  # batch/<name>.jsonl
MAX_MANIFEST_BYTES = 10 * 1024 * 1024


class ArtifactError(ValueError):
    """The training output is missing or malformed; the message names the object and member."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``.

    Raises:
        ArtifactError: ``uri`` is not an ``s3://bucket/key`` URI.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ArtifactError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ArtifactError(f"not an s3://bucket/key URI: {uri!r}")
    return bucket, key


def output_data_url(model_data_url: str) -> str:
    """The job's ``output.tar.gz`` URI, the sibling of its ``model.tar.gz``.

    Raises:
        ArtifactError: ``model_data_url`` does not end in ``/model.tar.gz``.
    """
    split_s3_uri(model_data_url)
    if not model_data_url.endswith("/model.tar.gz"):
        raise ArtifactError(
            f"expected a SageMaker .../output/model.tar.gz URI, got {model_data_url!r}"
        )
    return model_data_url[: -len("model.tar.gz")] + "output.tar.gz"


def _open_tar_stream(s3: Any, uri: str) -> tuple[IO[bytes], tarfile.TarFile]:
    bucket, key = split_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except s3.exceptions.NoSuchKey:
        raise ArtifactError(f"{uri} does not exist") from None
    # Stream mode ("r|gz"): members are read in order without downloading the archive first.
    try:
        return body, tarfile.open(fileobj=body, mode="r|gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{uri} is not a tar.gz archive ({exc})") from None


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def read_manifest(s3: Any, archive_uri: str) -> dict[str, Any]:
    """``manifest.json`` from a tar.gz in S3 (``output.tar.gz`` or ``model.tar.gz``).

    Raises:
        ArtifactError: The archive or its manifest is missing or unreadable.
    """
    body, tar = _open_tar_stream(s3, archive_uri)
    try:
        for member in tar:
            if _member_name(member.name) == MANIFEST_NAME and member.isfile():
                if member.size > MAX_MANIFEST_BYTES:
                    raise ArtifactError(f"{archive_uri}: {MANIFEST_NAME} is {member.size} bytes")
                raw = tar.extractfile(member)
                assert raw is not None
                try:
                    manifest = json.loads(raw.read())
                except ValueError as exc:
                    raise ArtifactError(
                        f"{archive_uri}: {MANIFEST_NAME} is not JSON ({exc})"
                    ) from None
                if not isinstance(manifest, dict):
                    raise ArtifactError(f"{archive_uri}: {MANIFEST_NAME} is not a JSON object")
                return manifest
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{archive_uri}: corrupt archive ({exc})") from None
    finally:
        body.close()
    raise ArtifactError(f"{archive_uri} holds no {MANIFEST_NAME}")


def iter_jsonl(stream: IO[bytes], where: str) -> Iterator[dict[str, Any]]:
    """Parse JSON Lines, skipping blank lines.

    Raises:
        ArtifactError: A line is not a JSON object; ``where`` and the line number are named.
    """
    # readline on the raw member: a TextIOWrapper would need a seekable stream, which a
    # tar read in stream mode is not.
    for number, raw in enumerate(iter(stream.readline, b""), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"{where} line {number}: not UTF-8 ({exc})") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ArtifactError(f"{where} line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ArtifactError(f"{where} line {number}: not a JSON object")
        yield record


def iter_batch_files(s3: Any, archive_uri: str) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    """Stream the ``batch/*.jsonl`` files of an ``output.tar.gz``: ``(name, records)`` pairs.

    ``name`` is ``users``, ``items`` or ``recommendations``; consume each ``records`` iterator
    before advancing (the archive is read once, front to back, never held in memory).

    Raises:
        ArtifactError: The archive is unreadable or lacks one of the three files (raised after
            the files that are present were yielded).
    """
    wanted = {f"{contracts.BATCH_OUTPUT_DIR}/{name}.jsonl": name for name in BATCH_FILES}
    seen: list[str] = []
    body, tar = _open_tar_stream(s3, archive_uri)
    try:
        for member in tar:
            name = wanted.get(_member_name(member.name))
            if name and member.isfile():
                raw = tar.extractfile(member)
                assert raw is not None
                seen.append(name)
                yield name, iter_jsonl(raw, f"{archive_uri}:{_member_name(member.name)}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{archive_uri}: corrupt archive ({exc})") from None
    finally:
        body.close()
    missing = [path for path, name in wanted.items() if name not in seen]
    if missing:
        raise ArtifactError(f"{archive_uri} lacks {', '.join(sorted(missing))}")


def read_serving_record(s3: Any, bucket: str) -> Optional[dict[str, Any]]:
    """The record of the serving model (``models/serving.json``), or None before the first one.

    Raises:
        ArtifactError: The record exists but is not a JSON object.
    """
    # Ask first with a listing of that one key: S3 answers a GetObject of a missing key with 404
    # only when the caller may list the bucket, and AWS does not document which s3:prefix that
    # implicit check evaluates; a ListObjectsV2 with Prefix is evaluated with s3:prefix = Prefix.
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=SERVING_RECORD_KEY, MaxKeys=1)
    if not any(obj["Key"] == SERVING_RECORD_KEY for obj in listing.get("Contents", [])):
        return None
    try:
        body = s3.get_object(Bucket=bucket, Key=SERVING_RECORD_KEY)["Body"].read()
    except s3.exceptions.NoSuchKey:  # deleted since the listing
        return None
    try:
        record = json.loads(body)
    except ValueError as exc:
        raise ArtifactError(f"s3://{bucket}/{SERVING_RECORD_KEY} is not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ArtifactError(f"s3://{bucket}/{SERVING_RECORD_KEY} is not a JSON object")
    return record


def history_key(record: dict[str, Any]) -> str:
    """The serving-history key of a record: its promotion time first (then the nanoseconds of
    the write, so two promotions in one second neither collide nor lose their order)."""
    stamp = "".join(ch for ch in str(record.get("promotedAt", "")) if ch.isalnum())
    version = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                      for ch in str(record.get("modelVersion") or "unversioned"))[:128]
    return f"{SERVING_HISTORY_PREFIX}{stamp}-{time.time_ns():019d}-{version}.json"


def write_serving_record(s3: Any, bucket: str, record: dict[str, Any]) -> None:
    """Record the model that now serves (read by the next run's evaluation gate), and add it to
    the serving history."""
    body = json.dumps(record, indent=2, sort_keys=True).encode()
    s3.put_object(Bucket=bucket, Key=history_key(record), Body=body,
                  ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=SERVING_RECORD_KEY, Body=body, ContentType="application/json")


def read_serving_history(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every promotion's record, oldest first (each with its ``historyKey``).

    Raises:
        ArtifactError: A history object is not a JSON object.
    """
    out: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                             Prefix=SERVING_HISTORY_PREFIX):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            try:
                record = json.loads(body)
            except ValueError as exc:
                raise ArtifactError(f"s3://{bucket}/{obj['Key']} is not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise ArtifactError(f"s3://{bucket}/{obj['Key']} is not a JSON object")
            out.append({**record, "historyKey": obj["Key"]})
    return sorted(out, key=lambda r: r["historyKey"])
