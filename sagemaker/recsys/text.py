"""Typo- and prefix-tolerant text index over item titles and attributes (search retrieval).

Each item text (``title + " " + category/attributes``) is turned into TF-IDF weights over four
kinds of feature, each kind ("channel") L2-normalised on its own so that no channel swamps the
others, then weighted and concatenated:

* ``w`` whole words: exact word matches, the strongest signal for a correct query;
* ``c`` character n-grams inside word boundaries (like scikit-learn's ``char_wb``): partial
  words and misspellings still share most of their n-grams with the intended word;
* ``d`` the word and its one-character deletions (SymSpell's deletion neighbourhood): any
  query word within one insertion, deletion, substitution or transposition of an item word
  shares a feature with it, even for short words where n-grams share almost nothing;
* ``p`` word prefixes of 1..``prefix_len`` characters: a query of one or two characters, or a
  word still being typed, matches the items with a word starting that way.

The relevance of an item is the dot product of the query's and the item's vectors, which is the
weighted mean of the per-channel cosine similarities, so it lies in [0, 1] (1 = same features).

Text is normalised with Unicode NFKD, combining marks dropped and case folded, so "Amélie",
"AMELIE" and "amelie" are the same query. The fitting uses scikit-learn's ``TfidfVectorizer``;
the artifact holds only plain files (JSON vocabulary and parameters, ``.npy`` idf, ``.npz``
sparse item matrix, no pickle) and the query transform is re-implemented from them, so a
loaded index answers exactly as the one that was built (a test checks both against
scikit-learn's transform).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any, Callable, Union

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

FORMAT_VERSION = 1
CHANNELS = ("w", "c", "d", "p")

PARAMS_FILE = "text_index.json"
VOCABULARY_FILE = "text_vocabulary.json"
IDF_FILE = "text_idf.npy"
ITEMS_FILE = "text_items.npz"

DEFAULT_PARAMS: dict[str, Any] = {
    # Channel weights; normalised to sum to 1 so that scores stay in [0, 1]. Chosen on
    # MovieLens titles (bench/search_quality.py); the differences between sensible settings are
    # a fraction of a point of HR@10.
    "word_weight": 0.25,
    "char_weight": 0.4,
    "delete_weight": 0.25,
    "prefix_weight": 0.1,
    # 3-4-grams: bigrams found a few more typos in short words but made queries ~3x slower on
    # 50k items (their posting lists are long); 5-grams added nothing over the deletion channel.
    "char_ngram_min": 3,
    "char_ngram_max": 4,
    "prefix_len": 4,
    # One-character deletions of 1-2 letter words are single letters: noise, not typos.
    "delete_min_len": 3,
    # Bounds the features a single (possibly hostile) long word can generate.
    "delete_max_len": 24,
    "sublinear_tf": True,
}

PathLike = Union[str, "os.PathLike[str]"]

# Apostrophes join ("children's" -> "childrens") so a query typed with or without one matches.
_APOSTROPHES = re.compile(r"['\u2019\u2018`\u00b4]")
_WORD = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """Fold case and accents: NFKD, drop combining marks, casefold ("Amélie" -> "amelie")."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def tokenize(text: str) -> list[str]:
    """Split normalised text into words (letters and digits; punctuation separates)."""
    return _WORD.findall(_APOSTROPHES.sub("", normalize(text)))


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(
            f"TextIndex: unknown parameter(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_PARAMS)}"
        )
    merged = {**DEFAULT_PARAMS, **params}
    weights = [merged[f"{name}_weight"] for name in ("word", "char", "delete", "prefix")]
    if any(not isinstance(w, (int, float)) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"TextIndex: channel weights must be >= 0 and not all 0, got {weights}")
    for key in ("char_ngram_min", "char_ngram_max", "prefix_len", "delete_min_len", "delete_max_len"):
        if not isinstance(merged[key], int) or merged[key] < 1:
            raise ValueError(f"TextIndex: {key} must be a positive integer, got {merged[key]!r}")
    if merged["char_ngram_min"] > merged["char_ngram_max"]:
        raise ValueError("TextIndex: char_ngram_min must be <= char_ngram_max")
    return merged


def make_analyzer(params: dict[str, Any]) -> Callable[[str], list[str]]:
    """The item feature extractor for ``params``: text -> list of channel-tagged features.

    It is a pure function of the parameters, which is what lets a saved index re-create its
    query transform without pickling code.
    """

    def analyze(text: str) -> list[str]:
        features: list[str] = []
        for word in tokenize(text):
            features.extend(_word_features(word, params, query=False, partial=False))
        return features

    return analyze


