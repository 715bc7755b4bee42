"""Stage 3, scoring: a scikit-learn logistic regression over (user, candidate) features, stored as
plain JSON weights (no pickle), and the rank-fusion fallback used before a ranker is trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression


class Ranker:
    """Standardised features -> logistic regression -> probability of being the next item."""

    def __init__(self, feature_names: Sequence[str], mean: np.ndarray, scale: np.ndarray,
                 coef: np.ndarray, intercept: float, info: Optional[Dict] = None) -> None:
        self.feature_names = list(feature_names)
        self.mean = np.asarray(mean, np.float32)
        self.scale = np.asarray(scale, np.float32)
        self.coef = np.asarray(coef, np.float32)
        self.intercept = float(intercept)
        self.info = info or {}
        # fold the standardisation into the weights: one matrix-vector product per request
        self._w = self.coef / self.scale
        self._b = self.intercept - float(np.dot(self.mean, self._w))

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, feature_names: Sequence[str],
            c: float = 1.0, max_iter: int = 500, seed: int = 0) -> Ranker:
        if features.shape[0] == 0 or labels.min() == labels.max():
            raise ValueError("the ranker needs both positive and negative examples; too little data")
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale < 1e-6] = 1.0
        x = (features - mean) / scale
        model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
        model.fit(x, labels)
        info = {"examples": len(labels), "positives": int(labels.sum()), "C": c,
                "iterations": int(np.max(model.n_iter_))}
        return cls(feature_names, mean, scale, model.coef_.ravel(), float(model.intercept_[0]), info)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self._w + self._b

    def score(self, features: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-np.clip(self.logits(features), -30, 30)))).astype(np.float32)

    def to_json(self) -> Dict:
        return {
            "type": "logistic_regression",
            "feature_names": self.feature_names,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "info": self.info,
        }

    @classmethod
    def from_json(cls, data: Dict, expected_features: Optional[List[str]] = None) -> Ranker:
        if data.get("type") != "logistic_regression":
            raise ValueError(f"unknown ranker type {data.get('type')!r}")
        if expected_features is not None and data["feature_names"] != list(expected_features):
            raise ValueError(
                "ranker was trained on features "
                f"{data['feature_names']} but this code computes {list(expected_features)}"
            )
        return cls(data["feature_names"], np.array(data["mean"]), np.array(data["scale"]),
                   np.array(data["coef"]), data["intercept"], data.get("info"))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2))

    @classmethod
    def load(cls, path, expected_features: Optional[List[str]] = None) -> Ranker:
        return cls.from_json(json.loads(Path(path).read_text()), expected_features)
