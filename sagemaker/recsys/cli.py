"""The ML commands of ``recsys``: ``data synth``, ``data import``, ``train``, ``evaluate``,
``batch-inference``.

``python -m recsys`` runs these alone. The ``recsys`` console script is ``recsys_tools.cli``, which
adds the ``local`` and ``deploy`` groups; this package imports nothing AWS-facing or dev-only.

Errors in the input are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

EXIT_BAD_INPUT = 2


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _hyperparameters(pairs: List[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"-H/--hyperparameter expects NAME=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import write_dataset

    events, items = write_dataset(args.out, n_users=args.users, n_items=args.items, n_events=args.events,
                                  seed=args.seed, with_funnel=args.funnel)
    print(json.dumps({"events": str(events), "items": str(items)}))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import import_dataset, summary_lines
    from .schemas import parse_column_map

    report = import_dataset(args.out, events=args.events, items=args.items, users=args.users,
                            column_map=parse_column_map(args.map), max_bad_fraction=args.max_bad_fraction)
    for line in summary_lines(report):
        _log(line)
    print(json.dumps(report, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    started = time.time()
    manifest = train(args.events, args.items, args.model_dir, args.output_data_dir,
                     _hyperparameters(args.set), log=_log, users_path=args.users)
    _log(f"[train] model {manifest['model_version']} written to {args.model_dir} in {time.time() - started:.1f}s")
    print(json.dumps({"model_dir": str(args.model_dir), "model_version": manifest["model_version"],
                      "offline_metrics": manifest["offline_metrics"]}, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import evaluate, train
    from .data import Sequences
    from .event_types import parse_event_types
    from .model import Recommender

    hps = _hyperparameters(args.set)
    rparams, kparams = train.split_hyperparameters(hps)  # fail fast on a typo
    # the evaluation's targets: --target-event-types, else the ranker's target_event_types, else any event
    target_types = parse_event_types(args.target_event_types, "--target-event-types") \
        if args.target_event_types is not None else parse_event_types(kparams.target_event_types)
    events, items, seqs, summary = train.load_data(args.events, args.items, log=_log,
                                                   event_value_threshold=rparams.event_value_threshold)
    first_seen = evaluate.first_seen_positions(events.item_ids, seqs.item_ids)
    users = train.load_users(args.users, log=_log) if args.users else None  # user metadata features
    user_attributes = dict(zip(users.user_ids, users.attributes)) if users is not None else None
    fitted: List[Recommender] = []  # the model fitted on the training part, for the search evaluation

    def fit(part: Sequences) -> Recommender:
        rec = train.fit(part, items, hps, summary, log=_log, users=user_attributes)
        fitted.append(rec)
        return rec

    report = evaluate.run(
        seqs, first_seen, fit=fit, log=_log,
        extra={"events_file": str(args.events), "items_file": str(args.items) if args.items else None,
               "users_file": str(args.users) if args.users else None, "hyperparameters": hps},
        target_types=target_types,
    )
    print(evaluate.format_table(report))
    if items is not None and fitted and fitted[-1].text_index is not None:
        from . import search_eval

        part, targets, _ = evaluate.leave_last_out(seqs, target_types)
        report["search"] = search_eval.evaluate_search(
            fitted[-1], part.items, targets, texts=search_eval.item_texts(fitted[-1], items), log=_log)
        print(search_eval.format_table(report["search"]))
    elif items is not None:
        _log("[evaluate] the model has no text index (no item text): search not evaluated")
    if args.output:
        Path(args.output).write_text(evaluate.to_json(report))
        _log(f"[evaluate] report written to {args.output}")
    return 0


def cmd_batch_inference(args: argparse.Namespace) -> int:
    """Personalize-style batch inference on local files: ``<input file>.out`` per input file."""
    from . import batch_inference as bi
    from .model import Recommender

    num_results = bi.check_num_results(args.num_results)
    source = Path(args.input)
    if source.is_dir():
        inputs = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    elif source.is_file():
        inputs = [source]
    else:
        raise FileNotFoundError(f"no such input file or directory: {source}")
    if not inputs:
        raise FileNotFoundError(f"{source}: no input files")
    model = Recommender.load(args.model_dir)
    histories = bi.load_histories(args.histories or Path(args.model_dir) / bi.HISTORIES_FILE)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    lines = errors = 0
    written = []
    for path in inputs:
        target = Path(args.output) / f"{path.name}.out"
        with open(path, encoding="utf-8") as f, open(target, "w", encoding="utf-8") as out:
            for line in bi.transform_lines(model, f, args.job, num_results, histories):
                out.write(line + "\n")
                lines += 1
                errors += '"error":null}' not in line[-14:]
        written.append(str(target))
    _log(f"[batch-inference] {lines:,} line(s), {errors:,} with an error, model {model.model_version}")
    print(json.dumps({"lines": lines, "errors": errors, "output": written[0] if len(written) == 1 else written}))
    return 0


def _hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """``-H/--hyperparameter NAME=VALUE`` (repeatable), as in ``recsys local up``; ``--set`` is
    its deprecated, hidden old spelling."""
    parser.add_argument("-H", "--hyperparameter", action="append", dest="set", metavar="NAME=VALUE",
                        help="a training hyperparameter (repeatable)")
    parser.add_argument("--set", action="append", dest="set", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ML commands; each subcommand sets ``func`` (parsed args -> exit status)."""
    parser = argparse.ArgumentParser(prog="recsys", description="Two-stage recommendation and search.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="data utilities").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write a deterministic synthetic dataset (events.csv, items.csv)")
    # counts are --n-*: --users, --items and --events name files in every command
    synth.add_argument("--n-users", type=int, default=2000, dest="users", metavar="N",
                       help="users (default 2000)")
    synth.add_argument("--n-items", type=int, default=1000, dest="items", metavar="N",
                       help="items (default 1000)")
    synth.add_argument("--n-events", type=int, default=60_000, dest="events", metavar="N",
                       help="events (default 60000)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--funnel", action="store_true",
                       help="views, carts and purchases with a known funnel (recsys.synth.funnel)")
    synth.set_defaults(func=cmd_synth)

    imp = data.add_parser(
        "import", help="validate a Personalize export or mapped CSV/JSON Lines; write canonical files",
        description="Load interactions, items and users files (Amazon Personalize's column names work in "
                    "any case; other names with --map), report bad rows, and write events.csv, items.csv "
                    "and users.csv to --out. Fails with one line and status 2 when an input is unusable.")
    imp.add_argument("--events", type=Path, help="interactions CSV/JSON Lines file or directory")
    imp.add_argument("--items", type=Path, help="items CSV/JSON Lines file or directory")
    imp.add_argument("--users", type=Path, help="users CSV/JSON Lines file or directory")
    imp.add_argument("--map", metavar="COLUMN=SOURCE,...",
                     help="column map for other names, e.g. user=customer_id,item=sku,timestamp=ts")
    imp.add_argument("--max-bad-fraction", type=float, default=0.01,
                     help="fail when more than this fraction of a file's rows is bad (default 0.01)")
    imp.add_argument("--out", required=True, type=Path, help="folder for events.csv, items.csv, users.csv")
    imp.set_defaults(func=cmd_import)

    tr = sub.add_parser("train", help="train both jobs locally and write a model directory")
    tr.add_argument("--events", required=True, type=Path, help="events CSV/JSON Lines file or directory")
    tr.add_argument("--items", type=Path, help="items CSV/JSON Lines file or directory")
    tr.add_argument("--users", type=Path, help="users CSV/JSON Lines file or directory (user metadata)")
    tr.add_argument("--model-dir", required=True, type=Path)
    tr.add_argument("--output-data-dir", type=Path, help="also write manifest.json and batch/*.jsonl here")
    _hyperparameter_flags(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="leave-last-out evaluation against popularity and stage 1")
    ev.add_argument("--events", required=True, type=Path)
    ev.add_argument("--items", type=Path)
    ev.add_argument("--users", type=Path, help="users CSV/JSON Lines file or directory (user metadata features)")
    ev.add_argument("--output", type=Path, help="write the JSON report here")
    _hyperparameter_flags(ev)
    ev.add_argument("--target-event-types", metavar="TYPES",
                    help="the targets are each user's last event of these types (comma-separated), "
                         "predicted from the events before it; default: the target_event_types "
                         "hyperparameter, else any event (leave-last-out)")
    ev.set_defaults(func=cmd_evaluate)

    bi = sub.add_parser(
        "batch-inference", help="Personalize-style batch recommendations for a file of users or items",
        description="Read Amazon Personalize batch input lines ({\"userId\"}, {\"itemId\"} or "
                    "{\"userId\", \"itemList\"}) and write <input file>.out with one Personalize output "
                    "line per input line; a bad line gets an error field and the rest go on.")
    bi.add_argument("--model-dir", required=True, type=Path, help="a model directory (recsys train)")
    bi.add_argument("--input", required=True, type=Path, help="a JSON Lines file, or a folder of them")
    # a folder to write into is --out in every command (--output names a report file in evaluate)
    out = bi.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, dest="output", metavar="DIR", help="folder for <input file>.out")
    out.add_argument("--output", type=Path, dest="output", help=argparse.SUPPRESS)  # deprecated spelling
    bi.add_argument("--job", choices=("users", "items", "ranking"), default="users",
                    help="users: USER_PERSONALIZATION, items: RELATED_ITEMS, ranking: PERSONALIZED_RANKING")
    bi.add_argument("--num-results", default="25", metavar="N", help="items per line, 1-500 (default 25)")
    bi.add_argument("--histories", type=Path,
                    help="users' histories (userId, recentItems) JSON Lines, e.g. a run's batch/users.jsonl; "
                         "default: the model's histories.jsonl")
    bi.set_defaults(func=cmd_batch_inference)

    return parser


def main(argv: Optional[List[str]] = None, parser: Optional[argparse.ArgumentParser] = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        parser: the parser to use (default :func:`build_parser`); ``recsys_tools.cli`` passes one
            with its own command groups added, whose ``func`` defaults are run the same way.
    """
    from .data import DataError

    parser = parser or build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"recsys {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
