"""Load against the local stack on loopback, bounded in time and count.

- A sustained open-loop rate (requests scheduled at fixed times, whatever the answers' latency)
  over a mix of every serving route and event writes, for ``SOAK_SECONDS`` (10 s in
  ``make test``, 60 s in ``make soak``): zero errors, a recorded and bounded p99, and every
  accepted event found afterwards in its user's history in DynamoDB (events lost: 0).
- Concurrent duplicate submissions: the same events (same eventIds) sent at once from several
  threads are accepted exactly once and leave exactly one copy of each in the history.

Run on a shared, loaded 2-core machine, so the bounds are generous; the measured figures are
printed in the "reliability figures" summary.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import boto3
import pytest
import requests

from .conftest import FIGURES

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

# 10/s by default: at 20/s the stack saturated on the shared 2-core machine (load average ~15:
# 14.9/s achieved, p99 6.6 s); LOAD_RPS raises it on a quiet machine.
RATE_PER_S = float(os.environ.get("LOAD_RPS") or 10.0)
P99_BOUND_S = 5.0  # generous: 2 shared cores under ~6 agents (10/s: p99 0.3-0.8 s in 10 s, 3.7 s in 60 s)
WORKERS = 64
SCHEDULE_SLACK = 0.9  # at least 90 % of the planned requests must start on time (no client stall)


def _batch(stack: dict) -> dict:
    run_dir = Path(stack["state"]["model_dir"]).parents[1]
    batch_dir = run_dir / "ranker" / "output" / "data" / "batch"
    users = [json.loads(x) for x in (batch_dir / "users.jsonl").read_text().splitlines() if x]
    items = [json.loads(x) for x in (batch_dir / "items.jsonl").read_text().splitlines() if x]
    return {"users": [u["userId"] for u in users], "items": items}


def _dynamodb(stack: dict):
    return boto3.client("dynamodb", endpoint_url=stack["state"]["aws_url"], region_name="us-east-1")


def _history(stack: dict, user_id: str) -> List[Tuple[str, float]]:
    item = _dynamodb(stack).get_item(
        TableName=stack["state"]["tables"]["users"], Key={"userId": {"S": user_id}},
        ConsistentRead=True).get("Item") or {}
    items = [v["S"] for v in item.get("recentItems", {}).get("L", [])]
    stamps = [float(v["N"]) for v in item.get("recentTimestamps", {}).get("L", [])]
    return list(zip(items, stamps))


def _p(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _post_events_until_done(session: requests.Session, url: str, body: dict,
                            deadline_s: float = 30.0) -> List[dict]:
    """POST /events, honouring 503 + Retry-After as a client must; the final 200's results."""
    stop = time.monotonic() + deadline_s
    while True:
        resp = session.post(url + "/events", json=body, timeout=30)
        if resp.status_code == 200:
            return resp.json()["eventResults"]
        assert resp.status_code == 503, resp.text  # the only retryable answer
        assert resp.headers.get("Retry-After"), "503 without Retry-After"
        assert time.monotonic() < stop, f"still 503 after {deadline_s}s: {resp.text}"
        time.sleep(min(float(resp.headers["Retry-After"]), 1.0))


