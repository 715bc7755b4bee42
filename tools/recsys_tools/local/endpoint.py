"""A local SageMaker-compatible endpoint: ``inference.py`` served by worker processes on one port.

Run by the stack as ``python -m recsys_tools.local.endpoint --model-dir DIR --port N --workers 2``.

* The master binds the socket, then forks the workers (before it starts any thread) and
  supervises them: a worker that dies is replaced, as SageMaker replaces an unhealthy instance.
  All workers accept() on the one listening socket, so concurrent requests spread over them the
  way the load balancer spreads them over the endpoint's instances.
* Each worker imports the inference module and calls ``model_fn(model_dir)`` once, then answers
  each request with ``input_fn`` -> ``predict_fn`` -> ``output_fn`` (or ``transform_fn``), as the
  SageMaker inference toolkit does.
* Routes: the container contract (``GET /ping``, ``POST /invocations``) and the runtime API
  (``POST /endpoints/{name}/invocations``), so boto3's ``sagemaker-runtime`` client works with
  ``endpoint_url`` pointed here. On the runtime route a model failure is a 424 ``ModelError``
  (as the real service answers) rather than the container's raw 500.

Every response carries ``X-Worker-Pid`` so a caller can see which worker answered.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import select
import signal
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

from recsys_tools.local.ports import PortInUse, bind_listener
from recsys_tools.local.processes import READY_PREFIX, die_with_parent

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
DEFAULT_ACCEPT = "application/json"
RUNTIME_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")


def default_inference_path(model_dir: Optional[Path] = None) -> Path:
    """The inference script SageMaker would run: the model's own ``code/inference.py`` (training
    job 2 puts the code there; the endpoint's SAGEMAKER_SUBMIT_DIRECTORY is /opt/ml/model/code),
    else ``sagemaker/inference.py`` next to the ``recsys`` package (models without code/)."""
    if model_dir is not None and (Path(model_dir) / "code" / "inference.py").is_file():
        return Path(model_dir).resolve() / "code" / "inference.py"
    import recsys

    return Path(recsys.__file__).resolve().parent.parent / "inference.py"


def load_inference_module(path: Path) -> ModuleType:
    """Import the inference script by path, its folder first on ``sys.path`` as in the container."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"inference script not found: {path}")
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


