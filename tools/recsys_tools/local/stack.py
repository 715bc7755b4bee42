"""The local stack: start the parts in order, serve, stop them in reverse order.

``LocalStack(options).start()`` binds the API port first (so a port in use fails before anything
starts), then brings up the embedded AWS, trains (or reuses a stored run), loads DynamoDB with
the pipeline's own loader, starts the endpoint's worker processes and finally the API Gateway
emulator in this process. :meth:`LocalStack.stop` undoes whatever was started, also after a
failure or an interrupt half-way through :meth:`LocalStack.start`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional

from recsys_tools.local import aws as local_aws
from recsys_tools.local.ports import bind_listener, check_free
from recsys_tools.local.processes import Child, group_members, python_child_env
from recsys_tools.local.training import (
    TrainedModel,
    TrainingInputs,
    extract_tarball,
    find_reusable,
    prune_runs,
    train,
)

DEFAULT_PORT = 8080
ENDPOINT_NAME = "recsys-local"
STATE_FILE = "stack.json"
LOAD_THREADS = 4


class StackError(RuntimeError):
    """The stack cannot start; the message says what and where (printed as one line)."""


@dataclass
class StackOptions:
    """Settings of ``recsys local up`` (see ``recsys local up --help``)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    endpoint_port: int = 0
    aws_port: int = 0
    work_dir: Path = Path(".local")
    events: Optional[Path] = None
    items: Optional[Path] = None
    users: Optional[Path] = None  # user metadata: the optional users channel
    model_dir: Optional[Path] = None
    batch_dir: Optional[Path] = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    synth_users: int = 2000
    synth_items: int = 1000
    synth_events: int = 60_000
    seed: int = 0
    workers: int = 2
    retrain: bool = False
    prefix: str = local_aws.DEFAULT_PREFIX
    endpoint_timeout_s: float = 2.0
    inference: Optional[Path] = None
    quiet_children: bool = False