def test_sustained_rate_zero_errors_bounded_p99_no_event_lost(reliability_stack, soak_seconds):
    url = reliability_stack["url"]
    data = _batch(reliability_stack)
    users, items = data["users"], data["items"]
    run = uuid.uuid4().hex[:8]
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    sent_events: Dict[str, Dict[str, Any]] = {}  # eventId -> {user, item, sentAt}

    def request_for(i: int) -> Tuple[str, Callable[[], requests.Response]]:
        user, item = users[i % len(users)], items[(i * 7) % len(items)]
        kind = i % 5
        if kind == 0:
            return "recommendations", lambda: session().post(
                url + "/recommendations", json={"userId": user, "numResults": 10}, timeout=30)
        if kind == 1:
            return "similar", lambda: session().get(
                f"{url}/items/{item['itemId']}/similar", params={"numResults": 10}, timeout=30)
        if kind == 2:
            query = (item.get("title") or item["itemId"]).split()[0]
            return "search", lambda: session().get(
                url + "/search", params={"q": query, "userId": user}, timeout=30)
        if kind == 3:
            return "ranking", lambda: session().post(
                url + "/personalize-ranking",
                json={"userId": user, "inputList": [x["itemId"] for x in items[:20]]}, timeout=30)
        # events go to users of their own, one per request, so the read-back is exact
        event_user = f"load-{run}-{i % 10}"
        event = {"eventId": f"{run}-{i}", "eventType": "click", "itemId": item["itemId"],
                 "sentAt": 1_700_000_000 + i}
        sent_events[event["eventId"]] = {"user": event_user, "item": item["itemId"],
                                         "sentAt": float(event["sentAt"])}
        return "events", lambda: session().post(
            url + "/events", json={"trackingId": "load", "sessionId": event_user,
                                    "userId": event_user, "eventList": [event]}, timeout=30)

    planned = int(RATE_PER_S * soak_seconds)
    results: List[Tuple[str, int, float, float, str]] = []  # route, status, latency, lateness, body
    lock = threading.Lock()
    start = time.monotonic() + 0.5

    def fire(i: int) -> None:
        route, call = request_for(i)
        due = start + i / RATE_PER_S
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        began = time.monotonic()
        try:
            resp = call()
            status, body = resp.status_code, resp.text
            if route != "events" and status == 200 and resp.json().get("degraded"):
                status = -200  # answered, but by the fallback: counted apart, not as an error
        except requests.RequestException as exc:
            status, body = 0, repr(exc)
        with lock:
            results.append((route, status, time.monotonic() - began, began - due, body))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(fire, range(planned)))
    wall = time.monotonic() - start

    errors = [r for r in results if r[1] not in (200, -200)]
    latencies = [r[2] for r in results]
    on_time = sum(1 for r in results if r[3] < 1.0)
    accepted = [json.loads(r[4])["eventResults"][0] for r in results if r[0] == "events" and r[1] == 200]
    assert all(e["status"] == "ACCEPTED" for e in accepted), accepted

    # no event lost: every accepted event is in its user's history, exactly once
    histories: Dict[str, List[Tuple[str, float]]] = {}
    lost, copies_wrong = [], []
    for ev in accepted:
        sent = sent_events[ev["eventId"]]
        if sent["user"] not in histories:
            histories[sent["user"]] = _history(reliability_stack, sent["user"])
        n = histories[sent["user"]].count((sent["item"], sent["sentAt"]))
        if n == 0:
            lost.append(ev["eventId"])
        elif n > 1:
            copies_wrong.append(ev["eventId"])

    by_route: Dict[str, List[float]] = {}
    for r in results:
        by_route.setdefault(r[0], []).append(r[2])
    FIGURES["load"] = {
        "seconds": soak_seconds, "target_rps": RATE_PER_S, "requests": len(results),
        "achieved_rps": round(len(results) / wall, 1), "errors": len(errors),
        "degraded_answers": sum(1 for r in results if r[1] == -200),
        "started_on_time": on_time, "p50_ms": round(_p(latencies, 0.5) * 1000),
        "p99_ms": round(_p(latencies, 0.99) * 1000), "max_ms": round(max(latencies) * 1000),
        "p99_ms_by_route": {k: round(_p(v, 0.99) * 1000) for k, v in sorted(by_route.items())},
        "events_accepted": len(accepted), "events_lost": len(lost),
        "events_duplicated": len(copies_wrong)}

    assert len(results) == planned
    assert not errors, f"{len(errors)} errors, first: {errors[:3]}"
    assert on_time >= SCHEDULE_SLACK * planned, f"only {on_time}/{planned} requests started on time"
    assert _p(latencies, 0.99) < P99_BOUND_S, FIGURES["load"]
    assert len(accepted) == sum(1 for r in results if r[0] == "events") > 0
    assert not lost, f"accepted but not in the history: {lost[:5]}"
    assert not copies_wrong, f"more than one copy in the history: {copies_wrong[:5]}"


