"""PurgeDeletedUsers: the raw event log rewritten without deleted users (moto S3, versioned)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from recsys import data as recsys_data
from recsys_lambdas import contracts
from recsys_lambdas.pipeline import purge

EVENTS_BUCKET = "recsys-test-events"
T = 1_800_000_000.0  # the deletion time in the fixtures
FIREHOSE_A = "events/2026/12/01/10/recsys-test-events-1-2026-12-01-10-00-00-aaaa"
FIREHOSE_B = "events/2026/12/01/11/recsys-test-events-1-2026-12-01-11-00-00-bbbb"


def row(user: str, item: str, received: float, event_id: str, **extra) -> dict:
    return {"user_id": user, "item_id": item, "timestamp": received - 1, "event_type": "click",
            "session_id": "s", "event_id": event_id, "received_at": received, **extra}


def lines(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


SESSION = contracts.session_owner("anon-1")
LOG_A = [
    row("u1", "i1", T - 100, "e1"),
    row("u2", "i2", T - 90, "e2"),
    row(SESSION, "i3", T - 80, "e3"),  # an anonymous session, merged into u1 later (LOG_B)
    row("u1", "i4", T - 70, "e4"),
    row("u2", "i5", T - 60, "e5"),
]
LOG_B = [
    {"record_type": contracts.IDENTITY_RECORD_TYPE, "user_id": "u1", "session_id": "anon-1",
     "session_owner": SESSION, "tracking_id": "t", "timestamp": T - 50, "received_at": T - 50},
    row("u1", "i6", T - 40, "e6"),
    row("u1", "i7", T + 100, "e7"),  # after the deletion: the user came back; kept
    row("u3", "i8", T - 30, "e8"),
]


@pytest.fixture
def events_bucket(pipeline_aws, monkeypatch):
    s3 = pipeline_aws["s3"]
    s3.create_bucket(Bucket=EVENTS_BUCKET)
    s3.put_bucket_versioning(Bucket=EVENTS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv(purge.ENV_EVENTS_BUCKET, EVENTS_BUCKET)  # names the bucket for the IAM check
    s3.put_object(Bucket=EVENTS_BUCKET, Key=contracts.DELETIONS_MARKER, Body=b"{}")
    return s3


def delete_user(s3, user: str, when: float) -> str:
    key = contracts.deletion_key(user)
    s3.put_object(Bucket=EVENTS_BUCKET, Key=key, Body=json.dumps({"userId": user, "deletedAt": when}))
    return key


def body(s3, key: str, version: str | None = None) -> bytes:
    kwargs = {"VersionId": version} if version else {}
    return s3.get_object(Bucket=EVENTS_BUCKET, Key=key, **kwargs)["Body"].read()


def event_ids(data: bytes) -> list[str]:
    return [json.loads(line).get("event_id", "identity") for line in data.decode().splitlines() if line]


def all_versions(s3, prefix: str = contracts.EVENTS_PREFIX) -> list[bytes]:
    out = s3.list_object_versions(Bucket=EVENTS_BUCKET, Prefix=prefix)
    return [body(s3, v["Key"], v["VersionId"]) for v in out.get("Versions", [])]


def handler_run(context=None) -> dict:
    return purge.handler({}, context or SimpleNamespace(get_remaining_time_in_millis=lambda: 600_000))


def test_a_deleted_users_rows_leave_the_log_and_its_old_versions(events_bucket):
    s3 = events_bucket
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_A, Body=lines(LOG_A))
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_B, Body=lines(LOG_B))
    record = delete_user(s3, "u1", T)

    result = handler_run()

    assert result == {"pendingUsers": 1, "objectsScanned": 2, "objectsRewritten": 2, "objectsDeleted": 0,
                      "versionsDeleted": 2, "rowsRemoved": 5, "complete": True, "skippedObjects": 0}
    # u1's rows, the merged session's row and the identity record go; the rest stays byte for byte
    assert body(s3, FIREHOSE_A) == lines([LOG_A[1], LOG_A[4]])
    assert body(s3, FIREHOSE_B) == lines([LOG_B[2], LOG_B[3]])
    # no version of any log object still holds a forgotten row
    remaining = [e for data in all_versions(s3) for e in event_ids(data)]
    assert sorted(remaining) == ["e2", "e5", "e7", "e8"]
    done = json.loads(body(s3, contracts.purge_key(record)))
    assert done["deletedAt"] == T and done["purgedAt"] > 0


def test_loading_the_purged_log_gives_what_training_gave_with_the_deletions(events_bucket, tmp_path):
    """The step and the training loader apply one rule: the loader on the original log with the
    deletions channel and the loader on the purged log without it read the same events."""
    s3 = events_bucket
    log_b = [r for r in LOG_B if r.get("event_id") != "e7"]  # (post-deletion rows: see the docstring)
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_A, Body=lines(LOG_A))
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_B, Body=lines(log_b))
    delete_user(s3, "u1", T)
    delete_user(s3, "u3", T - 31)  # deleted before its last row was received: the row stays

    def download(folder: Path) -> Path:
        for obj in s3.list_objects_v2(Bucket=EVENTS_BUCKET, Prefix=contracts.EVENTS_PREFIX).get("Contents", []):
            target = folder / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body(s3, obj["Key"]))
        return folder / contracts.EVENTS_PREFIX

    original = download(tmp_path / "before")
    (tmp_path / "deletions").mkdir()
    for obj in s3.list_objects_v2(Bucket=EVENTS_BUCKET, Prefix=contracts.DELETIONS_PREFIX)["Contents"]:
        (tmp_path / "deletions" / Path(obj["Key"]).name).write_bytes(body(s3, obj["Key"]))
    trained = recsys_data.load_events(original, deletions=recsys_data.load_deletions(tmp_path / "deletions"))

    assert handler_run()["rowsRemoved"] == 5  # u1: three rows, the merged session's, the identity record
    purged = recsys_data.load_events(download(tmp_path / "after"))

    for name in ("user_ids", "item_ids", "timestamps"):
        assert list(getattr(purged, name)) == list(getattr(trained, name)), name
    assert list(purged.user_ids) == ["u2", "u2", "u3"]


def test_a_purged_deletion_is_not_purged_again_until_a_later_delete(events_bucket):
    s3 = events_bucket
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_A, Body=lines(LOG_A))
    delete_user(s3, "u1", T)
    assert handler_run()["rowsRemoved"] == 2

    reads: list = []
    s3.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **_: reads.append(params["Key"]))
    again = purge.purge(s3, EVENTS_BUCKET)
    assert again.pending_users == 0 and again.objects_scanned == 0
    assert not [k for k in reads if k.startswith(contracts.EVENTS_PREFIX)], reads  # the log was not read

    # the user comes back (new rows), is deleted again later: those rows go too
    time.sleep(1.1)  # S3's LastModified has one-second resolution
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_B, Body=lines([row("u1", "i9", T + 500, "e9"),
                                                                    row("u2", "i9", T + 501, "e10")]))
    delete_user(s3, "u1", T + 1000)
    third = purge.purge(s3, EVENTS_BUCKET)
    assert third.pending_users == 1 and third.rows_removed == 1
    assert event_ids(body(s3, FIREHOSE_B)) == ["e10"]


def test_an_object_left_empty_is_deleted_with_its_versions(events_bucket):
    s3 = events_bucket
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_A, Body=lines([LOG_A[0], LOG_A[3]]))
    delete_user(s3, "u1", T)
    report = purge.purge(s3, EVENTS_BUCKET)
    assert (report.objects_deleted, report.versions_deleted) == (1, 1)
    assert "Contents" not in s3.list_objects_v2(Bucket=EVENTS_BUCKET, Prefix=contracts.EVENTS_PREFIX)
    assert all_versions(s3) == []


def test_a_run_out_of_time_finishes_in_the_next_run(events_bucket):
    s3 = events_bucket
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_A, Body=lines(LOG_A))
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_B, Body=lines(LOG_B))
    record = delete_user(s3, "u1", T)
    budget = iter([600.0, 600.0, 600.0, 1.0])  # pass 1 twice, then time for one object of pass 2
    short = purge.purge(s3, EVENTS_BUCKET, time_left=lambda: next(budget, 1.0))
    assert not short.complete and short.skipped_objects == [FIREHOSE_B] and short.objects_rewritten == 1
    assert "Contents" not in s3.list_objects_v2(Bucket=EVENTS_BUCKET, Prefix=contracts.PURGES_PREFIX)
    assert handler_run(SimpleNamespace(get_remaining_time_in_millis=lambda: 30_000))["complete"] is False

    finished = purge.purge(s3, EVENTS_BUCKET)
    assert finished.complete and finished.objects_rewritten == 1 and finished.rows_removed == 2
    assert s3.head_object(Bucket=EVENTS_BUCKET, Key=contracts.purge_key(record))


def test_uploaded_csv_and_gzip_objects_are_rewritten_in_their_own_format(events_bucket):
    s3 = events_bucket
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"],
                      ["u1", "i1", str(T - 10), "view"], ["u2", "i2", "2026-12-01T10:00:00Z", "view, then buy"],
                      ["u1", "i3", "2027-02-01T00:00:00Z", "view"]])  # after T: kept
    s3.put_object(Bucket=EVENTS_BUCKET, Key="events/seed/history.csv", Body=buf.getvalue().encode())
    s3.put_object(Bucket=EVENTS_BUCKET, Key="events/seed/log.jsonl.gz", Body=gzip.compress(lines(LOG_A)))
    delete_user(s3, "u1", T)

    report = purge.purge(s3, EVENTS_BUCKET)

    assert report.objects_rewritten == 2 and report.rows_removed == 3
    kept = list(csv.reader(io.StringIO(body(s3, "events/seed/history.csv").decode())))
    assert kept == [["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"],
                    ["u2", "i2", "2026-12-01T10:00:00Z", "view, then buy"],
                    ["u1", "i3", "2027-02-01T00:00:00Z", "view"]]
    assert event_ids(gzip.decompress(body(s3, "events/seed/log.jsonl.gz"))) == ["e2", "e3", "e5"]


def test_firehose_objects_written_long_after_the_deletion_are_not_read(events_bucket):
    """Firehose delivers within its buffering interval: its objects written more than
    FIREHOSE_DELIVERY_SLACK_S after the latest deletion hold no row it covers. Uploaded objects
    (not under Firehose's date folders) are always read."""
    s3 = events_bucket
    old = time.time() - 2 * 86400
    s3.put_object(Bucket=EVENTS_BUCKET, Key=FIREHOSE_A, Body=lines([row("u1", "i1", old - 10, "e1")]))
    s3.put_object(Bucket=EVENTS_BUCKET, Key="events/seed/x.jsonl", Body=lines([row("u1", "i1", old - 10, "e2")]))
    delete_user(s3, "u1", old)
    report = purge.purge(s3, EVENTS_BUCKET)
    assert report.objects_scanned == 1 and report.objects_deleted == 1
    assert event_ids(body(s3, FIREHOSE_A)) == ["e1"]  # (a row like it cannot be there in reality)


@pytest.mark.parametrize("record, message", [
    ({"deletedAt": T}, "needs a userId"),
    ({"userId": "u1", "deletedAt": "soon"}, "deletedAt"),
])
def test_a_bad_deletion_record_fails_the_step_naming_it(events_bucket, record, message):
    key = contracts.deletion_key("u1")
    events_bucket.put_object(Bucket=EVENTS_BUCKET, Key=key, Body=json.dumps(record))
    with pytest.raises(purge.PurgeError, match=message) as info:
        handler_run()
    assert key in str(info.value)


def test_an_unreadable_log_object_fails_the_step_naming_it(events_bucket):
    events_bucket.put_object(Bucket=EVENTS_BUCKET, Key="events/seed/broken.gz", Body=b"\x1f\x8bnot gzip")
    events_bucket.put_object(Bucket=EVENTS_BUCKET, Key="events/seed/items.csv", Body=b"item_id,title\ni1,x\n")
    delete_user(events_bucket, "u1", T)
    with pytest.raises(purge.PurgeError, match=r"events/seed/broken\.gz"):
        purge.purge(events_bucket, EVENTS_BUCKET)
    events_bucket.delete_object(Bucket=EVENTS_BUCKET, Key="events/seed/broken.gz")
    with pytest.raises(purge.PurgeError, match=r"events/seed/items\.csv: CSV header .* no user_id"):
        purge.purge(events_bucket, EVENTS_BUCKET)


def test_the_handler_needs_its_bucket(monkeypatch):
    monkeypatch.delenv(purge.ENV_EVENTS_BUCKET, raising=False)
    with pytest.raises(purge.PurgeError, match="EVENTS_BUCKET is not set"):
        purge.handler({})
