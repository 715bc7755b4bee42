"""The whole local stack over HTTP: `recsys local up` on free ports with small synthetic data.

One stack is started for the module (training once, small so it stays fast) and every route is
exercised against it; the last tests break its endpoint, stop it with SIGINT, check that nothing
is left behind, restart it (reusing the trained model) and try a second copy on a taken port.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import boto3
import pytest
import requests
from recsys_tools.local.ports import free_port
from recsys_tools.local.processes import group_members
from recsys_tools.local.training import CODE_VERSION_ENV

from .conftest import REPO, alive, child_env, listening, python, wait_until

pytestmark = pytest.mark.e2e

SMALL_DATA = ["--n-users", "120", "--n-items", "100", "--n-events", "3000", "-H", "dim=16"]
START_TIMEOUT_S = 420  # first start trains; generous for a loaded CI machine


class StackProcess:
    """``python -m recsys_tools.local up`` as a child, its output in a log file."""

    def __init__(self, work_dir: Path, port: int, log_name: str, *extra: str) -> None:
        self.work_dir = work_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = work_dir.parent / f"{work_dir.name}-{log_name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [python(), "-m", "recsys_tools.local", "up", "--port", str(port), "--work-dir", str(work_dir),
             *SMALL_DATA, *extra],
            env={**child_env(), CODE_VERSION_ENV: "e2e"}, cwd=str(REPO), stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"READY {self.url}" in self.output():
                return self.state()
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"stack not ready (exit {self.proc.poll()}); output:\n{self.output()[-4000:]}")

    def state(self) -> dict:
        return json.loads((self.work_dir / "run" / "stack.json").read_text())

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("stack") / "work"
    work_dir.mkdir()
    proc = StackProcess(work_dir, free_port(), "first")
    try:
        state = proc.wait_ready()
    except BaseException:
        proc.stop(signal.SIGKILL)
        raise
    yield {"proc": proc, "state": state, "url": proc.url, "work_dir": work_dir}
    proc.stop()


@pytest.fixture(scope="module")
def batch(stack):
    """The batch output the stack loaded (users with their histories, items with titles)."""
    run_dir = Path(stack["state"]["model_dir"]).parents[1]
    batch_dir = run_dir / "ranker" / "output" / "data" / "batch"
    users = [json.loads(line) for line in (batch_dir / "users.jsonl").read_text().splitlines() if line]
    items = [json.loads(line) for line in (batch_dir / "items.jsonl").read_text().splitlines() if line]
    return {"users": users, "items": {i["itemId"]: i for i in items}}


def post(stack, path: str, body) -> requests.Response:
    return requests.post(stack["url"] + path, json=body, timeout=30)


def get(stack, path: str) -> requests.Response:
    return requests.get(stack["url"] + path, timeout=30)


def item_ids(doc: dict, key: str = "itemList") -> list:
    return [entry["itemId"] for entry in doc[key]]


# --- every route, answered by the real handlers, endpoint and model --------------------------


def test_start_up_trained_loaded_and_reported_each_part(stack):
    out = stack["proc"].output()
    for step in ("[1/5] embedded AWS", "[2/5] training", "[3/5] loaded DynamoDB",
                 "[4/5] SageMaker endpoint", "[5/5] API Gateway"):
        assert step in out
    assert "METRIC two_stage_HR@10=" in out  # the training jobs' own output was streamed
    assert stack["state"]["model_reused"] is False


def test_recommendations_for_a_user(stack, batch):
    user = next(u for u in batch["users"] if len(u["recentItems"]) >= 3)
    resp = post(stack, "/recommendations", {"userId": user["userId"], "numResults": 7})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert len(doc["itemList"]) == 7
    assert doc["degraded"] is False
    assert doc["modelVersion"] == stack["state"]["model_version"]
    assert doc["recommendationId"]
    assert not set(item_ids(doc)) & set(user["recentItems"])  # nothing the user already has
    scores = [e["score"] for e in doc["itemList"]]
    assert scores == sorted(scores, reverse=True)


def test_related_items_through_recommendations(stack, batch):
    item = next(iter(batch["items"]))
    resp = post(stack, "/recommendations", {"itemId": item, "numResults": 5})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["itemList"]) == 5
    assert item not in item_ids(resp.json())


def test_personalized_ranking_reorders_the_input(stack, batch):
    user = batch["users"][0]["userId"]
    candidates = list(batch["items"])[:6]
    resp = post(stack, "/personalize-ranking", {"userId": user, "inputList": candidates})
    assert resp.status_code == 200, resp.text
    assert sorted(item_ids(resp.json(), "personalizedRanking")) == sorted(candidates)


def test_similar_items_and_unknown_item(stack, batch):
    item = next(iter(batch["items"]))
    resp = get(stack, f"/items/{item}/similar?numResults=4")
    assert resp.status_code == 200, resp.text
    similar = item_ids(resp.json())
    assert len(similar) == 4 and item not in similar
    assert all(i in batch["items"] for i in similar)
    missing = get(stack, "/items/no-such-item/similar")
    assert missing.status_code == 404
    assert "no-such-item" in missing.json()["message"]


def test_search_finds_titles_with_the_word(stack, batch):
    title = next(iter(batch["items"].values()))["title"]
    word = next(w for w in title.split() if w.lower() != "the")
    resp = get(stack, f"/search?q={word}&numResults=5")
    assert resp.status_code == 200, resp.text
    found = item_ids(resp.json())
    assert found, "no search results"
    assert word.lower() in batch["items"][found[0]]["title"].lower()


def test_events_update_the_history_and_reach_the_event_log(stack, batch):
    user = batch["users"][1]["userId"]
    before = post(stack, "/recommendations", {"userId": user, "numResults": 10}).json()
    clicked = [i for i in batch["items"] if i not in item_ids(before)][:3]
    now = int(time.time())
    resp = post(stack, "/events", {
        "trackingId": "e2e", "userId": user, "sessionId": "s-e2e",
        "eventList": [{"eventId": f"e2e-{n}", "eventType": "click", "itemId": item, "sentAt": now + n}
                      for n, item in enumerate(clicked)]})
    assert resp.status_code == 200, resp.text
    state = stack["state"]
    kwargs = {"endpoint_url": state["aws_url"], "region_name": "us-east-1"}
    row = boto3.client("dynamodb", **kwargs).get_item(
        TableName=state["tables"]["users"], Key={"userId": {"S": user}}, ConsistentRead=True)["Item"]
    assert [v["S"] for v in row["recentItems"]["L"]][-3:] == clicked
    after = post(stack, "/recommendations", {"userId": user, "numResults": 10}).json()
    assert item_ids(after) != item_ids(before)  # the next answer follows the clicks
    assert not set(item_ids(after)) & set(clicked)
    s3 = boto3.client("s3", **kwargs)
    logged = s3.list_objects_v2(Bucket=state["bucket"], Prefix="events/").get("Contents", [])
    bodies = b"".join(s3.get_object(Bucket=state["bucket"], Key=o["Key"])["Body"].read()
                      for o in logged if "/seed/" not in o["Key"])
    assert all(item.encode() in bodies for item in clicked)  # Firehose delivered them to S3


def test_health_reports_every_part(stack):
    resp = get(stack, "/health")
    assert resp.status_code == 200
    parts = resp.json()["localStack"]
    assert parts["aws"]["ok"] and parts["endpoint"]["ok"] and parts["gateway"]["ok"]
    assert parts["endpoint"]["workers"] == 2
    assert parts["model"]["version"] == stack["state"]["model_version"]


def test_openapi_document_is_served(stack):
    resp = get(stack, "/openapi.json")
    assert resp.status_code == 200
    served = resp.json()
    assert served == json.loads((REPO / "lambdas" / "recsys_lambdas" / "openapi.json").read_text())
    assert "/recommendations" in served["paths"]


def test_gateway_errors_are_json(stack):
    assert get(stack, "/nope").status_code == 404
    assert "message" in get(stack, "/nope").json()
    wrong = get(stack, "/recommendations")
    assert wrong.status_code == 405 and "message" in wrong.json()
    big = requests.post(stack["url"] + "/events", data=b"{" + b" " * (10 * 1024 * 1024) + b"}",
                        headers={"Content-Type": "application/json"}, timeout=60)
    assert big.status_code == 413 and "message" in big.json()


def test_bad_input_is_a_4xx_with_a_message(stack):
    for body in ({}, {"userId": "u1", "numResults": "ten"}, ["not", "an", "object"]):
        resp = post(stack, "/recommendations", body)
        assert 400 <= resp.status_code < 500, (body, resp.status_code, resp.text)
        assert resp.json()["message"]


def test_an_anonymous_session_named_like_a_user_leaves_that_users_answers_unchanged(stack, batch):
    user = batch["users"][2]["userId"]
    before = post(stack, "/recommendations", {"userId": user, "numResults": 10})
    assert before.status_code == 200, before.text
    now = int(time.time())
    spoof = post(stack, "/events", {"trackingId": "e2e", "sessionId": user, "eventList": [
        {"eventId": f"spoof-{n}", "eventType": "click", "itemId": item, "sentAt": now + n}
        for n, item in enumerate(item_ids(before.json())[:3])]})
    assert spoof.status_code == 200, spoof.text
    after = post(stack, "/recommendations", {"userId": user, "numResults": 10})
    assert item_ids(after.json()) == item_ids(before.json())


def test_identical_events_without_ids_in_one_request_are_two_events(stack, batch):
    user = "e2e-repeat-buyer"
    item = next(iter(batch["items"]))
    event = {"eventType": "purchase", "itemId": item, "sentAt": int(time.time())}
    resp = post(stack, "/events", {"trackingId": "e2e", "userId": user, "sessionId": "s", "eventList": [event, event]})
    assert resp.status_code == 200, resp.text
    results = resp.json()["eventResults"]
    assert [r["status"] for r in results] == ["ACCEPTED", "ACCEPTED"] and results[0]["eventId"] != results[1]["eventId"]
    state = stack["state"]
    row = boto3.client("dynamodb", endpoint_url=state["aws_url"], region_name="us-east-1").get_item(
        TableName=state["tables"]["users"], Key={"userId": {"S": user}}, ConsistentRead=True)["Item"]
    assert [v["S"] for v in row["recentItems"]["L"]] == [item, item]


def test_delete_makes_a_user_read_as_new_and_the_retrain_leaves_them_out(stack, batch, tmp_path):
    """Events, DELETE, the user reads as new over HTTP; retraining on the stack's data (its event
    log and its deletion records, as the pipeline's channels) leaves the user out of the model."""
    from recsys import train

    user = batch["users"][3]["userId"]
    before = post(stack, "/recommendations", {"userId": user, "numResults": 10})
    assert before.status_code == 200, before.text
    now = int(time.time())
    events = post(stack, "/events", {"trackingId": "e2e", "userId": user, "sessionId": "s-del", "eventList": [
        {"eventId": f"del-{n}", "eventType": "click", "itemId": item, "sentAt": now + n}
        for n, item in enumerate(item_ids(before.json())[:2])]})
    assert events.status_code == 200, events.text
    resp = requests.delete(f"{stack['url']}/users/{user}", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["deleted"]["batchRecommendations"] is True and resp.json()["deleted"]["historyItems"] >= 2
    after = post(stack, "/recommendations", {"userId": user, "numResults": 10})
    stranger = post(stack, "/recommendations", {"userId": "e2e-never-seen", "numResults": 10})
    assert item_ids(after.json()) == item_ids(stranger.json()) != item_ids(before.json())
    again = requests.delete(f"{stack['url']}/users/{user}", timeout=30)
    assert again.status_code == 200 and again.json()["deleted"] == {"historyItems": 0, "batchRecommendations": False}
    bad = requests.delete(f"{stack['url']}/users/__popular__", timeout=30)
    assert bad.status_code == 400 and bad.json()["message"]

    state = stack["state"]
    s3 = boto3.client("s3", endpoint_url=state["aws_url"], region_name="us-east-1")
    folders = {}
    for prefix in ("events/", "items/", "deletions/"):
        folder = folders[prefix] = tmp_path / prefix.rstrip("/")
        for obj in s3.list_objects_v2(Bucket=state["bucket"], Prefix=prefix).get("Contents", []):
            target = folder / obj["Key"][len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(state["bucket"], obj["Key"], str(target))
    assert (folders["deletions/"] / "_marker.json").read_text() == "{}"  # the stack's MarkDeletions
    said: list = []
    train.train(folders["events/"], folders["items/"], tmp_path / "model", tmp_path / "out",
                hyperparameters={"dim": 8, "epochs": 1, "ef_construction": 40, "ranker_users": 100,
                                 "ranker_negatives": 5, "ranker_hard_negatives": 2},
                log=said.append, deletions_path=folders["deletions/"])
    assert any("deleted user(s)" in line and "dropped 0 " not in line for line in said), said
    retrained = [json.loads(line)["userId"] for line in
                 (tmp_path / "out" / "batch" / "users.jsonl").read_text().splitlines() if line]
    assert user not in retrained and batch["users"][4]["userId"] in retrained

    # the pipeline's PurgeDeletedUsers step, against the stack's embedded S3: the raw log loses
    # the user's rows (the seed data uploaded at start-up and the rows the API logged)
    from recsys import data as recsys_data
    from recsys_lambdas.pipeline import purge

    report = purge.purge(s3, state["bucket"])
    assert report.complete and report.pending_users == 1 and report.rows_removed >= 2, report
    purged = tmp_path / "purged"
    for obj in s3.list_objects_v2(Bucket=state["bucket"], Prefix="events/").get("Contents", []):
        target = purged / obj["Key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(state["bucket"], obj["Key"], str(target))
    raw = recsys_data.load_events(purged / "events")  # no deletions channel: the log itself
    assert user not in set(raw.user_ids) and batch["users"][4]["userId"] in set(raw.user_ids)
    assert purge.purge(s3, state["bucket"]).pending_users == 0


def test_the_dev_blocks_named_filters_work_over_http(stack, batch):
    """cdk.json's dev ``filters`` are the local functions' NAMED_FILTERS, as CDK deploys them."""
    from collections import Counter

    category = Counter(i.get("category") for i in batch["items"].values()).most_common(1)[0][0]
    arn = "arn:aws:personalize:us-east-1:000000000000:filter/"
    user = batch["users"][0]["userId"]
    inside = post(stack, "/recommendations", {"userId": user, "numResults": 10, "filterArn": arn + "include-categories",
                                               "filterValues": {"CATEGORIES": f'"{category}"'}})
    outside = post(stack, "/recommendations", {"userId": user, "numResults": 10, "filterArn": arn + "exclude-categories",
                                                "filterValues": {"CATEGORIES": f'"{category}"'}})
    assert inside.status_code == 200 and outside.status_code == 200, (inside.text, outside.text)
    assert item_ids(inside.json()) and item_ids(outside.json())
    assert {batch["items"][i]["category"] for i in item_ids(inside.json())} == {category}
    assert category not in {batch["items"][i]["category"] for i in item_ids(outside.json())}
    unknown = post(stack, "/recommendations", {"userId": user, "filterArn": arn + "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000])
def test_deeply_nested_json_is_a_4xx_over_http(stack, raw):
    for path in ("/events", "/recommendations"):
        resp = requests.post(stack["url"] + path, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
        assert resp.status_code == 400, (path, resp.status_code, resp.text[:200])
        # API Gateway's validator answers first (as in AWS); the handler says "nested too deeply"
        assert resp.json()["message"] == "Invalid request body"
        assert resp.headers["x-amzn-ErrorType"] == "BadRequestException"


def test_a_malformed_chunked_body_is_a_4xx_over_http(stack):
    import socket

    port = int(stack["url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabcde\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"malformed chunked body" in answer


def test_each_functions_output_is_in_its_own_log_not_the_terminal(stack, batch):
    user = batch["users"][3]["userId"]
    resp = post(stack, "/events", {"trackingId": "e2e", "userId": user, "sessionId": "s-log", "eventList": [
        {"eventId": "log-0", "eventType": "click", "itemId": next(iter(batch["items"])), "sentAt": int(time.time())}]})
    assert resp.status_code == 200, resp.text
    logs = stack["work_dir"] / "logs"
    assert wait_until(lambda: "EventsAccepted" in (logs / "events.log").read_text(), 10)
    assert (logs / "recommendations.log").exists() and (logs / "meta.log").exists()
    assert '"_aws"' not in stack["proc"].output()  # no EMF blob among the stack's own lines


def test_endpoint_serves_the_real_model_from_two_worker_processes(stack):
    endpoint = stack["state"]["endpoint_url"]
    body = {"action": "popular", "k": 3}
    pids: set = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:  # concurrent requests reach both workers
        with ThreadPoolExecutor(4) as pool:
            pids |= set(pool.map(lambda _: requests.post(endpoint + "/invocations", json=body,
                                                         timeout=30).headers["X-Worker-Pid"], range(8)))
    assert len(pids) == 2
    runtime = boto3.client("sagemaker-runtime", endpoint_url=endpoint, region_name="us-east-1")
    answer = runtime.invoke_endpoint(EndpointName=stack["state"]["endpoint_name"],
                                     ContentType="application/json", Body=json.dumps(body))
    doc = json.loads(answer["Body"].read())
    assert len(doc["items"]) == 3 and doc["modelVersion"] == stack["state"]["model_version"]


def test_guided_tour_shows_real_answers_and_an_event_changing_the_next_one(stack, batch):
    from types import SimpleNamespace

    from recsys_tools.local.tour import run_tour

    lines: list = []
    fake_stack = SimpleNamespace(
        gateway_url=stack["url"], endpoint_url=stack["state"]["endpoint_url"],
        items_by_id=batch["items"], say=lines.append,
        sample_users=[(u["userId"], u["recentItems"]) for u in batch["users"][5:15]])
    run_tour(fake_stack)
    text = "\n".join(lines)
    assert text.count("HTTP 200") >= 5, text
    changed = re.search(r"(\d+) of (\d+) recommendations changed after the events", text)
    assert changed and int(changed.group(1)) > 0, text
    assert any(item["title"] in text for item in batch["items"].values())  # answers show titles
    assert f"curl -s -X POST '{stack['url']}/recommendations'" in text


# --- failure, shutdown, restart -------------------------------------------------------------


def test_endpoint_failure_degrades_the_api_without_5xx(stack, batch):
    endpoint_pid = stack["state"]["endpoint_pid"]
    members = group_members(endpoint_pid)
    assert len(members) == 3  # the master and its two workers
    os.killpg(endpoint_pid, signal.SIGKILL)  # the whole endpoint goes away at once
    assert wait_until(lambda: not group_members(endpoint_pid), 10)
    user = batch["users"][0]["userId"]
    resp = post(stack, "/recommendations", {"userId": user, "numResults": 5})
    assert resp.status_code == 200, resp.text
    assert resp.json()["degraded"] is True
    assert len(resp.json()["itemList"]) == 5  # from the batch recommendations in DynamoDB
    item = next(iter(batch["items"]))
    for response in (
        post(stack, "/recommendations", {"itemId": item, "numResults": 5}),
        post(stack, "/personalize-ranking", {"userId": user, "inputList": list(batch["items"])[:3]}),
        get(stack, f"/items/{item}/similar"),
        get(stack, "/health"),
    ):
        assert response.status_code < 500, (response.url, response.status_code, response.text)
    # Search degrades to a whole-word title match over the search rows the pipeline loaded
    search = get(stack, "/search?q=the&numResults=5")
    assert search.status_code == 200, search.text
    assert search.json()["degraded"] is True and len(search.json()["itemList"]) == 5
    health = get(stack, "/health").json()["localStack"]
    assert health["endpoint"]["ok"] is False and health["endpoint"]["workers"] == 0


def test_sigint_stops_everything_restart_reuses_the_model_and_a_taken_port_is_refused(stack):
    proc, state = stack["proc"], stack["state"]
    ports = [stack["proc"].port, port_of(state["aws_url"])]
    pids = [state["aws_pid"], state["pid"]]
    assert proc.stop(signal.SIGINT, timeout=60) == 0
    assert "stopped: every process and port of the local stack is released" in proc.output()
    assert wait_until(lambda: not any(alive(p) for p in pids), 10)
    assert not group_members(state["aws_pid"])
    assert wait_until(lambda: not any(listening(p) for p in ports), 10)
    assert not (stack["work_dir"] / "run" / "stack.json").exists()

    # A second `recsys local up` on the same port starts cleanly and reuses the trained model.
    again = StackProcess(stack["work_dir"], stack["proc"].port, "restart")
    try:
        restarted = again.wait_ready()
        assert restarted["model_reused"] is True
        assert restarted["model_version"] == state["model_version"]
        assert "reusing the model trained earlier" in again.output()
        assert "[train-retrieval" not in again.output()
        assert post(stack, "/recommendations", {"userId": "u00001", "numResults": 3}).status_code == 200

        # A third one on the taken port: one clear line, non-zero exit, nothing started.
        started = time.monotonic()
        third = subprocess.run(
            [python(), "-m", "recsys_tools.local", "up", "--port", str(again.port),
             "--work-dir", str(stack["work_dir"])],
            env=child_env(), cwd=str(REPO), capture_output=True, text=True, timeout=120)
        assert third.returncode == 2
        assert f"port {again.port}" in third.stderr and "already in use" in third.stderr
        assert len(third.stderr.strip().splitlines()) == 1
        assert "[1/5]" not in third.stdout
        assert time.monotonic() - started < 60
    finally:
        assert again.stop(signal.SIGTERM) == 0, again.output()[-3000:]
    assert wait_until(lambda: not listening(again.port), 10)
    assert not group_members(restarted["endpoint_pid"]) and not group_members(restarted["aws_pid"])


def test_ctrl_c_during_requests_stops_cleanly_without_a_traceback(stack):
    """A terminal's Ctrl-C sends SIGINT to the whole foreground process group (the gateway, moto,
    the endpoint and its workers) while requests are in flight: every part stops, the exit is 0,
    and the terminal shows no traceback (an interrupted request's errors stay in .local/logs)."""
    import threading

    stack["proc"].stop()  # (stopped already when the whole module runs) its work dir is ours now
    proc = StackProcess(stack["work_dir"], free_port(), "ctrl-c")
    try:
        proc.wait_ready()
    except BaseException:
        proc.stop(signal.SIGKILL)
        raise
    stop = threading.Event()
    answered: list = []

    def traffic() -> None:
        while not stop.is_set():
            try:
                answered.append(requests.post(proc.url + "/recommendations",
                                              json={"userId": "u00001", "numResults": 50}, timeout=5).status_code)
                requests.post(proc.url + "/events", json={"trackingId": "t", "userId": "u00002", "sessionId": "s",
                              "eventList": [{"eventType": "click", "itemId": "i00001", "sentAt": time.time()}]},
                              timeout=5)
            except requests.RequestException:
                pass

    clients = [threading.Thread(target=traffic, daemon=True) for _ in range(4)]
    for t in clients:
        t.start()
    try:
        assert wait_until(lambda: len(answered) >= 8, 30), answered  # requests are flowing
        os.killpg(proc.proc.pid, signal.SIGINT)
        assert proc.proc.wait(60) == 0
    finally:
        stop.set()
        proc.stop(signal.SIGKILL)
    output = proc.output()
    assert "SIGINT received: stopping the local stack" in output
    assert "stopped: every process and port of the local stack is released" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