def test_concurrent_duplicate_submissions_leave_exactly_one_copy(reliability_stack):
    url = reliability_stack["url"]
    items = [i["itemId"] for i in _batch(reliability_stack)["items"]]
    user = f"dup-{uuid.uuid4().hex[:8]}"
    n_events, n_threads = 20, 8
    events = [{"eventId": f"{user}-e{k}", "eventType": "click", "itemId": items[k % len(items)],
               "sentAt": 1_700_000_000 + k} for k in range(n_events)]
    # two requests of 10 (the PutEvents maximum), every thread sends both, half in reverse order
    bodies = [{"trackingId": "dup", "sessionId": user, "userId": user, "eventList": events[:10]},
              {"trackingId": "dup", "sessionId": user, "userId": user, "eventList": events[10:]}]
    barrier = threading.Barrier(n_threads)

    def submit(t: int) -> List[dict]:
        with requests.Session() as s:
            barrier.wait(timeout=60)
            order = bodies if t % 2 == 0 else bodies[::-1]
            return [r for body in order for r in _post_events_until_done(s, url, body)]

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        outcomes = [r for rs in pool.map(submit, range(n_threads)) for r in rs]

    accepted: Dict[str, int] = {}
    for r in outcomes:
        assert r["status"] in ("ACCEPTED", "DUPLICATE"), r
        accepted[r["eventId"]] = accepted.get(r["eventId"], 0) + (r["status"] == "ACCEPTED")
    history = _history(reliability_stack, user)
    expected = sorted((e["itemId"], float(e["sentAt"])) for e in events)
    idem = _dynamodb(reliability_stack).scan(
        TableName=reliability_stack["state"]["tables"]["idempotency"],
        FilterExpression="userId = :u", ExpressionAttributeValues={":u": {"S": user}})["Items"]
    FIGURES["duplicates"] = {
        "threads": n_threads, "events": n_events, "submissions": len(outcomes),
        "accepted": sum(accepted.values()), "history_entries": len(history),
        "idempotency_records": len(idem)}

    assert len(outcomes) == n_threads * n_events
    assert accepted == {e["eventId"]: 1 for e in events}  # each accepted by exactly one request
    assert sorted(history) == expected  # each event once in the history, nothing else
    assert sorted(i["eventId"]["S"] for i in idem) == sorted(e["eventId"] for e in events)


def test_a_tiny_event_time_does_not_poison_the_history(reliability_stack):
    """Found by schemathesis: sentAt 5e-324 (valid: minimum 0) was stored as is, and DynamoDB
    (moto: decimal Underflow; AWS: numbers below 1e-130 are rejected) then failed every read of
    that user's history with a 500. Event times are kept at millisecond resolution."""
    url = reliability_stack["url"]
    items = [i["itemId"] for i in _batch(reliability_stack)["items"][:3]]
    user = f"tiny-{uuid.uuid4().hex[:8]}"
    with requests.Session() as s:
        for k, sent_at in enumerate((5e-324, 1e-200, 1_700_000_000.123456)):
            body = {"trackingId": "t", "sessionId": user, "userId": user,
                    "eventList": [{"eventId": f"{user}-{k}", "eventType": "click", "itemId": items[k],
                                   "sentAt": sent_at}]}
            resp = s.post(url + "/events", json=body, timeout=30)
            assert resp.status_code == 200, resp.text
            assert resp.json()["eventResults"][0]["status"] == "ACCEPTED"
        assert s.post(url + "/recommendations", json={"userId": user}, timeout=30).status_code == 200
    assert _history(reliability_stack, user) == [(items[0], 0.0), (items[1], 0.0),
                                                 (items[2], 1_700_000_000.123)]
