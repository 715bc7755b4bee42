"""The serving model and its Python API: ``Recommender.load(model_dir)`` and the four online stages.

``recommend`` runs retrieval -> filtering -> scoring -> ordering:

1. retrieval: every source in :mod:`recsys.retrieval` proposes candidates;
2. filtering: already-seen items, excluded ids, category include/exclude;
3. scoring: the logistic-regression ranker (rank fusion when the artifact has no ranker yet);
4. ordering: business rules from ``serving.json`` or the caller: a cap of items per category and
   multiplicative boosts per category or item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import protocol
from .attributes import FILE as ATTRIBUTES_FILE
from .attributes import Metadata
from .candidates import FEATURES, CandidateBuilder, Candidates, ItemFilter, fusion_scores
from .catalogue import Catalogue
from .protocol import Filters, ItemNotFound
from .ranker import Ranker
from .retrieval import RetrievalModel

FORMAT_VERSION = 1
Scored = List[Tuple[str, float]]
FiltersLike = Union[Filters, Mapping[str, Any], None]
SEARCH_TEXT_CANDIDATES = 100
SEARCH_EXPANSION_SEEDS = 5


@dataclass
class OrderingRules:
    """Stage 4 business rules."""

    max_per_category: Optional[int] = None
    category_boosts: Dict[str, float] = field(default_factory=dict)
    item_boosts: Dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Optional[Mapping[str, Any]]) -> OrderingRules:
        data = data or {}
        cap = data.get("max_per_category")
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_per_category must be a positive integer or null, got {cap!r}")
        return cls(cap, dict(data.get("category_boosts") or {}), dict(data.get("item_boosts") or {}))

    def to_json(self) -> Dict[str, Any]:
        return {"max_per_category": self.max_per_category, "category_boosts": self.category_boosts,
                "item_boosts": self.item_boosts}


class Recommender:
    """A trained two-stage model. Load one with :meth:`load`; every method is thread-safe to read."""

    def __init__(self, catalogue: Catalogue, retrieval: RetrievalModel, ranker: Optional[Ranker],
                 manifest: Dict[str, Any], ordering: Optional[OrderingRules] = None, text_index=None,
                 metadata: Optional[Metadata] = None) -> None:
        self.catalogue = catalogue
        self.retrieval = retrieval
        self.ranker = ranker
        self.manifest = manifest
        self.ordering = ordering or OrderingRules()
        self.text_index = text_index
        self.metadata = metadata if metadata is not None and not metadata.empty else None
        self.builder = CandidateBuilder(retrieval, catalogue.category_codes, self.metadata)

    # --- persistence ------------------------------------------------------------------------

    @property
    def model_version(self) -> str:
        return str(self.manifest.get("model_version", "unversioned"))

    @classmethod
    def load(cls, model_dir) -> Recommender:
        """Load a model directory (an extracted ``model.tar.gz``). No pickles are read."""
        d = Path(model_dir)
        manifest_path = d / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{d}: not a model directory (no manifest.json)")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{d}: artifact format {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}")
        catalogue = Catalogue.load(d / "catalogue.json")
        retrieval = RetrievalModel.load(d / "retrieval")
        metadata = None
        if (d / ATTRIBUTES_FILE).exists():  # item/user attributes as ranker features (optional)
            metadata = Metadata.load(d / ATTRIBUTES_FILE, [catalogue.category_of(i) for i in range(len(catalogue))])
        features = list(FEATURES) + (metadata.feature_names if metadata is not None else [])
        ranker = Ranker.load(d / "ranker.json", features) if (d / "ranker.json").exists() else None
        ordering = OrderingRules.from_json(json.loads((d / "serving.json").read_text())) \
            if (d / "serving.json").exists() else OrderingRules()
        text_index = None
        if (d / "text").is_dir():
            from .text import TextIndex  # optional part of the artifact
            text_index = TextIndex.load(d / "text")
        return cls(catalogue, retrieval, ranker, manifest, ordering, text_index, metadata)

    def save(self, model_dir) -> None:
        d = Path(model_dir)
        d.mkdir(parents=True, exist_ok=True)
        self.catalogue.save(d / "catalogue.json")
        self.retrieval.save(d / "retrieval")
        if self.ranker is not None:
            self.ranker.save(d / "ranker.json")
        (d / "serving.json").write_text(json.dumps(self.ordering.to_json(), indent=2))
        if self.text_index is not None:
            self.text_index.save(d / "text")
        if self.metadata is not None:
            self.metadata.save(d / ATTRIBUTES_FILE)
        elif (d / ATTRIBUTES_FILE).exists():
            (d / ATTRIBUTES_FILE).unlink()
        (d / "manifest.json").write_text(json.dumps(self.manifest, indent=2, sort_keys=True))

    # --- helpers ----------------------------------------------------------------------------

    def has_item(self, item_id: str) -> bool:
        return item_id in self.catalogue.index

    def item_info(self, item_id: str) -> Dict[str, str]:
        i = self.catalogue.index.get(item_id)
        if i is None:
            raise ItemNotFound(f"item {item_id!r} is not in the model's catalogue")
        return {"itemId": item_id, "title": self.catalogue.titles[i], "category": self.catalogue.category_of(i)}

    def _filter(self, filters: FiltersLike) -> Optional[ItemFilter]:
        if filters is None:
            return None
        if not isinstance(filters, Filters):
            filters = Filters.from_json(dict(filters))
        f = ItemFilter()
        if filters.exclude_item_ids:
            f.exclude = self.catalogue.lookup(sorted(filters.exclude_item_ids))
        if filters.include_categories:
            f.include_categories = self.catalogue.codes_for(sorted(filters.include_categories))
        if filters.exclude_categories:
            f.exclude_categories = self.catalogue.codes_for(sorted(filters.exclude_categories))
        return f

    def _history(self, history: Sequence[str], context: Optional[Mapping[str, Any]] = None) -> np.ndarray:
        ids = list(history)
        if context and context.get("recentItems"):
            ids.extend(context["recentItems"])
        return self.catalogue.lookup(ids)

    def score(self, c: Candidates) -> np.ndarray:
        """Stage 3: the ranker's probability, or rank fusion when no ranker is trained yet."""
        if len(c.items) == 0:
            return np.zeros(0, np.float32)
        if self.ranker is None:
            return fusion_scores(c)
        return self.ranker.score(c.features)

    def order(self, items: np.ndarray, scores: np.ndarray, k: int,
              rules: Optional[OrderingRules] = None) -> Scored:
        """Stage 4 with external ids: see :meth:`order_indices`."""
        return [(self.catalogue.item_ids[i], s) for i, s in self.order_indices(items, scores, k, rules)]

    def order_indices(self, items: np.ndarray, scores: np.ndarray, k: int,
                      rules: Optional[OrderingRules] = None) -> List[Tuple[int, float]]:
        """Stage 4: boosts, then best-first with at most ``max_per_category`` per category."""
        rules = rules or self.ordering
        scores = scores.astype(np.float64)
        if rules.category_boosts or rules.item_boosts:
            scores = scores.copy()
            for n, it in enumerate(items.tolist()):
                scores[n] *= rules.category_boosts.get(self.catalogue.category_of(it), 1.0)
                scores[n] *= rules.item_boosts.get(self.catalogue.item_ids[it], 1.0)
        if rules.max_per_category is None:
            top = np.argsort(-scores, kind="stable")[:k]
            return [(int(items[p]), round(float(scores[p]), 6)) for p in top.tolist()]
        out: List[Tuple[int, float]] = []
        per_category: Dict[int, int] = {}
        deferred: List[int] = []
        for pos in np.argsort(-scores, kind="stable").tolist():
            it = int(items[pos])
            cat = int(self.catalogue.category_codes[it])
            if per_category.get(cat, 0) >= rules.max_per_category:
                deferred.append(pos)
                continue
            per_category[cat] = per_category.get(cat, 0) + 1
            out.append((it, round(float(scores[pos]), 6)))
            if len(out) == k:
                return out
        # fewer distinct categories than needed: fill the rest in score order rather than come up short
        for pos in deferred[: k - len(out)]:
            out.append((int(items[pos]), round(float(scores[pos]), 6)))
        return out

    # --- the Python API -------------------------------------------------------------------------

    def recommend(self, history: Sequence[str], k: int = 10, filters: FiltersLike = None,
                  context: Optional[Mapping[str, Any]] = None, user_id: Optional[str] = None) -> Scored:
        """Top-``k`` items for a user whose history (oldest first) is given; [] history = cold start.
        ``user_id`` selects the user's attributes when the model has user attributes."""
        k = _check_k(k)
        h = self._history(history, context)
        c = self.builder.build([h], [self._filter(filters)], min_candidates=k, users=[user_id])[0]
        return self.order(c.items, self.score(c), k)

    def similar(self, item_id: str, k: int = 10, filters: FiltersLike = None) -> Scored:
        """Related items: the two-stage pipeline with the item as the whole history (itself excluded)."""
        k = _check_k(k)
        if item_id not in self.catalogue.index:
            raise ItemNotFound(f"item {item_id!r} is not in the model's catalogue")
        h = np.array([self.catalogue.index[item_id]], np.int64)
        c = self.builder.build([h], [self._filter(filters)], min_candidates=k)[0]
        return self.order(c.items, self.score(c), k, OrderingRules())

    def rank(self, history: Sequence[str], item_ids: Sequence[str], user_id: Optional[str] = None) -> Scored:
        """All of ``item_ids``, best first for this user; unknown items last with score 0."""
        unique = list(dict.fromkeys(item_ids))
        known = [i for i in unique if i in self.catalogue.index]
        unknown = [i for i in unique if i not in self.catalogue.index]
        h = self._history(history)
        idx = self.catalogue.lookup(known)
        c = self.builder.build([h], fixed_items=[idx], users=[user_id])[0]
        scores = self.score(c).astype(np.float64)
        order = np.argsort(-scores, kind="stable")
        out = [(known[i], round(float(scores[i]), 6)) for i in order.tolist()]
        return out + [(i, 0.0) for i in unknown]

    def popular(self, k: int = 10, filters: FiltersLike = None) -> Scored:
        """The cold-start answer: what the model scores best for an empty history."""
        return self.recommend([], k, filters)

    def search(self, query: str, k: int = 10, history: Optional[Sequence[str]] = None,
               filters: FiltersLike = None, user_id: Optional[str] = None) -> Scored:
        """Text retrieval (typo tolerant) + co-visitation expansion -> filtering -> personal ordering.

        1. the text index's ``SEARCH_TEXT_CANDIDATES`` best matches, relevance in [0, 1];
        2. items often consumed with the ``SEARCH_EXPANSION_SEEDS`` best matches join at up to
           half their seed's relevance (a search for a title also surfaces its companions);
        3. the caller's filters;
        4. ``relevance * (1 - w + w * personal)``: relevance leads, and ``personal`` (the ranker's
           score for this user's history, or popularity without one, scaled to [0, 1] over the
           candidates) reorders comparably relevant items: an ambiguous query ("the", a genre,
           a prefix) is answered differently for different users.

        Args:
            query: what the user typed (any case, accents, typos, unfinished last word).
            k: at most this many results.
            history: the user's items, oldest first (unknown ids are ignored).
            filters: a :class:`~recsys.protocol.Filters` or its JSON form.
            user_id: the user, for the user attribute features (models trained with users).

        Returns:
            ``[(item_id, score)]`` best first; ``[]`` when no item matches the query's words.

        Raises:
            protocol.InvalidRequest: an empty, non-string or oversize query, a bad ``k``, or a
                model trained without item titles (no text index).
        """
        k = _check_k(k)
        if not isinstance(query, str) or not query.strip():
            raise protocol.InvalidRequest("query must be a non-empty string")
        if len(query) > protocol.MAX_QUERY_CHARS:
            raise protocol.InvalidRequest(
                f"query has {len(query)} characters; at most {protocol.MAX_QUERY_CHARS} allowed")
        if self.text_index is None:
            raise protocol.NotSupported("this model has no text index (train it with an items file)")
        idx, rel = self.text_index.query(query, SEARCH_TEXT_CANDIDATES)
        if len(idx) == 0:
            return []
        graph = self.retrieval.covisit
        parts_items, parts_rel = [np.asarray(idx, np.int64)], [np.asarray(rel, np.float32)]
        for seed, seed_rel in zip(idx[:SEARCH_EXPANSION_SEEDS].tolist(), rel[:SEARCH_EXPANSION_SEEDS].tolist()):
            s, e = graph.indptr[seed], graph.indptr[seed + 1]
            if e > s:
                wt = graph.data[s:e].astype(np.float32)
                parts_items.append(graph.indices[s:e].astype(np.int64))
                parts_rel.append(0.5 * seed_rel * wt / max(float(wt.max()), 1e-9))
        items = np.concatenate(parts_items)
        relevance = np.concatenate(parts_rel).astype(np.float32)
        # each item once, at its best relevance (sorted by index: ties are then broken by index)
        order = np.lexsort((-relevance, items))
        items, relevance = items[order], relevance[order]
        first = np.ones(len(items), bool)
        first[1:] = items[1:] != items[:-1]
        items, relevance = items[first], relevance[first]
        f = self._filter(filters)
        if f is not None:
            keep = f.keep(items, self.catalogue.category_codes)
            items, relevance = items[keep], relevance[keep]
        if len(items) == 0:
            return []
        h = self._history(history or [])
        if len(h):
            personal = self.score(self.builder.build([h], fixed_items=[items], users=[user_id])[0])
            personal = personal / max(float(personal.max()), 1e-9)
        else:
            personal = self.builder.log_pop[items] / max(float(self.builder.log_pop.max()), 1e-9)
        # 0.3 measured on MovieLens-100K held-out titles (recsys evaluate): it lifts prefix and
        # typo MRR over text order without letting taste outrank a clearly better title match
        w = 0.3
        return self.order(items, relevance * (1.0 - w + w * personal), k, OrderingRules())

    # --- the endpoint protocol --------------------------------------------------------------

    def handle(self, body: Any) -> Dict[str, Any]:
        """Answer one :mod:`recsys.protocol` request; client errors come back as an ``error`` object."""
        try:
            req = protocol.parse_request(body)
            if req.action == "recommend":
                items = self.recommend(req.history, req.k, req.filters, req.context, req.user_id)
            elif req.action == "similar":
                items = self.similar(req.item_id or "", req.k, req.filters)
            elif req.action == "rank":
                items = self.rank(req.history, req.item_ids, req.user_id)
            elif req.action == "search":
                items = self.search(req.query or "", req.k, req.history, req.filters, req.user_id)
            else:
                items = self.popular(req.k, req.filters)
        except (protocol.InvalidRequest, ItemNotFound) as exc:
            return protocol.error_response(exc, self.model_version)
        return {"items": [{"itemId": i, "score": s} for i, s in items], "modelVersion": self.model_version}


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= protocol.MAX_K:
        raise protocol.InvalidRequest(f"k must be an integer between 1 and {protocol.MAX_K}, got {k!r}")
    return int(k)
