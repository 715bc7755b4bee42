"""In-process latency of each API handler: moto for DynamoDB/Firehose/S3, the SageMaker endpoint
answered in-process by sagemaker/inference.py on a real trained model (no HTTP, no network).

It measures what the Lambda adds (parsing, validation, DynamoDB round trips in moto, the model's
own work, response shaping), not API Gateway or a real network.

    python -m bench.handlers [--requests 300] [--model-dir DIR] [--users 2000 --items 1000 --events 60000]
                             [--out bench/results/handlers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
for sub in ("sagemaker", "lambdas", "tests/lambdas"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))


def _percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def _env() -> None:
    import api_support as sup
    from recsys_lambdas import contracts

    os.environ.update({
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": sup.REGION,
        contracts.ENV_USERS_TABLE: sup.table(contracts.USERS), contracts.ENV_ITEMS_TABLE: sup.table(contracts.ITEMS),
        contracts.ENV_BATCH_TABLE: sup.table(contracts.BATCH_RECOMMENDATIONS),
        contracts.ENV_IDEMPOTENCY_TABLE: sup.table(contracts.IDEMPOTENCY),
        contracts.ENV_ENDPOINT_NAME: sup.ENDPOINT, contracts.ENV_EVENTS_STREAM: sup.STREAM,
        contracts.ENV_SERVING_MODE: "realtime", "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    })
    for key in (contracts.ENV_AWS_ENDPOINT_URL, contracts.ENV_SAGEMAKER_ENDPOINT_URL):
        os.environ.pop(key, None)


def run(requests: int, model_dir: Path, batch_dir: Path) -> Dict[str, Any]:
    """Time each operation ``requests`` times against a fresh moto world; returns the figures."""
    import random

    import api_support as sup
    from api_support import call
    from conftest import ApiWorld
    from moto import mock_aws
    from recsys_lambdas import aws

    _env()
    endpoint = sup.InProcessEndpoint(model_dir)
    rng = random.Random(0)
    with mock_aws():
        world = ApiWorld()
        world.create()
        sup.load_batch_output(world.ddb, batch_dir)
        users = [u["userId"] for u in sup.sample_users(batch_dir, n=50)]
        items = [r["itemId"] for r in sup.read_jsonl(batch_dir / "items.jsonl")]
        aws.reset()
        endpoint.attach(aws.client("sagemaker-runtime"))
        counter = {"n": 0}

        def event_body() -> Dict[str, Any]:
            counter["n"] += 1
            return {"trackingId": "bench", "userId": rng.choice(users), "sessionId": "s",
                    "eventList": [{"eventId": f"b-{counter['n']}", "eventType": "click",
                                   "itemId": rng.choice(items), "sentAt": time.time()}]}

        operations: Dict[str, Callable[[], Any]] = {
            "GetRecommendations (known user)": lambda: call("POST", "/recommendations", {"userId": rng.choice(users), "numResults": 10}),
            "GetRecommendations (cold user)": lambda: call("POST", "/recommendations", {"userId": f"cold-{rng.random()}", "numResults": 10}),
            "GetRecommendations (related items)": lambda: call("POST", "/recommendations", {"itemId": rng.choice(items), "numResults": 10}),
            "GetSimilarItems": lambda: call("GET", f"/items/{rng.choice(items)}/similar", query={"numResults": "10"}),
            "GetPersonalizedRanking (25 items)": lambda: call("POST", "/personalize-ranking", {"userId": rng.choice(users), "inputList": rng.sample(items, 25)}),
            "Search": lambda: call("GET", "/search", query={"q": rng.choice(["little", "symphony", "night", "the"]), "userId": rng.choice(users)}),
            "PutEvents (1 event)": lambda: call("POST", "/events", event_body()),
            "GetRecommendations (degraded: ModelError)": None,  # filled below
            "Health": lambda: call("GET", "/health"),
        }
        results: Dict[str, Any] = {}
        for name, op in operations.items():
            if op is None:
                continue
            for _ in range(min(10, requests)):  # warm-up: imports, first compile, caches
                op()
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                r = op()
                times.append((time.perf_counter() - t0) * 1000)
                if r.status != 200:
                    raise SystemExit(f"{name}: HTTP {r.status}: {r.body}")
            results[name] = {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(_percentile(times, 99), 3),
                             "mean_ms": round(statistics.fmean(times), 3), "requests": requests}
        # the fallback path: the endpoint answers ModelError every time
        from botocore.stub import Stubber

        stub = Stubber(aws.client("sagemaker-runtime"))
        for _ in range(requests + 10):
            stub.add_client_error("invoke_endpoint", service_error_code="ModelError", http_status_code=424)
        stub.activate()
        times = []
        for n in range(requests + 10):
            t0 = time.perf_counter()
            r = call("POST", "/recommendations", {"userId": rng.choice(users), "numResults": 10})
            if n >= 10:
                times.append((time.perf_counter() - t0) * 1000)
            assert r.body["degraded"] is True
        stub.deactivate()
        results["GetRecommendations (degraded: ModelError)"] = {
            "p50_ms": round(statistics.median(times), 3), "p99_ms": round(_percentile(times, 99), 3),
            "mean_ms": round(statistics.fmean(times), 3), "requests": requests}
    return results


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--model-dir", type=Path, help="a trained model dir (with ../output/batch next to it)")
    parser.add_argument("--batch-dir", type=Path, help="training's batch/ output for that model")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--events", type=int, default=60000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "handlers.json")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        if args.model_dir:
            model_dir = args.model_dir
            batch_dir = args.batch_dir or model_dir.parent / "output" / "batch"
            if not (batch_dir / "recommendations.jsonl").exists():
                parser.error(f"no batch output at {batch_dir}; pass --batch-dir")
            data = {"model_dir": str(model_dir)}
        else:
            from recsys import synth, train

            events, items = synth.write_dataset(Path(tmp) / "data", n_users=args.users, n_items=args.items,
                                                n_events=args.events, seed=0)
            model_dir, out = Path(tmp) / "model", Path(tmp) / "output"
            print(f"training on synthetic data: {args.users} users, {args.items} items, {args.events} events ...", flush=True)
            train.train(events, items, model_dir, out, log=lambda *_: None)
            batch_dir = out / "batch"
            data = {"users": args.users, "items": args.items, "events": args.events}
        # the handlers print their EMF metrics to stdout, as in Lambda; keep them out of the table
        import contextlib
        import io
        import warnings

        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = run(args.requests, model_dir, batch_dir)
    report = {"benchmark": "handlers_in_process", "data": data, "requests_per_operation": args.requests,
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()},
              "note": "moto in-process + sagemaker/inference.py in-process; excludes API Gateway and network",
              "operations": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    width = max(len(k) for k in results)
    print(f"{'operation':<{width}}  {'p50 ms':>8}  {'p99 ms':>8}")
    for name, fig in results.items():
        print(f"{name:<{width}}  {fig['p50_ms']:>8.2f}  {fig['p99_ms']:>8.2f}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
