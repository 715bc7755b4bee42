"""Batches of users spread over worker processes, for the offline loops (ranker examples, batch
recommendations). Workers are forked, so the fitted model is shared copy-on-write rather than
pickled; only each batch's small result travels back. Where fork is not the platform's way
(macOS, Windows) or one worker is asked for, the batches run in this process, in order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TypeVar

B = TypeVar("B")
R = TypeVar("R")

_SHARED: Dict[str, Any] = {}


def worker_count(requested: int = 0) -> int:
    """``requested`` workers, or one per core when it is 0 (at most 8)."""
    if requested > 0:
        return requested
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _run(i: int) -> Any:
    return _SHARED["fn"](_SHARED["batches"][i])


def map_batches(fn: Callable[[B], R], batches: Sequence[B], workers: int = 0,
                before_fork: Optional[Callable[[int], None]] = None) -> Iterator[R]:
    """``fn(batch)`` for every batch, results in batch order (yielded as they complete in order).

    ``fn`` may be a closure: it is inherited by the forked workers, not pickled. ``before_fork``
    is called with the number of processes about to run (e.g. to set a thread count per process).
    """
    n = min(worker_count(workers), len(batches))
    if n <= 1 or not _can_fork() or _SHARED:  # nested use runs inline
        if before_fork is not None:
            before_fork(1)
        for batch in batches:
            yield fn(batch)
        return
    if before_fork is not None:
        before_fork(n)
    _SHARED.update(fn=fn, batches=batches)
    try:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            yield from pool.imap(_run, range(len(batches)), chunksize=1)
    finally:
        _SHARED.clear()


def chunks(items: Sequence[B], size: int) -> List[Sequence[B]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