def default_work_dir() -> Path:
    """``.local/`` at the repository root (gitignored), else in the current directory."""
    import recsys

    repo = Path(recsys.__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".local"
    return Path.cwd() / ".local"


def group_members_alive(pid: int) -> bool:
    """True if process ``pid`` is alive (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except OSError:
        return True


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON Lines file (blank lines skipped)."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise StackError(f"{path}:{number}: not valid JSON ({exc})") from None


def local_filters(env: str = "dev") -> str:
    """The named filters of ``env``'s block in cdk.json (what CDK gives the API functions), as
    the functions' ``NAMED_FILTERS``; "" when the block has none."""
    from recsys_infra import config

    return config.from_context(config.load_cdk_json_context(), env).named_filters_json


class LocalStack:
    """The whole system on one machine. Use :meth:`start`, then :meth:`stop` (always)."""

    def __init__(self, options: StackOptions, out: Optional[IO[str]] = None) -> None:
        self.options = options
        self.out = out or sys.stdout
        self.work_dir = Path(options.work_dir).resolve()
        self._stoppers: list[Callable[[], None]] = []
        self._stop_lock = threading.Lock()
        self.gateway_sock: Any = None
        self.aws_child: Optional[Child] = None
        self.endpoint_child: Optional[Child] = None
        self.gateway_server: Any = None
        self.resources: Optional[local_aws.LocalResources] = None
        self.model: Optional[TrainedModel] = None
        self.endpoint_url = ""
        self.gateway_url = ""
        self.loaded_counts: dict[str, int] = {}
        self.items_by_id: dict[str, dict[str, Any]] = {}
        self.sample_users: list[tuple[str, list[str]]] = []  # (userId, recentItems) for the tour

    # --- output -------------------------------------------------------------------------

    def say(self, message: str) -> None:
        self.out.write(message + "\n")
        self.out.flush()

    def step(self, number: int, message: str) -> None:
        self.say(f"==> [{number}/5] {message}")

    # --- start --------------------------------------------------------------------------

    def _validate_inputs(self) -> None:
        o = self.options
        if o.model_dir is not None and (o.events is not None or o.items is not None or o.users is not None):
            raise StackError("give either --model-dir or --events/--items/--users, not both")
        if o.items is not None and o.events is None:
            raise StackError("--items needs --events (the items file describes the events' items)")
        if o.users is not None and o.events is None:
            raise StackError("--users needs --events (the users file describes the events' users)")
        for flag, path in (("--events", o.events), ("--items", o.items), ("--users", o.users),
                           ("--model-dir", o.model_dir),
                           ("--batch-dir", o.batch_dir), ("--inference", o.inference)):
            if path is not None and not Path(path).exists():
                raise StackError(f"{flag} {path}: no such file or directory")
        if o.workers < 1:
            raise StackError("--workers must be at least 1")

    def _check_work_dir_free(self) -> None:
        """Refuse a work dir another live stack is using (its state file names its pid)."""
        path = self._state_path()
        try:
            other = json.loads(path.read_text())
            pid = int(other.get("pid") or 0)
        except (OSError, ValueError):
            return
        if pid and pid != os.getpid() and group_members_alive(pid):
            raise StackError(f"another `recsys local up` (pid {pid}, {other.get('gateway_url')}) is "
                             f"using {self.work_dir}: stop it, or pass another --work-dir")

    def start(self) -> LocalStack:
        """Start every part; on failure (or interrupt) stop what was started and re-raise."""
        self._validate_inputs()
        o = self.options
        # Every fixed port is checked before anything starts; the API port is held from now on.
        self.gateway_sock = bind_listener(o.host, o.port, "API")
        self._stoppers.append(self._close_gateway_socket)
        for port, what in ((o.endpoint_port, "SageMaker endpoint"), (o.aws_port, "embedded AWS")):
            check_free(o.host, port, what)
        self._check_work_dir_free()
        try:
            # Parts that do not depend on each other start side by side: moto imports in its
            # own process while the data is prepared, and a model that needs no training starts
            # loading in the endpoint's workers at once.
            started = time.monotonic()
            self._spawn_aws()
            inputs = None if o.model_dir is not None else self._training_data()
            model = self._known_model(inputs)
            endpoint_started = time.monotonic()
            if model is not None:
                self._spawn_endpoint(model)
            self._wait_aws(started)
            fetch = self._upload_inputs(inputs) if inputs is not None else {}
            if model is None:
                assert inputs is not None
                model = self._train(inputs, fetch)
                endpoint_started = time.monotonic()
                self._spawn_endpoint(model)
            self.model = model
            self._load_dynamodb(model)
            self._wait_endpoint(endpoint_started)
            self._start_gateway()
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def _close_gateway_socket(self) -> None:
        if self.gateway_sock is not None:
            self.gateway_sock.close()

    def _spawn_aws(self) -> None:
        o = self.options
        self.aws_child = local_aws.spawn_moto(o.host, o.aws_port, echo=not o.quiet_children)
        self._stoppers.append(self.aws_child.stop)

    def _wait_aws(self, started: float) -> None:
        assert self.aws_child is not None
        url = local_aws.wait_moto(self.aws_child, self.options.host)
        self.resources = local_aws.create_resources(url, self.options.prefix)
        self.step(1, f"embedded AWS (moto) on {url}: tables "
                     f"{', '.join(self.resources.table_names.values())}; bucket "
                     f"{self.resources.bucket}; delivery stream {self.resources.delivery_stream} "
                     f"({time.monotonic() - started:.1f}s)")

    def _training_data(self) -> TrainingInputs:
        o = self.options
        if o.events is not None:
            return TrainingInputs(Path(o.events).resolve(),
                                  Path(o.items).resolve() if o.items else None, o.hyperparameters,
                                  Path(o.users).resolve() if o.users else None)
        from recsys.synth import write_dataset

        folder = self.work_dir / "data" / (f"synth-u{o.synth_users}-i{o.synth_items}-"
                                           f"e{o.synth_events}-s{o.seed}")
        events, items = folder / "events.csv", folder / "items.csv"
        if not (events.is_file() and items.is_file()):
            self.say(f"    generating synthetic data: {o.synth_users} users, {o.synth_items} items, "
                     f"{o.synth_events} events -> {folder}")
            tmp = folder.with_name(folder.name + ".tmp")
            events_tmp, items_tmp = write_dataset(tmp, n_users=o.synth_users, n_items=o.synth_items,
                                                  n_events=o.synth_events, seed=o.seed)
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(events_tmp, events)
            os.replace(items_tmp, items)
            tmp.rmdir()
        return TrainingInputs(events, items, o.hyperparameters)

    def _known_model(self, inputs: Optional[TrainingInputs]) -> Optional[TrainedModel]:
        """The given model, or a stored run for these inputs, settings and code (None: train)."""
        o = self.options
        if o.model_dir is not None:
            model = self._given_model(Path(o.model_dir))
            self.step(2, f"serving the given model {model.model_dir} (version {model.model_version}); "
                         "training skipped")
            return model
        assert inputs is not None
        found = None if o.retrain else find_reusable(self.work_dir, inputs)
        if found is not None:
            self.step(2, f"reusing the model trained earlier for the same data, settings and code: "
                         f"{found.run_dir} (version {found.model_version}; --retrain to train again)")
            self._print_metrics(found.manifest)
        return found

    def _upload_inputs(self, inputs: TrainingInputs) -> dict[str, Callable[[str, Path], None]]:
        """Put the training data in the events bucket; the channels are filled from there, as
        SageMaker copies an S3 prefix into /opt/ml/input/data/<channel>."""
        from recsys_lambdas import contracts

        assert self.resources is not None
        events_prefix = f"{contracts.EVENTS_PREFIX}seed/"
        local_aws.upload_file(self.resources, inputs.events, events_prefix + inputs.events.name)
        fetch = {contracts.TRAINING_CHANNEL_EVENTS: self._s3_channel(events_prefix)}
        if inputs.items is not None:
            local_aws.upload_file(self.resources, inputs.items,
                                  contracts.ITEMS_PREFIX + inputs.items.name)
            fetch[contracts.TRAINING_CHANNEL_ITEMS] = self._s3_channel(contracts.ITEMS_PREFIX)
        if inputs.users is not None:
            local_aws.upload_file(self.resources, inputs.users,
                                  contracts.USERS_PREFIX + inputs.users.name)
            fetch[contracts.TRAINING_CHANNEL_USERS] = self._s3_channel(contracts.USERS_PREFIX)
        # the pipeline's MarkDeletions step: deletions/ is never empty, DELETE /users adds records
        marker = self.work_dir / "deletions-marker.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("{}")
        local_aws.upload_file(self.resources, marker, contracts.DELETIONS_MARKER)
        fetch[contracts.TRAINING_CHANNEL_DELETIONS] = self._s3_channel(contracts.DELETIONS_PREFIX)
        return fetch

    def _train(self, inputs: TrainingInputs,
               fetch: dict[str, Callable[[str, Path], None]]) -> TrainedModel:
        o = self.options
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.step(2, f"training on {inputs.events}"
                     + (f" and {inputs.items}" if inputs.items else "")
                     + (f" and {inputs.users}" if inputs.users else "")
                     + (f" with {dict(inputs.hyperparameters)}" if inputs.hyperparameters else ""))
        model = train(self.work_dir, inputs, fetch_channels=fetch, echo=not o.quiet_children,
                      out=self.out, force=True)
        self.say(f"    trained model {model.model_version} in {model.seconds:.1f}s -> {model.run_dir}")
        prune_runs(self.work_dir, keep=model.run_dir)
        self._print_metrics(model.manifest)
        return model

    def _s3_channel(self, prefix: str) -> Callable[[str, Path], None]:
        def fetch(channel: str, dest: Path) -> None:
            assert self.resources is not None
            if local_aws.download_prefix(self.resources, prefix, dest) == 0:
                raise StackError(f"s3://{self.resources.bucket}/{prefix} is empty")

        return fetch

    def _given_model(self, path: Path) -> TrainedModel:
        path = path.resolve()
        if path.is_file():  # a model.tar.gz, as SageMaker would hand it to the endpoint
            target = self.work_dir / "given-model" / "model"
            if target.exists():
                shutil.rmtree(target)
            model_dir = extract_tarball(path, target)
        else:
            model_dir = path
        batch_dir = self.options.batch_dir
        if batch_dir is None:
            for candidate in (model_dir / "batch", model_dir.parent / "output" / "data" / "batch",
                              model_dir.parent / "batch"):
                if candidate.is_dir():
                    batch_dir = candidate
                    break
        manifest_path = model_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        return TrainedModel(path, model_dir, Path(batch_dir).resolve() if batch_dir else None,
                            manifest, reused=True)

    def _print_metrics(self, manifest: dict[str, Any]) -> None:
        metrics = manifest.get("offline_metrics") or {}
        for name in ("popularity", "retrieval", "two_stage"):
            values = metrics.get(name)
            if isinstance(values, dict):
                shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items() if isinstance(v, (int, float)))
                self.say(f"    offline {name:<10} {shown}")

    def _load_dynamodb(self, model: TrainedModel) -> None:
        assert self.resources is not None
        started = time.monotonic()
        if model.batch_dir is None:
            self.step(3, "no batch outputs found (users/items/recommendations .jsonl): DynamoDB "
                         "stays empty; pass --batch-dir to load them")
            return
        import boto3
        from recsys_lambdas.pipeline.load import load_records

        items_path = model.batch_dir / "items.jsonl"
        if items_path.is_file():
            self.items_by_id = {row["itemId"]: row for row in read_jsonl(items_path) if "itemId" in row}
        users_path = model.batch_dir / "users.jsonl"
        if users_path.is_file():
            for row in read_jsonl(users_path):
                if row.get("userId") and isinstance(row.get("recentItems"), list):
                    self.sample_users.append((str(row["userId"]), [str(i) for i in row["recentItems"]]))
                if len(self.sample_users) >= 50:
                    break
        # The pipeline's loader, unchanged; the users file (one conditional write per user, to
        # merge with live histories) is split over a few threads, each with its own client,
        # because the embedded AWS answers one call at a time slower than DynamoDB does.
        jobs: list[tuple[str, Callable[[], Iterator[dict[str, Any]]]]] = []
        for name in ("items", "recommendations"):
            path = model.batch_dir / f"{name}.jsonl"
            if path.is_file():
                jobs.append((name, lambda path=path: read_jsonl(path)))  # type: ignore[misc]
        if users_path.is_file():
            users = list(read_jsonl(users_path))
            for part in range(LOAD_THREADS):
                jobs.append(("users", lambda part=part: iter(users[part::LOAD_THREADS])))  # type: ignore[misc]
        endpoint_url = self.resources.endpoint_url
        table_names = self.resources.table_names

        def run(job: tuple[str, Callable[[], Iterator[dict[str, Any]]]]) -> dict[str, int]:
            name, rows = job
            dynamodb = boto3.session.Session().resource("dynamodb", **local_aws.client_kwargs(endpoint_url))
            return dict(load_records(dynamodb, table_names, {name: rows()}))

        from concurrent.futures import ThreadPoolExecutor

        counts: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=LOAD_THREADS + 2) as pool:
            for result in pool.map(run, jobs):
                for key, value in result.items():
                    counts[key] = counts.get(key, 0) + int(value)
        self.loaded_counts = counts
        shown = ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing"
        self.step(3, f"loaded DynamoDB with the pipeline's loader from {model.batch_dir}: {shown} "
                     f"({time.monotonic() - started:.1f}s)")

    def _spawn_endpoint(self, model: TrainedModel) -> None:
        o = self.options
        argv = [sys.executable, "-m", "recsys_tools.local.endpoint", "--model-dir", str(model.model_dir),
                "--host", o.host, "--port", str(o.endpoint_port), "--workers", str(o.workers),
                "--name", ENDPOINT_NAME]
        if o.inference is not None:
            argv += ["--inference", str(Path(o.inference).resolve())]
        env = python_child_env({"SAGEMAKER_PROGRAM": "inference.py",
                                "SAGEMAKER_SUBMIT_DIRECTORY": str(Path(model.model_dir).parent)})
        # One BLAS thread per worker: the workers are the parallelism, as on one instance each.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        self.endpoint_child = Child("endpoint", argv, env=env, echo=not o.quiet_children,
                                    out=self.out).start()
        self._stoppers.append(self.endpoint_child.stop)

    def _wait_endpoint(self, started: float) -> None:
        o = self.options
        assert self.endpoint_child is not None
        ready = dict(part.split("=", 1) for part in self.endpoint_child.wait_ready(300).split())
        self.endpoint_url = f"http://{o.host}:{ready['port']}"
        self.step(4, f"SageMaker endpoint {ENDPOINT_NAME!r} on {self.endpoint_url}: "
                     f"{o.workers} worker processes (pids {ready.get('workers', '?')}) "
                     f"({time.monotonic() - started:.1f}s)")

    def handler_environment(self) -> dict[str, str]:
        """The Lambda functions' environment: names from the contracts, URLs of the local parts."""
        from recsys_lambdas import contracts

        assert self.resources is not None
        names = self.resources.table_names
        env = dict(local_aws.FAKE_CREDENTIALS)
        env.update({
            contracts.ENV_USERS_TABLE: names[contracts.USERS.logical_name],
            contracts.ENV_ITEMS_TABLE: names[contracts.ITEMS.logical_name],
            contracts.ENV_BATCH_TABLE: names[contracts.BATCH_RECOMMENDATIONS.logical_name],
            contracts.ENV_IDEMPOTENCY_TABLE: names[contracts.IDEMPOTENCY.logical_name],
            contracts.ENV_ENDPOINT_NAME: ENDPOINT_NAME,
            contracts.ENV_EVENTS_STREAM: self.resources.delivery_stream,
            contracts.ENV_EVENTS_BUCKET: self.resources.bucket,
            contracts.ENV_SERVING_MODE: "realtime",
            contracts.ENV_ENDPOINT_TIMEOUT_S: str(self.options.endpoint_timeout_s),
            contracts.ENV_AWS_ENDPOINT_URL: self.resources.endpoint_url,
            contracts.ENV_SAGEMAKER_ENDPOINT_URL: self.endpoint_url,
            # botocore's own per-service override, for any client built without our settings
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.endpoint_url,
            # The X-Ray daemon has no local counterpart; the EMF metric lines go to the
            # function's log under <work dir>/logs/, as Lambda sends them to CloudWatch.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "false"),
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        })
        filters = local_filters()
        if filters:
            from recsys_lambdas import settings

            env[settings.ENV_NAMED_FILTERS] = filters
        return env

    def _start_gateway(self) -> None:
        from recsys_lambdas import routes

        from recsys_tools.local.gateway import Gateway, GatewayServer

        started = time.monotonic()
        # The handlers read their configuration from the environment, as in Lambda, and build
        # their clients lazily: set it before the first import.
        os.environ.update(self.handler_environment())
        try:
            from recsys_lambdas import aws as lambda_aws

            lambda_aws.reset()
        except ImportError:
            pass
        from recsys_lambdas.validation import openapi_document

        log_dir = self.work_dir / "logs"
        # validated with the models CDK attaches to API Gateway, in API Gateway's error shape
        gateway = Gateway(routes.ROUTES, routes.FUNCTIONS, stage="local",
                          health_parts=self.health_parts, log=self.out, log_dir=log_dir,
                          document=openapi_document())
        gateway.load_handlers()
        self.gateway_server = GatewayServer(gateway, self.gateway_sock).start()
        self._stoppers.append(self.gateway_server.stop)
        self.gateway_url = f"http://{self.options.host}:{self.gateway_server.port}"
        self.step(5, f"API Gateway on {self.gateway_url}: {len(routes.ROUTES)} routes -> Lambda "
                     f"functions {', '.join(sorted(routes.FUNCTIONS))}, their logs in "
                     f"{log_dir}/<function>.log ({time.monotonic() - started:.1f}s)")

    # --- running ------------------------------------------------------------------------

    def health_parts(self) -> dict[str, Any]:
        """What the local stack adds to ``GET /health``: each part it started, up or down."""
        parts: dict[str, Any] = {}
        if self.resources is not None:
            parts["aws"] = local_aws.check(self.resources.endpoint_url,
                                           self.resources.table_names.get("users"), timeout=1.0)
        if self.endpoint_url:
            workers = []
            if self.endpoint_child is not None and self.endpoint_child.proc is not None:
                workers = [p for p in group_members(self.endpoint_child.pid) if p != self.endpoint_child.pid]
            try:
                with urllib.request.urlopen(self.endpoint_url + "/ping", timeout=1.0) as resp:  # noqa: S310 - loopback
                    ok = resp.status == 200
                error = None
            except OSError as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
            parts["endpoint"] = {"ok": ok, "url": self.endpoint_url, "name": ENDPOINT_NAME,
                                 "workers": len(workers), **({"error": error} if error else {})}
        if self.model is not None:
            parts["model"] = {"ok": True, "version": self.model.model_version,
                              "dir": str(self.model.model_dir)}
        parts["gateway"] = {"ok": True, "url": self.gateway_url}
        return parts

    def state(self) -> dict[str, Any]:
        """Where everything runs (also written to ``<work dir>/run/stack.json``)."""
        return {
            "pid": os.getpid(),
            "gateway_url": self.gateway_url,
            "endpoint_url": self.endpoint_url,
            "endpoint_name": ENDPOINT_NAME,
            "endpoint_pid": self.endpoint_child.pid if self.endpoint_child else None,
            "aws_url": self.resources.endpoint_url if self.resources else None,
            "aws_pid": self.aws_child.pid if self.aws_child else None,
            "tables": self.resources.table_names if self.resources else {},
            "bucket": self.resources.bucket if self.resources else None,
            "delivery_stream": self.resources.delivery_stream if self.resources else None,
            "model_dir": str(self.model.model_dir) if self.model else None,
            "model_version": self.model.model_version if self.model else None,
            "model_reused": self.model.reused if self.model else None,
        }

    def _state_path(self) -> Path:
        return self.work_dir / "run" / STATE_FILE

    def _write_state(self) -> None:
        path = self._state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.state(), indent=2))
        self._stoppers.append(lambda: path.unlink() if path.exists() else None)

    def stop(self) -> None:
        """Stop everything started so far, newest first; safe to call more than once."""
        with self._stop_lock:
            while self._stoppers:
                stopper = self._stoppers.pop()
                started = time.monotonic()
                try:
                    stopper()
                except Exception as exc:  # keep stopping the rest
                    self.say(f"    while stopping: {type(exc).__name__}: {exc}")
                if os.environ.get("RECSYS_DEBUG"):
                    self.say(f"    stopped {getattr(stopper, '__qualname__', stopper)} in "
                             f"{time.monotonic() - started:.2f}s")
