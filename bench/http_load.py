"""Bounded HTTP load test of the local stack (loopback only).

N worker threads send requests back to back for S seconds (and at most ``--max-requests`` in
all), then stop by themselves. The default request is ``POST /recommendations`` for a user drawn
from the synthetic generator's ids (``u00000``..); ``--mix`` adds similar-items and search
requests. Reports throughput, p50/p95/p99 latency and errors (non-2xx, timeouts, refused).

    recsys local up --port 8080 &          # the local stack (another terminal)
    python -m bench.http_load --url http://127.0.0.1:8080 --concurrency 4 --duration 30

Refuses any URL whose host is not a loopback address: this tool never sends traffic elsewhere.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import random
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class NotLoopback(ValueError):
    """The target URL is not on this machine's loopback interface."""


def check_loopback(url: str) -> tuple[str, int]:
    """(host, port) of an ``http://`` loopback URL; raises :class:`NotLoopback` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise NotLoopback(f"--url must be http://127.0.0.1:PORT (loopback, plain HTTP), got {url!r}")
    host = parts.hostname or ""
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise NotLoopback(f"--url host {host!r} is not a loopback address; refusing to send traffic")
        except ValueError:
            raise NotLoopback(f"--url host {host!r} is not a loopback address; refusing to send traffic") from None
    if parts.port is None:
        raise NotLoopback(f"--url must name the port, got {url!r}")
    return ("127.0.0.1" if host == "localhost" else host), parts.port


def _requests(users: int, items: int, mix: bool, rng: random.Random) -> tuple[str, str, bytes | None]:
    kind = rng.random() if mix else 0.0
    if kind < 0.7:
        body = {"userId": f"u{rng.randrange(users):05d}", "numResults": 10}
        return "POST", "/recommendations", json.dumps(body).encode()
    if kind < 0.85:
        return "GET", f"/items/i{rng.randrange(items):05d}/similar?numResults=10", None
    return "GET", f"/search?q=river&userId=u{rng.randrange(users):05d}&numResults=10", None


def run_load(url: str, concurrency: int, duration: float, max_requests: int = 100_000, users: int = 2000,
             items: int = 1000, mix: bool = False, timeout: float = 5.0, seed: int = 0) -> dict[str, Any]:
    """Run the bounded load test and return its figures."""
    host, port = check_loopback(url)
    if not 1 <= concurrency <= 256:
        raise ValueError(f"--concurrency must be between 1 and 256, got {concurrency}")
    if not 0 < duration <= 3600:
        raise ValueError(f"--duration must be in (0, 3600] seconds, got {duration}")
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = [0]
    deadline = time.perf_counter() + duration

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        while time.perf_counter() < deadline:
            with lock:
                if sent[0] >= max_requests:
                    break
                sent[0] += 1
            method, path, body = _requests(users, items, mix, rng)
            t = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                ok = 200 <= resp.status < 300
                key = None if ok else f"HTTP {resp.status}"
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__ if not isinstance(exc, socket.timeout) else "timeout"
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            elapsed = time.perf_counter() - t
            with lock:
                if key is None:
                    latencies.append(elapsed)
                else:
                    errors[key] = errors.get(key, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(duration + timeout + 5)
    wall = time.perf_counter() - start
    lat = sorted(latencies)

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3, 2) if lat else None

    return {"url": url, "concurrency": concurrency, "duration_s": round(wall, 2), "mix": mix,
            "requests": len(lat) + sum(errors.values()), "ok": len(lat), "errors": sum(errors.values()),
            "error_kinds": errors, "throughput_rps": round(len(lat) / wall, 1) if wall else 0.0,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit 2 on a bad argument (e.g. a non-loopback URL)."""
    ap = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="http://127.0.0.1:PORT of the local stack's API")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds (max 3600)")
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=2000, help="synthetic user ids u00000.. to draw from")
    ap.add_argument("--items", type=int, default=1000, help="synthetic item ids i00000.. to draw from")
    ap.add_argument("--mix", action="store_true", help="70%% recommendations, 15%% similar, 15%% search")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args(argv)
    try:
        result = run_load(args.url, args.concurrency, args.duration, args.max_requests, args.users, args.items, args.mix)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
