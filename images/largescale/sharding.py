"""Balanced class shards and re-sharding of class-major arrays.

Worker ``r`` of ``N`` owns the contiguous classes ``[start, start + num_local)`` with
``num_local = C // N + (r < C % N)`` and ``start = (C // N) * r + min(r, C % N)``: the first
``C % N`` workers hold one class more.  (A ceil-based split leaves the last workers empty when
``(N - 1) * ceil(C / N) >= C``, e.g. C=12, N=5.)
"""
from typing import List, Sequence, Tuple

import numpy as np


def shard_range(num_classes: int, num_shards: int, rank: int) -> Tuple[int, int]:
    """``(start, num_local)`` of shard ``rank``.

    Raises:
      ValueError: fewer classes than shards, or a rank outside ``[0, num_shards)``.
    """
    num_classes, num_shards, rank = int(num_classes), int(num_shards), int(rank)
    if num_shards < 1:
        raise ValueError("the number of shards must be >= 1, got %d" % num_shards)
    if num_classes < num_shards:
        raise ValueError("class count %d is smaller than the worker count %d: every worker must "
                         "own at least one class; use fewer workers or a non-dist loss"
                         % (num_classes, num_shards))
    if not 0 <= rank < num_shards:
        raise ValueError("rank %d outside [0, %d)" % (rank, num_shards))
    base, extra = divmod(num_classes, num_shards)
    return base * rank + min(rank, extra), base + (1 if rank < extra else 0)


def shard_ranges(num_classes: int, num_shards: int) -> List[Tuple[int, int]]:
    """``[(start, num_local)]`` of every shard, in rank order."""
    return [shard_range(num_classes, num_shards, r) for r in range(num_shards)]


def owner_of(labels, num_classes: int, num_shards: int):
    """The shard that owns each class id in ``labels`` (numpy int array)."""
    labels = np.asarray(labels)
    base, extra = divmod(int(num_classes), int(num_shards))
    boundary = extra * (base + 1)  # classes below it live on the larger shards
    return np.where(labels < boundary, labels // (base + 1),
                    extra + (labels - boundary) // max(base, 1))


def overlapping_shards(num_classes: int, old_shards: int, start: int, count: int):
    """Old shards that hold part of ``[start, start + count)``, as
    ``(old_rank, lo_in_old, hi_in_old, lo_in_new)`` tuples in class order."""
    pieces = []
    end = start + count
    for r, (s, n) in enumerate(shard_ranges(num_classes, old_shards)):
        lo, hi = max(s, start), min(s + n, end)
        if lo < hi:
            pieces.append((r, lo - s, hi - s, lo - start))
    return pieces


def reshard(shards: Sequence[np.ndarray], num_shards: int) -> List[np.ndarray]:
    """Concatenates class-major shards along axis 0 and cuts them into ``num_shards`` balanced
    shards.  Only copies bytes, so ``reshard(reshard(x, M), N)`` reproduces ``x`` exactly."""
    full = np.concatenate(list(shards), axis=0)
    return [full[s:s + n].copy() for s, n in shard_ranges(full.shape[0], num_shards)]