class InferenceHandlers:
    """The toolkit's handler chain over one loaded model."""

    def __init__(self, module: ModuleType, model_dir: str) -> None:
        self.module = module
        if not hasattr(module, "model_fn"):
            raise AttributeError(f"{module.__file__} defines no model_fn(model_dir)")
        self.model = module.model_fn(model_dir)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Answer one request; returns (response body, content type). Exceptions propagate."""
        module = self.module
        if hasattr(module, "transform_fn"):
            result = module.transform_fn(self.model, body, content_type, accept)
        else:
            data = module.input_fn(body, content_type) if hasattr(module, "input_fn") else body
            prediction = module.predict_fn(data, self.model)
            result = (module.output_fn(prediction, accept) if hasattr(module, "output_fn")
                      else json.dumps(prediction))
        response_type = accept
        if isinstance(result, tuple):  # the toolkit accepts (body, content_type)
            result, response_type = result[0], result[1]
        if isinstance(result, str):
            result = result.encode("utf-8")
        return bytes(result), response_type


def make_handler_class(handlers: InferenceHandlers, endpoint_name: str,
                       access_log: bool) -> type:
    """The request handler class of one worker."""

    class EndpointRequestHandler(BaseHTTPRequestHandler):
        server_version = "recsys-local-endpoint"
        protocol_version = "HTTP/1.0"  # one request per connection: a busy worker holds no idle socket
        timeout = 60

        def log_message(self, format: str, *args: Any) -> None:
            if access_log:
                sys.stdout.write(f"pid {os.getpid()} " + (format % args) + "\n")
                sys.stdout.flush()

        def _send(self, status: int, body: bytes, content_type: str,
                  extra: Optional[dict[str, str]] = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Worker-Pid", str(os.getpid()))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_json(self, status: int, doc: dict[str, Any],
                       extra: Optional[dict[str, str]] = None) -> None:
            self._send(status, json.dumps(doc).encode(), "application/json", extra)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/ping":
                self._send(200, b"", "application/json")
            else:
                self._send_json(404, {"message": f"no route GET {path}"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            runtime = RUNTIME_PATH.match(path)
            if path != "/invocations" and not runtime:
                self._send_json(404, {"message": f"no route POST {path}"})
                return
            if runtime and runtime.group("name") != endpoint_name:
                self._runtime_error(400, "ValidationError",
                                    f"Endpoint {runtime.group('name')} not found (this local "
                                    f"endpoint is {endpoint_name!r}).")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self._send_json(400, {"message": "Content-Length must be a non-negative integer"})
                return
            if length > MAX_PAYLOAD_BYTES:
                self.close_connection = True
                if runtime:
                    self._runtime_error(413, "ValidationError",
                                        f"Request payload is {length} bytes; at most "
                                        f"{MAX_PAYLOAD_BYTES} allowed.")
                else:
                    self._send_json(413, {"message": f"payload too large: {length} bytes"})
                return
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type") or "application/json"
            accept = self.headers.get("Accept") or DEFAULT_ACCEPT
            if accept in ("*/*", ""):
                accept = DEFAULT_ACCEPT
            try:
                response, response_type = handlers.invoke(body, content_type, accept)
            except Exception as exc:  # model code failed: the container answers 500
                message = f"{type(exc).__name__}: {exc}"
                sys.stdout.write(f"pid {os.getpid()} model error: {message}\n"
                                 + traceback.format_exc())
                sys.stdout.flush()
                if runtime:
                    self._runtime_error(424, "ModelError", message, original_status=500)
                else:
                    self._send(500, message.encode(), "text/plain")
                return
            extra = {"x-Amzn-Invoked-Production-Variant": "AllTraffic"} if runtime else {}
            self._send(200, response, response_type, extra)

        def _runtime_error(self, status: int, error_type: str, message: str,
                           original_status: Optional[int] = None) -> None:
            doc: dict[str, Any] = {"__type": error_type, "Message": message, "message": message}
            if original_status is not None:
                doc.update({"OriginalStatusCode": original_status, "OriginalMessage": message,
                            "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
                            "LogStreamArn": f"local:{endpoint_name}"})
            self._send_json(status, doc, {"x-amzn-ErrorType": error_type})

    return EndpointRequestHandler


def worker_main(sock: Any, module: ModuleType, model_dir: str, endpoint_name: str,
                ready_fd: int, access_log: bool) -> None:
    """A worker: load the model once, then serve on the shared socket until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master decides when workers stop
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    die_with_parent()
    handlers = InferenceHandlers(module, model_dir)
    os.write(ready_fd, f"{os.getpid()}\n".encode())
    os.close(ready_fd)
    server = HTTPServer(sock.getsockname(), make_handler_class(handlers, endpoint_name, access_log),
                        bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    # Every worker wakes on a new connection and one wins the accept(); the others must not
    # block in accept(), so the shared socket is non-blocking (accepted ones are blocking).
    sock.setblocking(False)
    server.serve_forever(poll_interval=0.5)


class Master:
    """Binds the socket, forks and supervises the workers."""

    def __init__(self, sock: Any, n_workers: int, start_worker: Callable[[int], None]) -> None:
        self.sock = sock
        self.n_workers = n_workers
        self.start_worker = start_worker
        self.workers: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self.ready_r, self.ready_w = os.pipe()
        self.ready_pids: list[int] = []

    def spawn(self) -> int:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(self.ready_r)
                self.start_worker(self.ready_w)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:
                traceback.print_exc()
                code = 3
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.workers[pid] = time.monotonic()
        return pid

    def _read_ready(self, timeout: float) -> None:
        readable, _, _ = select.select([self.ready_r], [], [], timeout)
        if readable:
            data = os.read(self.ready_r, 4096).decode()
            self.ready_pids.extend(int(x) for x in data.split())

    def _reap(self) -> list[tuple[int, int]]:
        dead = []
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.workers.pop(pid, None)
            dead.append((pid, status))
        return dead

    def start(self, timeout: float) -> list[int]:
        """Fork the workers and wait until each has loaded the model."""
        for _ in range(self.n_workers):
            self.spawn()
        deadline = time.monotonic() + timeout
        while len(set(self.ready_pids)) < self.n_workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {timeout:.0f}s")
            self._read_ready(0.2)
            dead = self._reap()
            if dead:
                pid, status = dead[0]
                raise RuntimeError(f"worker {pid} exited while loading the model "
                                   f"({_describe_status(status)}); see its output above")
        return sorted(set(self.ready_pids))

    def supervise(self, parent_pid: int) -> None:
        """Replace dead workers until asked to stop (or until the stack is gone)."""
        recent_deaths: list[float] = []
        while not self.stopping:
            self._read_ready(0.2)
            if os.getppid() != parent_pid:
                break
            for pid, status in self._reap():
                if self.stopping:
                    break
                now = time.monotonic()
                recent_deaths = [t for t in recent_deaths if now - t < 30] + [now]
                if len(recent_deaths) > 5 * self.n_workers:
                    print(f"workers keep dying ({len(recent_deaths)} in 30s); giving up", flush=True)
                    self.stopping = True
                    break
                new_pid = self.spawn()
                print(f"worker {pid} exited ({_describe_status(status)}); started worker {new_pid}",
                      flush=True)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the workers, SIGKILL the ones still alive after ``grace`` seconds."""
        self.stopping = True
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.workers and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self.workers:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.workers.pop(pid, None)
        self.sock.close()


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def main(argv: Optional[list[str]] = None) -> int:
    """Serve until SIGTERM/SIGINT; 2 if the port is taken, 1 if the model does not load."""
    parser = argparse.ArgumentParser(prog="python -m recsys_tools.local.endpoint")
    parser.add_argument("--model-dir", required=True, help="the extracted model (SM_MODEL_DIR)")
    parser.add_argument("--inference", default=None,
                        help="inference script (default: the model's code/inference.py, "
                             "else sagemaker/inference.py)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="recsys-local", help="endpoint name on the runtime route")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    parent_pid = os.getppid()
    die_with_parent(watch_thread=False)  # no thread before fork(): we poll the parent instead
    inference = Path(args.inference) if args.inference else default_inference_path(Path(args.model_dir))
    if not inference.is_file():
        print(f"error: inference script not found: {inference}", flush=True)
        return 1
    if not Path(args.model_dir).is_dir():
        print(f"error: model dir not found: {args.model_dir}", flush=True)
        return 1
    try:
        sock = bind_listener(args.host, args.port, "SageMaker endpoint")
    except PortInUse as exc:
        print(f"error: {exc}", flush=True)
        return 2
    sock.set_inheritable(True)
    # Import the inference code once, before forking (workers share the imported modules, which
    # starts them in a fraction of the time); model_fn still runs once in each worker.
    try:
        module = load_inference_module(inference)
    except Exception as exc:
        print(f"error: importing {inference} failed: {type(exc).__name__}: {exc}", flush=True)
        traceback.print_exc(file=sys.stdout)
        sock.close()
        return 1

    def start_worker(ready_fd: int) -> None:
        worker_main(sock, module, args.model_dir, args.name, ready_fd, args.access_log)

    master = Master(sock, args.workers, start_worker)

    def on_signal(signum: int, frame: object) -> None:
        master.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        pids = master.start(args.start_timeout)
    except RuntimeError as exc:
        print(f"error: {exc}", flush=True)
        master.stop()
        return 1
    port = sock.getsockname()[1]
    print(f"{READY_PREFIX}port={port} workers={','.join(map(str, pids))}", flush=True)
    try:
        master.supervise(parent_pid)
    finally:
        master.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
