"""``recsys local up``: the command line of the local stack.

``recsys_tools.cli`` (the ``recsys`` console script) registers the ``local`` group with
:func:`add_parser`; ``python -m recsys_tools.local`` runs the same commands through :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Optional

from recsys_tools.local.stack import DEFAULT_PORT, StackOptions


class Shutdown(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM: stop everything and exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _hyperparameter(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {raw!r}")
    return key.strip(), value.strip()


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {value}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``local`` (with ``up``) on an ``argparse`` subparsers object.

    The ``up`` parser's ``func`` default is :func:`run_up`, called with the parsed arguments and
    returning the exit status.
    """
    local = subparsers.add_parser(
        "local", help="run the whole system on this machine",
        description="Run the whole system on this machine against an embedded AWS (moto).")
    commands = local.add_subparsers(dest="local_command", metavar="COMMAND")
    commands.required = True
    up = commands.add_parser(
        "up", help="train, load and serve the API locally until Ctrl-C",
        description=(
            "Start the embedded AWS (moto), train with the SageMaker entry points (or reuse the "
            "last model trained on the same data, settings and code), load DynamoDB, start the "
            "SageMaker-compatible endpoint and the API Gateway emulator, and serve until Ctrl-C "
            "or SIGTERM. Default data: the embedded synthetic generator."))
    up.add_argument("--port", type=_port, default=DEFAULT_PORT,
                    help=f"API port (default {DEFAULT_PORT})")
    up.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    up.add_argument("--endpoint-port", type=_port, default=0,
                    help="SageMaker endpoint port (default: a free one)")
    up.add_argument("--aws-port", type=_port, default=0,
                    help="embedded AWS (moto) port (default: a free one)")
    data = up.add_argument_group("data (default: synthetic)")
    data.add_argument("--events", type=Path, help="events file (CSV with header or JSON Lines)")
    data.add_argument("--items", type=Path, help="items file (CSV with header or JSON Lines)")
    data.add_argument("--users", type=Path,
                      help="users file with metadata columns (CSV with header or JSON Lines)")
    data.add_argument("--model-dir", type=Path,
                      help="serve this trained model (folder or model.tar.gz) instead of training")
    data.add_argument("--batch-dir", type=Path,
                      help="with --model-dir: the batch/*.jsonl to load into DynamoDB")
    # counts are --n-*: --users, --items and --events name files in every command
    data.add_argument("--n-users", type=_positive, default=2000, dest="synth_users",
                      help="synthetic users (default 2000)")
    data.add_argument("--n-items", type=_positive, default=1000, dest="synth_items",
                      help="synthetic items (default 1000)")
    data.add_argument("--n-events", type=_positive, default=60_000, dest="synth_events",
                      help="synthetic events (default 60000)")
    data.add_argument("--seed", type=int, default=0, help="synthetic data seed (default 0)")
    train = up.add_argument_group("training and serving")
    train.add_argument("-H", "--hyperparameter", type=_hyperparameter, action="append", default=[],
                       metavar="NAME=VALUE", help="training hyperparameter (repeatable)")
    train.add_argument("--retrain", action="store_true", help="train even if a stored model matches")
    train.add_argument("--workers", type=_positive, default=2,
                       help="endpoint worker processes (default 2)")
    train.add_argument("--endpoint-timeout", type=float, default=2.0,
                       help="seconds the API waits for the endpoint before falling back (default 2)")
    train.add_argument("--work-dir", type=Path, default=None,
                       help="data, runs and state (default: .local/ in the repository)")
    train.add_argument("--inference", type=Path, default=None,
                       help="inference script (default: sagemaker/inference.py)")
    up.add_argument("--tour", action="store_true",
                    help="after start-up, show a few real requests and the curl commands to try")
    up.add_argument("--quiet", action="store_true", help="do not echo the parts' own output")
    up.set_defaults(func=run_up)
    return local


def options_from_args(args: argparse.Namespace) -> StackOptions:
    """:class:`StackOptions` from parsed ``recsys local up`` arguments."""
    from recsys_tools.local.stack import default_work_dir

    return StackOptions(
        host=args.host, port=args.port, endpoint_port=args.endpoint_port, aws_port=args.aws_port,
        work_dir=args.work_dir or default_work_dir(), events=args.events, items=args.items,
        users=args.users,
        model_dir=args.model_dir, batch_dir=args.batch_dir,
        hyperparameters=dict(args.hyperparameter), synth_users=args.synth_users,
        synth_items=args.synth_items, synth_events=args.synth_events, seed=args.seed,
        workers=args.workers, retrain=args.retrain, endpoint_timeout_s=args.endpoint_timeout,
        inference=args.inference, quiet_children=args.quiet,
    )


def run_up(args: argparse.Namespace) -> int:
    """Start the stack, serve until SIGINT/SIGTERM, stop everything; returns the exit status."""
    from recsys_tools.local.ports import PortInUse
    from recsys_tools.local.processes import ChildFailed
    from recsys_tools.local.stack import LocalStack, StackError
    from recsys_tools.local.training import TrainingFailed

    options = options_from_args(args)
    stack = LocalStack(options)

    def on_signal(signum: int, frame: Any) -> None:
        # Later signals are ignored so the shutdown itself is not cut short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Shutdown(signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    status = 0
    try:
        stack.start()
        stack.say(f"\nThe local stack is up: {stack.gateway_url}  (Ctrl-C to stop)")
        if args.tour:
            from recsys_tools.local.tour import run_tour

            run_tour(stack)
        else:
            from recsys_tools.local.tour import print_try_it

            print_try_it(stack)
        stack.say(f"READY {stack.gateway_url}")
        threading.Event().wait()
    except Shutdown as exc:
        stack.say(f"\n{exc.args[0]} received: stopping the local stack ...")
        status = 0
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    except (StackError, TrainingFailed, ChildFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    except Exception as exc:  # one clear line; the traceback only on request
        if os.environ.get("RECSYS_DEBUG"):
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc} (set RECSYS_DEBUG=1 for the traceback)",
              file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if status == 0:
        stack.say("stopped: every process and port of the local stack is released")
    return status


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m recsys_tools.local ...``: the ``local`` command group on its own."""
    parser = argparse.ArgumentParser(prog="python -m recsys_tools.local")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_parser(subparsers)
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and raw[0] != "local":  # `python -m recsys_tools.local up` as well as `... local up`
        raw = ["local", *raw]
    args = parser.parse_args(raw)
    return int(args.func(args))
