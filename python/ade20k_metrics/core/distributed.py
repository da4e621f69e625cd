"""Summing confusion matrices over torch.distributed ranks, exactly.

``ConfusionMatrix.sync(group=None)`` replaces each rank's matrix with the sum
over all ranks of the group: one int64 ``all_reduce`` (so no count is ever
rounded), after a check that every rank has the same settings.  A sum that
would pass int64 is an OverflowError on every rank, nothing changed (see
_sum_over_ranks).  Call it once, after the last update; a second call would
add the sums again.

Padding samples.  ``DistributedSampler`` (drop_last=False) repeats a few
dataset indices so that every rank gets the same number of samples; counted
naively, those samples weigh twice.  To drop them, count through
``ConfusionMatrix.update_samples(indices, preds, targets)``, which also keeps
each sample's own matrix (sparse: its non-zero cells, typically a few hundred
per image), and sync with ``dataset_size=len(dataset)``:

  1. every rank sends the list of sample indices it counted (all_gather);
  2. walking ranks in order (and each rank's samples in index order), the
     first occurrence of an index is kept and every later one is dropped:
     its rank subtracts that sample's matrix before the sum (the copies of a
     padded sample are the same image, so which one is kept does not matter
     for a deterministic model);
  3. the indices must then be exactly 0 .. dataset_size-1, each once, or every
     rank raises the same ValueError (nothing is summed, nothing changed).

Counts added with plain ``update`` are summed as they are.  Memory: the
sparse per-sample matrices of the samples a rank counted (for ADE20K's 2,000
validation images, a few MB per rank), freed by ``sync``.
"""
from __future__ import annotations


import numpy as np

from .inputs import as_int
from .samples import records as _records

def _dist():
    try:
        import torch
        import torch.distributed as dist
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("ConfusionMatrix.sync needs PyTorch (pip install 'ade20k-metrics[torch]')") from e
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised; call torch.distributed.init_process_group first")
    return torch, dist


def _drop_duplicates(cm, gathered: list[list[int]], rank: int, dataset_size: int) -> np.ndarray:
    """The local matrix minus this rank's repeated samples; raises the same error on every rank."""
    seen: set[int] = set()
    drop_here: list[tuple[int, int]] = []  # (index, occurrence on this rank)
    for r, indices in enumerate(gathered):
        occurrence: dict[int, int] = {}
        for index in indices:
            n = occurrence.get(index, 0)
            occurrence[index] = n + 1
            if index in seen:
                if r == rank:
                    drop_here.append((index, n))
            else:
                seen.add(index)
    out_of_range = sorted(i for i in seen if i >= dataset_size)
    if out_of_range:
        raise ValueError(f"sample indices {out_of_range[:5]} are outside [0, dataset_size={dataset_size})")
    if len(seen) != dataset_size:
        raise ValueError(f"{dataset_size - len(seen)} of dataset_size={dataset_size} samples were never counted "
                         f"with update_samples on any rank, e.g. index {_first_missing(seen)}")
    local = cm._snapshot()
    flat = local.reshape(-1)
    records = _records(cm)
    for index, n in drop_here:
        cells, counts = records[index][n]
        flat[cells] -= counts
    return local


def _first_missing(seen: set[int]) -> int:
    """The smallest index >= 0 not in ``seen`` (non-negative ints), in O(len(seen)) memory.

    A wrong, huge dataset_size must not cost a set of range(dataset_size).
    """
    present = np.sort(np.fromiter(seen, dtype=np.int64, count=len(seen)))
    # Sorted distinct indices from 0: the first position whose index is not the position.
    gaps = np.flatnonzero(present != np.arange(len(present)))
    return int(gaps[0]) if gaps.size else len(present)


def _sum_over_ranks(torch, dist, group, local: np.ndarray, flag: int) -> tuple[np.ndarray, int]:
    """(the exact sum over ranks of ``local``, the sum over ranks of ``flag``); the same on every rank.

    int64 all_reduce wraps silently, so each rank also sends a bound of its
    counts: ceil(max / 2**32).  While the bounds sum to less than 2**31, no
    sum of counts can reach 2**63 and the one reduce is exact (every real
    case).  Otherwise the counts are summed again as 32-bit halves, which
    cannot overflow for fewer than 2**31 ranks, and put together as Python
    ints (an object array, which may hold sums past int64).
    """
    k2 = local.size
    flat = local.reshape(-1)
    buffer = np.zeros(k2 + 2, dtype=np.int64)
    buffer[:k2] = flat
    buffer[k2] = flag
    top = int(np.abs(flat).max()) if k2 else 0  # counts are >= -2**63 + 1: abs cannot wrap here
    buffer[k2 + 1] = -(-top >> 32)
    result = _all_reduce(torch, dist, group, buffer)
    if result[k2 + 1] < 2**31:
        return result[:k2], int(result[k2])
    halves = np.zeros(2 * k2, dtype=np.int64)
    halves[:k2] = flat >> 32  # arithmetic shift: high + low = the count, also below 0
    halves[k2:] = flat & 0xFFFFFFFF
    summed = _all_reduce(torch, dist, group, halves).astype(object)
    return summed[:k2] * 2**32 + summed[k2:], int(result[k2])


def _all_reduce(torch, dist, group, buffer: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(buffer)
    if dist.get_backend(group) == "nccl":  # NCCL reduces device tensors only
        tensor = tensor.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    return tensor.cpu().numpy()


def sync_matrix(cm, group=None, dataset_size: int | None = None) -> None:
    """Replace cm's matrix by the sum over the group's ranks (see the module docstring)."""
    if dataset_size is not None:
        dataset_size = as_int(dataset_size, "dataset_size", "an int or None")
        if dataset_size < 0:
            raise ValueError(f"dataset_size must be >= 0, got {dataset_size}")
    torch, dist = _dist()
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    records = _records(cm)
    local_indices = []
    if dataset_size is not None:
        # Recording order per index is kept in the lists; order across indices: by index then occurrence.
        for index in sorted(records):
            local_indices.extend([index] * len(records[index]))
    mine = (cm._settings(), dataset_size, local_indices)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, mine, group=group)
    settings = [g[0] for g in gathered]
    if any(s != settings[0] for s in settings):
        raise ValueError(f"ranks disagree on (num_classes, ignore_index, reduce_zero_label, label_map): {settings}")
    sizes = [g[1] for g in gathered]
    if any(s != sizes[0] for s in sizes):
        raise ValueError(f"ranks disagree on dataset_size: {sizes}")
    if dataset_size is not None:
        local = _drop_duplicates(cm, [g[2] for g in gathered], rank, dataset_size)
    else:
        local = cm._snapshot()
    # One collective for the counts and for a flag: a rank whose records do not
    # match its matrix (reset() after update_samples) makes every rank raise,
    # rather than one rank raising while the others wait for it.
    summed, bad_ranks = _sum_over_ranks(torch, dist, group, local, int((local < 0).any()))
    if bad_ranks:
        raise ValueError(f"{bad_ranks} rank(s) hold per-sample records that do not match their matrix "
                         "(reset() after update_samples?); nothing was summed")
    if summed.dtype == object and summed.size and max(summed) > 2**63 - 1:
        raise OverflowError("the sum over ranks of a count would overflow int64; nothing was summed")
    cm._matrix[...] = summed.astype(np.int64).reshape(local.shape)
    records.clear()
