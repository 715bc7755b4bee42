"""Training: job 1 (embeddings, index, graphs, popularity, text index) and job 2 (the ranker, its
offline validation and the batch outputs), callable in-process or as SageMaker entry points.

Ranker training never sees a target it will be judged on: stage 1 is refitted on the data with
each user's last event removed, the ranker learns to pick that last event out of the candidates
stage 1 proposes for the earlier history, and its offline metrics come from users held out of the
ranker's training set. When called by ``recsys evaluate``, all of this happens inside the
training part of the leave-last-out split, so the test targets are never seen at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import data as data_mod
from . import event_types
from .batch_contract import (
    MAX_RECENT_ITEMS,
    METRIC_FORMAT,
    POPULAR_USER_ID,
    SEARCH_ROW_ITEMS,
    SEARCH_ROW_PREFIX,
    search_tokens,
)
from .batch_inference import write_histories
from .candidates import CandidateBuilder, fusion_scores
from .catalogue import Catalogue
from .data import Items, Sequences
from .evaluate import metrics_from_ranks, rank_in
from .model import FORMAT_VERSION, OrderingRules, Recommender
from .parallel import chunks, map_batches
from .ranker import Ranker
from .retrieval import RetrievalModel, RetrievalParams, params_from_dict
from .schemas import parse_column_map

Log = Callable[[str], None]
BATCH_K = 50


@dataclass(frozen=True)
class RankerParams:
    ranker_users: int = 20_000
    ranker_negatives: int = 100
    ranker_hard_negatives: int = 0  # >0 biases the model against what stage 1 ranks high
    ranker_c: float = 0.1
    ranker_targets: int = 10
    ranker_max_examples: int = 40_000
    validation_fraction: float = 0.2
    batch_size: int = 512
    workers: int = 0  # processes for the ranker's examples and the batch output; 0 = one per core
    max_bad_fraction: float = 0.01
    max_per_category: int = 0  # 0 = no cap (stage 4)
    batch_k: int = BATCH_K
    seed: int = 0
    target_event_types: str = ""  # recsys.event_types: the ranker's targets ("" = any event)
    column_map: str = ""  # recsys.schemas.parse_column_map: "user=customer_id,item=sku" ("" = none)

    @classmethod
    def from_dict(cls, values: Optional[Mapping[str, Any]]) -> RankerParams:
        return params_from_dict(cls, values)


def split_hyperparameters(values: Optional[Mapping[str, Any]]) -> Tuple[RetrievalParams, RankerParams]:
    """Validate hyperparameters (SageMaker's own ``sagemaker_*`` keys are ignored)."""
    values = {k.replace("-", "_"): v for k, v in (values or {}).items() if not k.startswith("sagemaker_")}
    known = {f.name for f in fields(RetrievalParams)} | {f.name for f in fields(RankerParams)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
    try:
        return RetrievalParams.from_dict(values), RankerParams.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad hyperparameter value: {exc}") from None


def emit_metric(name: str, value: float, log: Log = print) -> None:
    log(METRIC_FORMAT.format(name=name, value=value))


# --- data -----------------------------------------------------------------------------------


def load_data(events_path, items_path=None, max_bad_fraction: float = data_mod.DEFAULT_MAX_BAD_FRACTION,
              log: Log = print, deletions_path=None, event_value_threshold: Optional[float] = None,
              column_map: str = "",
              ) -> Tuple[data_mod.Events, Optional[Items], Sequences, Dict[str, Any]]:
    mapping = parse_column_map(column_map)  # the column_map hyperparameter (ValueError on a bad one)
    deletions = data_mod.load_deletions(deletions_path)
    events = data_mod.load_events(events_path, max_bad_fraction, deletions, column_map=mapping)
    events = apply_event_value_threshold(events, event_value_threshold, log)
    items = data_mod.load_items(items_path, max_bad_fraction, column_map=mapping) if items_path else None
    seqs = data_mod.encode(events, items.item_ids if items else None)
    summary = {
        "events": len(events),
        "users": int(seqs.n_users),
        "items": int(seqs.n_items),
        "events_report": events.report.to_json(),
        "items_report": items.report.to_json() if items else None,
    }
    for report in (events.report, items.report if items else None):
        if report is not None and report.bad_rows:
            log(f"[data] {report.source}: skipped {report.bad_rows} bad row(s), e.g. " + "; ".join(report.examples))
    if events.report.duplicates:
        log(f"[data] {events.report.source}: dropped {events.report.duplicates} duplicate event(s) "
            "(same user_id and event_id as an earlier row: retries in the at-least-once event log)")
    if deletions:
        log(f"[data] {len(deletions):,} deletion record(s): dropped {events.report.deleted_rows:,} event(s) "
            f"of {events.report.deleted_users:,} deleted user(s)")
    log(f"[data] {summary['events']:,} events, {summary['users']:,} users, {summary['items']:,} items")
    return events, items, seqs, summary


def load_users(users_path, max_bad_fraction: float = data_mod.DEFAULT_MAX_BAD_FRACTION,
               column_map: str = "", log: Log = print) -> data_mod.Users:
    """The users file (the optional ``users`` channel), logged with its bad rows."""
    users = data_mod.load_users(users_path, max_bad_fraction, column_map=parse_column_map(column_map))
    if users.report.bad_rows:
        log(f"[data] {users.report.source}: skipped {users.report.bad_rows} bad row(s), e.g. "
            + "; ".join(users.report.examples))
    log(f"[data] {len(users):,} users with metadata")
    return users


def apply_event_value_threshold(events: data_mod.Events, threshold: Optional[float], log: Log) -> data_mod.Events:
    """The events without those below ``event_value_threshold`` (logged with the count)."""
    kept = event_types.drop_below_threshold(events, threshold)
    if kept is not events:
        log(f"[data] event_value_threshold {threshold:g}: dropped {len(events) - len(kept):,} event(s) "
            "with a lower event_value")
    return kept


def _fit_stage1(seqs: Sequences, params: RetrievalParams, log: Log) -> RetrievalModel:
    """Stage 1 on ``seqs``, each event weighted by its type (``params.event_weights``)."""
    weights = event_types.sequence_weights(seqs.types, params.event_weights)
    extra = {} if weights is None else {"weights": weights}  # None: the unweighted path
    return RetrievalModel.fit(seqs.items, seqs.times, seqs.n_items, params, log=log, **extra)


def make_catalogue(seqs: Sequences, items: Optional[Items]) -> Catalogue:
    titles, cats = {}, {}
    if items is not None:
        titles = dict(zip(items.item_ids, items.titles))
        cats = dict(zip(items.item_ids, items.categories))
    return Catalogue(seqs.item_ids, [titles.get(i, i) for i in seqs.item_ids],
                     [cats.get(i, "") for i in seqs.item_ids])


def _version(summary: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps([summary, params], sort_keys=True, default=str).encode()).hexdigest()
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + digest[:8]


# --- job 1 ----------------------------------------------------------------------------------


def fit_retrieval(seqs: Sequences, items: Optional[Items], params: RetrievalParams,
                  summary: Optional[Dict[str, Any]] = None, log: Log = print,
                  users: Optional[Mapping[str, Mapping[str, str]]] = None) -> Recommender:
    """Job 1: stage-1 artifacts (+ the text index when titles are known, + the attribute
    encoders when items or ``users`` (user id -> attributes) have attributes) as a servable model."""
    started = time.time()
    catalogue = make_catalogue(seqs, items)
    retrieval = _fit_stage1(seqs, params, log)
    text_index = None
    if items is not None:
        from .text import TextIndex

        attrs = dict(zip(items.item_ids, items.attributes))
        text_index = TextIndex.build(catalogue.texts([attrs.get(i, {}) for i in catalogue.item_ids]))
        log(f"[retrieval] text index over {len(catalogue):,} titles")
    metadata = _fit_attributes(seqs, items, catalogue, users, log)
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_version": _version(summary or {}, asdict(params)),
        "created_at": datetime.now(timezone.utc).isoformat(),
        "training_data": summary or {},
        "hyperparameters": {"retrieval": asdict(params)},
        "index": {"space": "ip", "M": params.hnsw_m, "ef_construction": params.ef_construction,
                  "ef": params.ef, "recall_at_10": retrieval.index_recall,
                  "items": 0 if retrieval.index is None else retrieval.index.get_current_count()},
        "offline_metrics": {},
        "timings": {"retrieval_seconds": round(time.time() - started, 2)},
    }
    if metadata is not None:
        manifest["attributes"] = {"features": metadata.feature_names, "users": len(metadata.user_ids), "skipped": {
            **{f"item.{k}": v for k, v in (metadata.item_encoder.skipped if metadata.item_encoder else {}).items()},
            **{f"user.{k}": v for k, v in (metadata.user_encoder.skipped if metadata.user_encoder else {}).items()}}}
    emit_metric("index_recall_at_10", retrieval.index_recall, log)
    return Recommender(catalogue, retrieval, None, manifest, OrderingRules(), text_index, metadata)


def _fit_attributes(seqs: Sequences, items: Optional[Items], catalogue: Catalogue,
                    users: Optional[Mapping[str, Mapping[str, str]]], log: Log):
    """The attribute encoders (:mod:`recsys.attributes`), or None without usable attributes."""
    item_attrs = {i: a for i, a in zip(items.item_ids, items.attributes) if a} if items is not None else {}
    if not item_attrs and not users:
        return None
    from .attributes import fit_metadata

    return fit_metadata(catalogue.item_ids, [catalogue.category_of(i) for i in range(len(catalogue))],
                        item_attrs or None, users or None, users_first=seqs.user_ids, log=log)


# --- job 2 ----------------------------------------------------------------------------------


def _hold_out(seqs: Sequences, n_targets: int) -> Tuple[Sequences, Dict[int, int]]:
    """Each user's last ``n_targets`` events removed (keeping at least 2); returns the inner
    sequences and, per labelled user, how many events were held out."""
    held: Dict[int, int] = {}
    items, times = [], []
    for u, (s, t) in enumerate(zip(seqs.items, seqs.times)):
        h = min(n_targets, len(s) - 2) if len(s) >= 3 else (1 if len(s) == 2 else 0)
        if len(s) >= 3:
            held[u] = h
        items.append(s[: len(s) - h])
        times.append(t[: len(t) - h])
    types = None if seqs.types is None else [ty[: len(ty) - (len(s) - len(kept))]
                                             for ty, s, kept in zip(seqs.types, seqs.items, items)]
    return Sequences(seqs.item_ids, seqs.user_ids, items, times, types), held


def _hold_out_targets(seqs: Sequences, n_targets: int, targets: Sequence[str]
                      ) -> Tuple[Sequences, Dict[int, List[int]]]:
    """``target_event_types`` set: per user, the positions of their last ``n_targets`` events of
    those types that have 2 or more events before them not on the target item. The inner
    sequences keep the events before the first of them, without the events on any held-out
    item; a user without such an event keeps every event (they label nothing)."""
    if seqs.types is None:
        raise ValueError("target_event_types needs the events' event_type; these sequences have none")
    held: Dict[int, List[int]] = {}
    keeps: List[np.ndarray] = []
    for u, (s, ty) in enumerate(zip(seqs.items, seqs.types)):
        hits = [p for p in np.flatnonzero(np.isin(ty, list(targets))).tolist() if int((s[:p] != s[p]).sum()) >= 2]
        chosen = hits[-n_targets:] if n_targets > 0 else []
        if chosen:
            held[u] = chosen
            keeps.append(np.flatnonzero(~np.isin(s[: chosen[0]], s[chosen])))
        else:
            keeps.append(np.arange(len(s)))
    inner = Sequences(seqs.item_ids, seqs.user_ids, [s[k] for s, k in zip(seqs.items, keeps)],
                      [t[k] for t, k in zip(seqs.times, keeps)], [ty[k] for ty, k in zip(seqs.types, keeps)])
    return inner, held


def fit_ranker(rec: Recommender, seqs: Sequences, rparams: RetrievalParams, kparams: RankerParams,
               log: Log = print) -> Recommender:
    """Job 2: train the logistic-regression ranker and measure the two-stage model offline."""
    started = time.time()
    rng = np.random.default_rng(kparams.seed)
    targets = event_types.parse_event_types(kparams.target_event_types)
    positions: Dict[int, List[int]]  # per labelled user, the positions of their targets
    if targets:
        inner, positions = _hold_out_targets(seqs, kparams.ranker_targets, targets)
        if len(positions) < 10:
            raise ValueError(f"only {len(positions)} users have an event of type(s) {list(targets)} "
                             "(target_event_types) after 2 or more other events; the ranker needs at least 10")
    else:
        inner, held = _hold_out(seqs, kparams.ranker_targets)
        positions = {u: list(range(len(seqs.items[u]) - h, len(seqs.items[u]))) for u, h in held.items()}
    labelled = sorted(positions)
    if len(labelled) < 10:
        raise ValueError(f"only {len(labelled)} users have 3 or more events; the ranker needs at least 10")
    log(f"[ranker] refitting stage 1 without each user's last {kparams.ranker_targets} "
        f"{'event(s) of type(s) ' + ','.join(targets) if targets else 'event(s)'} ({inner.n_events:,} events)")
    inner_retrieval = _fit_stage1(inner, rparams, lambda m: None)

    def history(u: int, p: int) -> np.ndarray:
        """The positions of the history of the example (u, p): the events before it (with target
        types, without the user's events on the target item)."""
        return np.flatnonzero(seqs.items[u][:p] != seqs.items[u][p]) if targets else np.arange(p)

    def build(pairs: Sequence[Tuple[int, int]]):
        """Candidates for a batch of examples, from the same builder the model is served with."""
        idx = [history(u, p) for u, p in pairs]
        return builder.build([seqs.items[u][i] for (u, _), i in zip(pairs, idx)],
                             users=[seqs.user_ids[u] for u, _ in pairs])
    builder = CandidateBuilder(inner_retrieval, rec.catalogue.category_codes, rec.metadata)
    names = builder.feature_names  # FEATURES + the attribute columns
    users = rng.permutation(labelled)[: kparams.ranker_users]
    n_val = round(len(users) * kparams.validation_fraction)
    val_users = set(users[:n_val].tolist())
    # (user, position of the target): every held-out event of a training user, the last of a validation user
    validation = [(u, positions[u][-1]) for u in users.tolist() if u in val_users]
    training: List[Tuple[int, int]] = []
    for u in users.tolist():
        if u not in val_users:
            training.extend((u, p) for p in positions[u])
    if len(training) > kparams.ranker_max_examples:
        # bound the cost on big data: a uniform sample of the (user, target) pairs
        pick = np.sort(rng.choice(len(training), size=kparams.ranker_max_examples, replace=False))
        training = [training[i] for i in pick.tolist()]

    def training_pairs(batch: Tuple[int, Sequence[Tuple[int, int]]]) -> Tuple[np.ndarray, np.ndarray]:
        """Sampled (features, label) rows of one batch of examples; its own seeded generator, so
        the result does not depend on how batches are spread over processes."""
        number, pairs = batch
        batch_rng = np.random.default_rng([kparams.seed, number])
        xs: List[np.ndarray] = []
        ys: List[np.ndarray] = []
        for (u, p), c in zip(pairs, build(pairs)):
            label = (c.items == int(seqs.items[u][p])).astype(np.float32)
            if label.sum() == 0:
                continue  # the target was not retrieved: nothing for the ranker to learn here
            pos = np.flatnonzero(label)
            neg = np.flatnonzero(label == 0)
            hard: List[int] = []
            if kparams.ranker_hard_negatives:  # off by default: no need to sort by fusion then
                fused = np.argsort(-fusion_scores(c), kind="stable")
                hard = [i for i in fused[: kparams.ranker_hard_negatives * 2].tolist() if label[i] == 0][: kparams.ranker_hard_negatives]
            rand = batch_rng.choice(neg, size=min(len(neg), kparams.ranker_negatives), replace=False)
            take = np.unique(np.concatenate([pos, np.array(hard, np.int64), rand]))
            xs.append(c.features[take])
            ys.append(label[take])
        if not xs:
            return np.zeros((0, len(names)), np.float32), np.zeros(0, np.float32)
        return np.concatenate(xs), np.concatenate(ys)

    batches = list(enumerate(chunks(training, kparams.batch_size)))
    xs, ys, done = [], [], 0
    for (bx, by), (_, pairs) in zip(map_batches(training_pairs, batches, kparams.workers, inner_retrieval.share_cores), batches):
        xs.append(bx)
        ys.append(by)
        done += len(pairs)
        log(f"[ranker] candidates for {done:,}/{len(training):,} training examples")
    x = np.concatenate(xs) if xs else np.zeros((0, len(names)), np.float32)
    y = np.concatenate(ys) if ys else np.zeros(0, np.float32)
    if len(y) == 0:
        raise ValueError("no training user had their next item among the candidates; too little data")
    ranker = Ranker.fit(x, y, names, c=kparams.ranker_c, seed=kparams.seed)
    log(f"[ranker] logistic regression on {len(y):,} pairs ({int(y.sum()):,} positives)")

    # offline validation on the held-out users, with the stage-1 model that never saw their targets
    def validation_ranks(pairs: Sequence[Tuple[int, int]]) -> np.ndarray:
        """Per example: the target's rank by the two-stage order and by fusion (-1 = not in the
        top 20), and whether it was a candidate at all."""
        out = np.full((len(pairs), 3), -1, np.int64)
        for row, ((u, p), c) in enumerate(zip(pairs, build(pairs))):
            target = int(seqs.items[u][p])
            out[row, 2] = int(target in set(c.items.tolist()))
            if len(c.items):
                out[row, 0] = rank_in(c.items[np.argsort(-ranker.score(c.features), kind="stable")][:20].tolist(), target)
                out[row, 1] = rank_in(c.items[np.argsort(-fusion_scores(c), kind="stable")][:20].tolist(), target)
        return out

    ranks = list(map_batches(validation_ranks, chunks(validation, kparams.batch_size), kparams.workers,
                             inner_retrieval.share_cores))
    ranks_all = np.concatenate(ranks) if ranks else np.zeros((0, 3), np.int64)
    two_stage, fusion, recall = ranks_all[:, 0], ranks_all[:, 1], ranks_all[:, 2].astype(bool)
    log(f"[ranker] validated on {len(validation):,} held-out users")
    ranked = {"two_stage": metrics_from_ranks(two_stage), "retrieval": metrics_from_ranks(fusion)}
    candidate_recall = float(np.mean(recall)) if len(recall) else 0.0
    offline: Dict[str, Any] = {"validation_users": len(validation), **ranked, "candidate_recall": candidate_recall}
    for name, values in ranked.items():
        for key, value in values.items():
            emit_metric(f"{name}_{key}", value, log)
    emit_metric("candidate_recall", candidate_recall, log)
    manifest = dict(rec.manifest)
    manifest["offline_metrics"] = offline
    manifest["ranker"] = {"features": list(names), **ranker.info}
    manifest["hyperparameters"] = {**manifest.get("hyperparameters", {}), "ranker": asdict(kparams)}
    manifest.setdefault("timings", {})["ranker_seconds"] = round(time.time() - started, 2)
    manifest["model_version"] = manifest["model_version"].rsplit("-", 1)[0] + "-" + hashlib.sha256(
        json.dumps(ranker.to_json(), sort_keys=True).encode()).hexdigest()[:8]
    ordering = OrderingRules(max_per_category=kparams.max_per_category or None)
    return Recommender(rec.catalogue, rec.retrieval, ranker, manifest, ordering, rec.text_index, rec.metadata)


# --- batch outputs (the batch path and the fallback) ------------------------------------------


def write_batch_output(rec: Recommender, seqs: Sequences, out_dir, k: int = BATCH_K,
                       batch_size: int = 512, log: Log = print, workers: int = 0) -> Dict[str, int]:
    """``batch/users.jsonl``, ``batch/items.jsonl``, ``batch/recommendations.jsonl`` + ``manifest.json``."""
    out = Path(out_dir)
    batch_dir = out / "batch"
    batch_dir.mkdir(parents=True, exist_ok=True)
    cat = rec.catalogue
    r = rec.retrieval
    version = rec.model_version
    with open(batch_dir / "items.jsonl", "w", encoding="utf-8") as f:
        for i, item in enumerate(cat.item_ids):
            f.write(json.dumps({"itemId": item, "title": cat.titles[i], "category": cat.category_of(i),
                                "popularity": float(r.popularity[i]), "trend": round(float(r.trend[i]), 6)}) + "\n")
    with open(batch_dir / "users.jsonl", "w", encoding="utf-8") as f:
        for u, user in enumerate(seqs.user_ids):
            items = seqs.items[u][-MAX_RECENT_ITEMS:]
            times = seqs.times[u][-MAX_RECENT_ITEMS:]
            f.write(json.dumps({"userId": user, "recentItems": [cat.item_ids[i] for i in items.tolist()],
                                "recentTimestamps": [int(t) for t in times.tolist()]}) + "\n")
    started = time.time()
    with open(batch_dir / "recommendations.jsonl", "w", encoding="utf-8") as f:
        popular = rec.popular(k)
        f.write(json.dumps({"userId": POPULAR_USER_ID, "items": [{"itemId": i, "score": s} for i, s in popular],
                            "modelVersion": version}) + "\n")

        def user_rows(users: Sequence[int]) -> str:
            cands = rec.builder.build([seqs.items[u] for u in users], min_candidates=k,
                                      users=[seqs.user_ids[u] for u in users])
            return "".join(
                json.dumps({"userId": seqs.user_ids[u], "items": [{"itemId": i, "score": s}
                                                                  for i, s in rec.order(c.items, rec.score(c), k)],
                            "modelVersion": version}) + "\n"
                for u, c in zip(users, cands))

        for rows in map_batches(user_rows, chunks(range(seqs.n_users), batch_size), workers, r.share_cores):
            f.write(rows)
        n_search_rows = _write_search_rows(rec, f) if rec.text_index is not None else 0
    log(f"[batch] recommendations for {seqs.n_users:,} users in {time.time() - started:.1f}s"
        f"{f' and {n_search_rows:,} search rows' if n_search_rows else ''}")
    (out / "manifest.json").write_text(json.dumps(rec.manifest, indent=2, sort_keys=True))
    return {"users": seqs.n_users, "items": len(cat), "recommendations": seqs.n_users + 1,
            "search_rows": n_search_rows}


def _write_search_rows(rec: Recommender, f) -> int:
    """Degraded search's index, as rows of the batch-recommendations table: for each word of the
    titles and categories, ``userId = SEARCH_ROW_PREFIX + word`` lists the most popular items
    whose text has it (score = popularity). The API reads these rows when the endpoint is down."""
    cat, popularity = rec.catalogue, rec.retrieval.popularity
    postings: Dict[str, List[int]] = {}
    for i, text in enumerate(cat.texts()):
        for token in search_tokens(text):
            postings.setdefault(token, []).append(i)
    for token in sorted(postings):
        items = np.asarray(postings[token], np.int64)
        top = items[np.argsort(-popularity[items], kind="stable")[:SEARCH_ROW_ITEMS]]
        f.write(json.dumps({"userId": SEARCH_ROW_PREFIX + token, "modelVersion": rec.model_version,
                            "items": [{"itemId": cat.item_ids[i], "score": float(popularity[i])}
                                      for i in top.tolist()]}) + "\n")
    return len(postings)


# --- everything in-process ---------------------------------------------------------------------


def fit(seqs: Sequences, items: Optional[Items], hyperparameters: Optional[Mapping[str, Any]] = None,
        summary: Optional[Dict[str, Any]] = None, log: Log = print,
        users: Optional[Mapping[str, Mapping[str, str]]] = None) -> Recommender:
    rparams, kparams = split_hyperparameters(hyperparameters)
    rec = fit_retrieval(seqs, items, rparams, summary, log, users)
    return fit_ranker(rec, seqs, rparams, kparams, log)


def train(events_path, items_path, model_dir, output_data_dir=None,
          hyperparameters: Optional[Mapping[str, Any]] = None, log: Log = print,
          deletions_path=None, users_path=None) -> Dict[str, Any]:
    """Both jobs in one process: load (without the deleted users' events), fit, save the model
    (and the batch outputs). ``users_path``: a users file, loaded with :func:`recsys.data.load_users`
    and carried into the model as ``users.csv``."""
    rparams, kparams = split_hyperparameters(hyperparameters)
    _, items, seqs, summary = load_data(events_path, items_path, kparams.max_bad_fraction, log,
                                        deletions_path=deletions_path,
                                        event_value_threshold=rparams.event_value_threshold,
                                        column_map=kparams.column_map)
    users = load_users(users_path, kparams.max_bad_fraction, kparams.column_map, log) if users_path else None
    rec = fit(seqs, items, hyperparameters, summary, log,
              users=dict(zip(users.user_ids, users.attributes)) if users is not None else None)
    rec.save(model_dir)
    write_histories(seqs.user_ids, seqs.item_ids, seqs.items, model_dir)  # for batch inference
    if users is not None:
        data_mod.write_users(users, Path(model_dir) / data_mod.USERS_MODEL_FILE)
    if output_data_dir is not None:
        write_batch_output(rec, seqs, output_data_dir, kparams.batch_k, log=log, workers=kparams.workers)
    return rec.manifest