def make_query_analyzer(params: dict[str, Any]) -> Callable[[str], list[str]]:
    """The query feature extractor: like :func:`make_analyzer`, except that

    * a query word has one prefix feature, its own first ``prefix_len`` characters (a typed
      prefix must match the start of an item word, not the other way round);
    * the last word, unless the query ends with a space, may be unfinished: its character
      n-grams do not mark the end of a word ("st" must not match words ending in "st").
    """

    def analyze(text: str) -> list[str]:
        words = tokenize(text)
        open_ended = bool(words) and not text[-1:].isspace()
        features: list[str] = []
        for i, word in enumerate(words):
            partial = open_ended and i == len(words) - 1
            features.extend(_word_features(word, params, query=True, partial=partial))
        return features

    return analyze


def _word_features(word: str, params: dict[str, Any], query: bool, partial: bool) -> list[str]:
    features = ["w:" + word]
    padded = f" {word}" if partial else f" {word} "
    for n in range(params["char_ngram_min"], min(params["char_ngram_max"], len(padded)) + 1):
        features.extend("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    if params["delete_min_len"] <= len(word) <= params["delete_max_len"]:
        # A set: "book" has two identical deletions ("bok") that are one feature.
        neighbours = {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}
        features.extend("d:" + v for v in sorted(neighbours))
    else:
        features.append("d:" + word)
    prefix_len = params["prefix_len"]
    if query:
        features.append("p:" + word[:prefix_len])
    else:
        features.extend("p:" + word[:n] for n in range(1, min(prefix_len, len(word)) + 1))
    return features


class TextIndex:
    """A TF-IDF index over word, character n-gram, deletion and prefix features.

    Build with :meth:`build`, persist with :meth:`save` / :meth:`load`; answer with
    :meth:`query` (top k items) and :meth:`score` (relevance of given items).
    """

    def __init__(
        self,
        params: dict[str, Any],
        vocabulary: Sequence[str],
        idf: np.ndarray,
        item_matrix: sp.csr_matrix,
    ) -> None:
        """Assemble an index from its persisted parts (use :meth:`build` or :meth:`load`)."""
        self.params = _check_params(params)
        self.vocabulary: dict[str, int] = {f: j for j, f in enumerate(vocabulary)}
        if len(self.vocabulary) != len(vocabulary):
            raise ValueError("TextIndex: the vocabulary has duplicate features")
        self.idf = np.asarray(idf, dtype=np.float64)
        if self.idf.shape != (len(vocabulary),):
            raise ValueError(
                f"TextIndex: idf has shape {self.idf.shape}, expected ({len(vocabulary)},)"
            )
        if item_matrix.shape[1] != len(vocabulary):
            raise ValueError(
                f"TextIndex: item matrix has {item_matrix.shape[1]} columns for "
                f"{len(vocabulary)} features"
            )
        self.item_matrix = sp.csr_matrix(item_matrix, dtype=np.float32)
        # Feature-major copy: a query only touches the posting lists of its own features.
        self._postings = self.item_matrix.T.tocsr()
        self._channel_of = _channel_ids(vocabulary)
        self._channel_weight = _channel_weights(self.params)
        self._analyze_query = make_query_analyzer(self.params)

    @property
    def n_items(self) -> int:
        """Number of items the index was built over."""
        return int(self.item_matrix.shape[0])

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, texts: Sequence[str], **params: Any) -> TextIndex:
        """Fit the index on item texts.

        Args:
            texts: ``texts[i]`` is the text of item ``i`` (title plus category/attributes).
            **params: overrides of :data:`DEFAULT_PARAMS`.

        Returns:
            The index; query results are positions into ``texts``.

        Raises:
            ValueError: no texts, an unknown parameter, or no text with any word in it.
            TypeError: a text that is not a string.
        """
        merged = _check_params(params)
        texts = list(texts)
        if not texts:
            raise ValueError("TextIndex.build: no item texts given")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"TextIndex.build: texts[{i}] is {type(text).__name__}, not str")
        vectorizer, raw = fit_vectorizer(texts, merged)
        vocabulary = vectorizer.get_feature_names_out().tolist()
        matrix = _weight_rows(sp.csr_matrix(raw), vocabulary, merged)
        return cls(merged, vocabulary, vectorizer.idf_, matrix)

    # ------------------------------------------------------------------ persistence

    def save(self, directory: PathLike) -> None:
        """Write the index as plain files (JSON, .npy, .npz; no pickle) into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        vocabulary = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        meta = {
            "format_version": FORMAT_VERSION,
            "params": self.params,
            "n_items": self.n_items,
            "n_features": len(vocabulary),
        }
        with open(os.path.join(directory, PARAMS_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        with open(os.path.join(directory, VOCABULARY_FILE), "w", encoding="utf-8") as f:
            json.dump(vocabulary, f, ensure_ascii=False)
        np.save(os.path.join(directory, IDF_FILE), self.idf, allow_pickle=False)
        sp.save_npz(os.path.join(directory, ITEMS_FILE), self.item_matrix, compressed=True)

    @classmethod
    def load(cls, directory: PathLike) -> TextIndex:
        """Read an index written by :meth:`save`.

        Raises:
            FileNotFoundError: a file of the index is missing (the message names it).
            ValueError: the files are of another format version or inconsistent.
        """
        paths = {name: os.path.join(directory, name) for name in
                 (PARAMS_FILE, VOCABULARY_FILE, IDF_FILE, ITEMS_FILE)}
        for path in paths.values():
            if not os.path.isfile(path):
                raise FileNotFoundError(f"TextIndex.load: missing {path}")
        with open(paths[PARAMS_FILE], encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"TextIndex.load: {paths[PARAMS_FILE]} has format_version "
                f"{meta.get('format_version')!r}, this code reads {FORMAT_VERSION}"
            )
        with open(paths[VOCABULARY_FILE], encoding="utf-8") as f:
            vocabulary = json.load(f)
        idf = np.load(paths[IDF_FILE], allow_pickle=False)
        matrix = sp.load_npz(paths[ITEMS_FILE])
        index = cls(meta["params"], vocabulary, idf, matrix)
        if index.n_items != meta.get("n_items"):
            raise ValueError(
                f"TextIndex.load: {paths[ITEMS_FILE]} has {index.n_items} items, "
                f"{paths[PARAMS_FILE]} says {meta.get('n_items')}"
            )
        return index

    # ------------------------------------------------------------------ answering

    def transform(self, text: str) -> sp.csr_matrix:
        """The weighted query vector (1 x n_features) for ``text``; unknown features are dropped.

        Raises:
            TypeError: ``text`` is not a string.
            ValueError: ``text`` is empty or only whitespace.
        """
        if not isinstance(text, str):
            raise TypeError(f"query must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("query is empty: give at least one non-space character")
        counts = Counter(self._analyze_query(text))
        known = sorted(
            (self.vocabulary[f], n) for f, n in counts.items() if f in self.vocabulary
        )
        col = np.array([j for j, _ in known], dtype=np.int64)
        tf_arr = np.array([n for _, n in known], dtype=np.float64)
        if self.params["sublinear_tf"]:
            tf_arr = 1.0 + np.log(tf_arr)
        values = tf_arr * self.idf[col]
        values = _weight_channels(values, self._channel_of[col], self._channel_weight)
        return sp.csr_matrix(
            (values, col, np.array([0, len(col)])), shape=(1, len(self.vocabulary))
        )

    def _all_scores(self, text: str) -> np.ndarray:
        q = self.transform(text)
        if q.nnz == 0:
            return np.zeros(self.n_items, dtype=np.float32)
        starts = self._postings.indptr[q.indices]
        ends = self._postings.indptr[q.indices + 1]
        lengths = ends - starts
        if lengths.sum() == 0:
            return np.zeros(self.n_items, dtype=np.float32)
        # Concatenated posting-list positions: starts[i] .. ends[i] for every query feature i.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        positions = offsets + np.arange(int(lengths.sum()))
        weights = self._postings.data[positions].astype(np.float64) * np.repeat(q.data, lengths)
        scores = np.bincount(
            self._postings.indices[positions], weights=weights, minlength=self.n_items
        )
        # Rounding can nudge an exact match a hair past 1.
        return np.clip(scores, 0.0, 1.0).astype(np.float32)

    def query(self, text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most relevant to ``text``, best first.

        Args:
            text: the user's query (any case, accents, typos, partial last word).
            k: how many items at most.

        Returns:
            ``(indices int64, scores float32 in [0, 1])``, ordered by score, ties by index;
            only items sharing at least one feature with the query, so empty arrays when
            nothing matches.

        Raises:
            ValueError: ``text`` is empty or only whitespace, or ``k`` is negative.
            TypeError: ``text`` is not a string.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        scores = self._all_scores(text)
        candidates = np.flatnonzero(scores > 0)
        if k == 0 or candidates.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        cand_scores = scores[candidates]
        if candidates.size > k:
            # Keep every candidate tied with the k-th score so the tie-break below is by index.
            kth = np.partition(cand_scores, candidates.size - k)[candidates.size - k]
            keep = cand_scores >= kth
            candidates, cand_scores = candidates[keep], cand_scores[keep]
        order = np.lexsort((candidates, -cand_scores))[:k]
        return candidates[order].astype(np.int64), cand_scores[order]

    def score(self, text: str, item_indices: np.ndarray) -> np.ndarray:
        """Relevance of ``text`` to each of ``item_indices`` (float32 in [0, 1], 0 = no match).

        Raises:
            ValueError: empty query, or an index outside ``[0, n_items)``.
            TypeError: ``text`` is not a string.
        """
        idx = np.asarray(item_indices)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"item_indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_items):
            bad = idx[(idx < 0) | (idx >= self.n_items)][0]
            raise ValueError(f"item index {int(bad)} is outside [0, {self.n_items})")
        return self._all_scores(text)[idx]


# ---------------------------------------------------------------------- helpers


def fit_vectorizer(
    texts: Sequence[str], params: dict[str, Any]
) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """Fit scikit-learn's TF-IDF on item texts with this module's analyzer.

    Returns:
        The fitted vectorizer and the items' raw TF-IDF matrix (not normalised: the
        per-channel normalisation happens afterwards).
    """
    vectorizer = TfidfVectorizer(
        analyzer=make_analyzer(params),
        norm=None,
        use_idf=True,
        smooth_idf=True,
        sublinear_tf=params["sublinear_tf"],
        dtype=np.float64,
    )
    try:
        raw = vectorizer.fit_transform(texts)
    except ValueError as exc:  # "empty vocabulary" from scikit-learn
        raise ValueError(
            "TextIndex.build: no item text contains a word (letters or digits)"
        ) from exc
    return vectorizer, sp.csr_matrix(raw)


def _channel_ids(vocabulary: Sequence[str]) -> np.ndarray:
    """Channel number of each feature, from its tag ("w:", "c:", "d:" or "p:")."""
    tag_to_id = {tag + ":": i for i, tag in enumerate(CHANNELS)}
    ids = [tag_to_id.get(feature[:2], -1) for feature in vocabulary]
    if -1 in ids:
        bad = vocabulary[ids.index(-1)]
        raise ValueError(f"TextIndex: feature {bad!r} has no channel tag {sorted(tag_to_id)}")
    return np.array(ids, dtype=np.int8)


def _channel_weights(params: dict[str, Any]) -> np.ndarray:
    raw = np.array(
        [params["word_weight"], params["char_weight"], params["delete_weight"],
         params["prefix_weight"]],
        dtype=np.float64,
    )
    return raw / raw.sum()


def _weight_channels(values: np.ndarray, channel: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """L2-normalise each channel of one vector and scale it by the channel's weight."""
    sq = np.bincount(channel, weights=values * values, minlength=len(CHANNELS))
    norm = np.sqrt(sq)
    scale = np.divide(weights, norm, out=np.zeros_like(norm), where=norm > 0)
    return values * scale[channel]


def _weight_rows(
    matrix: sp.csr_matrix, vocabulary: Sequence[str], params: dict[str, Any]
) -> sp.csr_matrix:
    """Per-row, per-channel L2 normalisation of the item matrix.

    Item rows are normalised to unit length per channel without the weights, query vectors
    carry the weights: the dot product is then the weighted mean of channel cosines.
    """
    channel = _channel_ids(vocabulary).astype(np.int64)
    matrix = matrix.tocsr(copy=True)
    matrix.sort_indices()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    nnz_channel = channel[matrix.indices]
    sq = np.zeros((matrix.shape[0], len(CHANNELS)))
    np.add.at(sq, (rows, nnz_channel), matrix.data * matrix.data)
    norm = np.sqrt(sq)
    matrix.data = matrix.data / norm[rows, nnz_channel]
    return matrix
