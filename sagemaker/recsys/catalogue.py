"""The item catalogue of a model: external ids, titles and categories, indexed like the embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np


class Catalogue:
    def __init__(self, item_ids: Sequence[str], titles: Sequence[str], categories: Sequence[str]) -> None:
        self.item_ids = list(item_ids)
        self.titles = list(titles)
        names = sorted(set(categories))
        self.category_names: List[str] = names
        code = {c: i for i, c in enumerate(names)}
        self.category_codes = np.array([code[c] for c in categories], dtype=np.int32)
        self.index: Dict[str, int] = {item: i for i, item in enumerate(self.item_ids)}
        self.category_index: Dict[str, int] = code

    def __len__(self) -> int:
        return len(self.item_ids)

    def lookup(self, item_ids: Sequence[str]) -> np.ndarray:
        """Indices of the known ids, in order; unknown ids are skipped."""
        idx = [self.index[i] for i in item_ids if i in self.index]
        return np.array(idx, dtype=np.int64)

    def category_of(self, index: int) -> str:
        return self.category_names[self.category_codes[index]]

    def codes_for(self, names) -> np.ndarray:
        return np.array([self.category_index[n] for n in names if n in self.category_index], dtype=np.int32)

    def texts(self, attributes: Optional[Sequence[Dict[str, str]]] = None) -> List[str]:
        """What the text index reads for each item: title, category and attributes."""
        out = []
        for i, title in enumerate(self.titles):
            parts = [title, self.category_of(i)]
            if attributes is not None and i < len(attributes):
                parts.extend(attributes[i].values())
            out.append(" ".join(p for p in parts if p))
        return out

    def save(self, path) -> None:
        Path(path).write_text(json.dumps({
            "item_ids": self.item_ids,
            "titles": self.titles,
            "categories": [self.category_names[c] for c in self.category_codes.tolist()],
        }))

    @classmethod
    def load(cls, path) -> Catalogue:
        data = json.loads(Path(path).read_text())
        return cls(data["item_ids"], data["titles"], data["categories"])
