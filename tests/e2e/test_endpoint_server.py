"""The local SageMaker endpoint: container routes, runtime route, worker processes, shutdown.

These tests serve a small fake inference module (written below) so they exercise the server
itself; the stack tests serve the project's real ``sagemaker/inference.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from recsys_tools.local.ports import bind_listener, free_port

from .conftest import alive, child_env, listening, python, wait_until

pytestmark = pytest.mark.e2e

FAKE_INFERENCE = textwrap.dedent('''
    import json, os, time

    def model_fn(model_dir):
        with open(os.path.join(model_dir, "weights.json")) as fh:
            return {"weights": json.load(fh), "pid": os.getpid()}

    def input_fn(body, content_type):
        if content_type != "application/json":
            raise ValueError("unsupported content type " + content_type)
        return json.loads(body)

    def predict_fn(data, model):
        if data.get("fail"):
            raise RuntimeError("model exploded")
        time.sleep(data.get("sleep", 0))
        return {"answer": model["weights"]["answer"], "pid": model["pid"], "echo": data}

    def output_fn(prediction, accept):
        return json.dumps(prediction), "application/json"
''')


def start_endpoint(tmp_path, port: int, workers: int = 2, weights: bool = True) -> subprocess.Popen:
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "inference.py").write_text(FAKE_INFERENCE)
    (tmp_path / "model").mkdir(exist_ok=True)
    if weights:
        (tmp_path / "model" / "weights.json").write_text(json.dumps({"answer": 42}))
    return subprocess.Popen(
        [python(), "-m", "recsys_tools.local.endpoint", "--model-dir", str(tmp_path / "model"),
         "--inference", str(tmp_path / "code" / "inference.py"), "--port", str(port),
         "--workers", str(workers), "--name", "test-endpoint"],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def read_ready(proc: subprocess.Popen) -> dict:
    for line in proc.stdout:
        if line.startswith("READY "):
            return dict(part.split("=", 1) for part in line.split()[1:])
    raise AssertionError(f"endpoint exited with {proc.wait()} before it was ready")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("endpoint")
    port = free_port()
    proc = start_endpoint(tmp, port)
    ready = read_ready(proc)
    info = {"url": f"http://127.0.0.1:{port}", "port": port, "proc": proc,
            "workers": [int(p) for p in ready["workers"].split(",")]}
    yield info
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_ping_answers_200(endpoint):
    assert requests.get(f"{endpoint['url']}/ping", timeout=5).status_code == 200


def test_invocations_run_the_handler_chain_on_the_loaded_model(endpoint):
    resp = requests.post(f"{endpoint['url']}/invocations", json={"q": 1}, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    doc = resp.json()
    assert doc["answer"] == 42 and doc["echo"] == {"q": 1}
    # model_fn ran once in the worker that answered
    assert doc["pid"] == int(resp.headers["X-Worker-Pid"])


def test_two_worker_processes_share_the_port(endpoint):
    assert len(endpoint["workers"]) == 2
    with ThreadPoolExecutor(4) as pool:
        pids = set(pool.map(
            lambda _: requests.post(f"{endpoint['url']}/invocations", json={"sleep": 0.3},
                                    timeout=10).json()["pid"], range(4)))
    assert len(pids) == 2  # while one worker sleeps, the other takes the next connection


def test_boto3_sagemaker_runtime_client_works_against_it(endpoint):
    client = boto3.client("sagemaker-runtime", endpoint_url=endpoint["url"], region_name="us-east-1")
    answer = client.invoke_endpoint(EndpointName="test-endpoint", Body=json.dumps({"q": 2}),
                                    ContentType="application/json", Accept="application/json")
    assert json.loads(answer["Body"].read())["echo"] == {"q": 2}
    assert answer["ContentType"] == "application/json"


def test_model_failure_is_a_model_error_on_the_runtime_route(endpoint):
    client = boto3.client("sagemaker-runtime", endpoint_url=endpoint["url"], region_name="us-east-1")
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="test-endpoint", Body=json.dumps({"fail": True}),
                               ContentType="application/json")
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 500
    assert "model exploded" in info.value.response["Error"]["Message"]
    # and the container route answers the raw 500, as the container does
    resp = requests.post(f"{endpoint['url']}/invocations", json={"fail": True}, timeout=5)
    assert resp.status_code == 500 and "model exploded" in resp.text


def test_unknown_endpoint_name_is_a_validation_error(endpoint):
    client = boto3.client("sagemaker-runtime", endpoint_url=endpoint["url"], region_name="us-east-1")
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="other", Body=b"{}", ContentType="application/json")
    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_a_killed_worker_is_replaced(endpoint):
    victim = endpoint["workers"][0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: not alive(victim), 5)
    # the survivor and a fresh worker keep answering
    pids = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(pids) < 2:
        with ThreadPoolExecutor(2) as pool:
            pids |= set(pool.map(lambda _: requests.post(
                f"{endpoint['url']}/invocations", json={"sleep": 0.2}, timeout=10).json()["pid"],
                range(2)))
    assert len(pids) == 2 and victim not in pids


def test_port_in_use_is_one_clear_line_and_exit_2(tmp_path):
    holder = bind_listener("127.0.0.1", 0, "test")
    port = holder.getsockname()[1]
    try:
        proc = start_endpoint(tmp_path, port)
        out, _ = proc.communicate(timeout=60)
    finally:
        holder.close()
    assert proc.returncode == 2
    assert f"port {port}" in out and "already in use" in out


def test_sigterm_stops_master_and_workers_and_frees_the_port(tmp_path):
    port = free_port()
    proc = start_endpoint(tmp_path, port, workers=2)
    workers = [int(p) for p in read_ready(proc)["workers"].split(",")]
    assert listening(port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert wait_until(lambda: not any(alive(p) for p in workers), 5)
    assert not listening(port)


def test_broken_model_fails_the_start_with_a_message(tmp_path):
    proc = start_endpoint(tmp_path, free_port(), weights=False)  # model_fn can't open it
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "weights.json" in out and "exited while loading the model" in out
