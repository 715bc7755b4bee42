"""recsys.hnsw_format: one index file layout for hnswlib 0.8.0 and chroma-hnswlib 0.7.6 (the
cross-library load is exercised in test_container_parity.py), and job 2's code copy."""

from __future__ import annotations

import hnswlib
import numpy as np
import pytest
from recsys import hnsw_format, jobs


def _index(n: int = 50, dim: int = 6):
    data = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=50, M=8, random_seed=1)
    index.set_num_threads(1)
    index.add_items(data, np.arange(n))
    return index, data


def test_converting_to_chroma_and_back_is_lossless_and_adds_one_float_per_element(tmp_path):
    index, data = _index()
    upstream, chroma, back = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    hnsw_format.save(index, upstream)
    hnsw_format.to_chroma(upstream, chroma)
    hnsw_format.to_upstream(chroma, back)
    assert back.read_bytes() == upstream.read_bytes()
    assert chroma.stat().st_size == upstream.stat().st_size + 4 * len(data)
    loaded = hnswlib.Index(space="ip", dim=data.shape[1])
    hnsw_format.load(loaded, upstream, max_elements=len(data))
    assert loaded.knn_query(data[:5], k=3)[0].tolist() == index.knn_query(data[:5], k=3)[0].tolist()


def test_a_file_that_is_not_an_index_is_refused_clearly(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"short")
    with pytest.raises(ValueError, match="shorter than its header"):
        hnsw_format.to_chroma(bad, tmp_path / "y.bin")
    index, _ = _index()
    good = tmp_path / "g.bin"
    hnsw_format.save(index, good)
    bad.write_bytes(good.read_bytes()[:200])  # header promises more level-0 data than there is
    with pytest.raises(ValueError, match="inconsistent header"):
        hnsw_format.to_upstream(bad, tmp_path / "z.bin")


def test_job_two_copies_its_code_folder_into_the_model(tmp_path):
    code = tmp_path / "code"
    (code / "recsys" / "__pycache__").mkdir(parents=True)
    (code / "inference.py").write_text("x = 1\n")
    (code / "recsys" / "m.py").write_text("y = 2\n")
    (code / "recsys" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"junk")
    (code / "wheels").mkdir()
    (code / "wheels" / "a-1-py3-none-any.whl").write_bytes(b"w")
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "code" / "stale.py").write_text("")
    target = jobs.copy_code(code, model)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "inference.py", "recsys/m.py", "wheels/a-1-py3-none-any.whl"]
    with pytest.raises(FileNotFoundError, match=r"has no inference\.py"):
        jobs.copy_code(tmp_path / "model", tmp_path / "other")
