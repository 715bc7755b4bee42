"""The offline loops spread over forked workers: same results, in order, whatever the count."""

from __future__ import annotations

import os

import numpy as np
import pytest
from recsys import parallel, train


def test_map_batches_keeps_order_runs_closures_and_uses_other_processes():
    offset = 1000  # a closure: inherited by the forked workers, never pickled

    def work(batch):
        return [x + offset for x in batch], os.getpid()

    batches = parallel.chunks(list(range(50)), 7)
    seen = []
    results = list(parallel.map_batches(work, batches, workers=2, before_fork=seen.append))
    assert [r[0] for r in results] == [[x + offset for x in b] for b in batches]
    if parallel._can_fork():
        assert seen == [2]
        assert os.getpid() not in {pid for _, pid in results}
    inline = list(parallel.map_batches(work, batches, workers=1, before_fork=seen.append))
    assert [r[0] for r in inline] == [r[0] for r in results]
    assert {pid for _, pid in inline} == {os.getpid()} and seen[-1] == 1


def test_a_failing_batch_fails_the_whole_map():
    def work(batch):
        if 3 in batch:
            raise ValueError("bad batch")
        return batch

    with pytest.raises(ValueError, match="bad batch"):
        list(parallel.map_batches(work, parallel.chunks(list(range(10)), 2), workers=2))


def test_the_ranker_does_not_depend_on_the_number_of_workers(synthetic_dataset, monkeypatch):
    # single-threaded HNSW builds, so both runs see the same stage 1
    monkeypatch.setattr("recsys.retrieval.os.cpu_count", lambda: 1)
    _, items, seqs, _ = train.load_data(*synthetic_dataset, log=lambda m: None)
    params = {"dim": 16, "ranker_users": 300, "batch_size": 64}
    one = train.fit(seqs, items, {**params, "workers": 1}, log=lambda m: None)
    two = train.fit(seqs, items, {**params, "workers": 2}, log=lambda m: None)
    np.testing.assert_allclose(one.ranker.coef, two.ranker.coef, rtol=1e-6)
    assert one.manifest["offline_metrics"] == two.manifest["offline_metrics"]
