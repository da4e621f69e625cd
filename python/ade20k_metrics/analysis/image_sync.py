"""``ImageStats.sync``: every rank's images on every rank, the dataset matrix summed exactly.

Two collectives, after which every rank holds the same accumulator:

  1. ``all_gather_object`` of each rank's settings, ``dataset_size``, names,
     dataset indices and per-image records (O(classes present) per image:
     for ADE20K's 2,000 validation images a few MB in all);
  2. one int64 ``all_reduce`` of the matrices (no count is ever rounded).

With ``dataset_size`` the samples DistributedSampler repeats are dropped by
the rule ``ConfusionMatrix.sync`` uses (core/distributed.py): walking ranks in
order and each rank's images in the order they were added, the first
occurrence of a dataset index is kept and every later one dropped; the rank
that counted a dropped copy subtracts that image's sparse matrix (kept since
``update(..., index=i)``) from its matrix before the sum.  The kept images are
then put in index order, which must be exactly 0 .. dataset_size-1.  Every
check is made on gathered data, so every rank raises the same error before
the sum and nothing changes.
"""
from __future__ import annotations

import numpy as np

from ..core.inputs import as_int
from . import records as rec


def _dist():
    try:
        import torch
        import torch.distributed as dist
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("ImageStats.sync needs PyTorch (pip install 'ade20k-metrics[torch]')") from e
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised; call torch.distributed.init_process_group first")
    return torch, dist


def _kept(gathered_indices: list[list], dataset_size: int) -> list[tuple[int, int]]:
    """(rank, image position) of the first occurrence of each index, in index order; raises on bad coverage."""
    first: dict[int, tuple[int, int]] = {}
    for r, indices in enumerate(gathered_indices):
        for i, index in enumerate(indices):
            if index is None:
                raise ValueError(f"rank {r} holds image {i} without a dataset index; with dataset_size every "
                                 "image must be added with update(..., index=i)")
            first.setdefault(index, (r, i))
    out_of_range = sorted(i for i in first if i >= dataset_size)
    if out_of_range:
        raise ValueError(f"sample indices {out_of_range[:5]} are outside [0, dataset_size={dataset_size})")
    if len(first) != dataset_size:
        missing = sorted(set(range(dataset_size)) - first.keys())
        raise ValueError(f"{len(missing)} of dataset_size={dataset_size} samples were never counted on any rank, "
                         f"e.g. index {missing[0]}")
    return [first[i] for i in range(dataset_size)]


def sync_image_stats(stats, group=None, dataset_size: int | None = None) -> None:
    if dataset_size is not None:
        dataset_size = as_int(dataset_size, "dataset_size", "an int or None")
        if dataset_size < 0:
            raise ValueError(f"dataset_size must be >= 0, got {dataset_size}")
    if stats._synced:
        raise RuntimeError("this ImageStats was synced already; a second sync would count every image again "
                           "(reset() to start over)")
    torch, dist = _dist()
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    offsets, flat = rec.pack(stats._records)
    mine = (stats._settings(), dataset_size, list(stats.names), list(stats._indices), offsets, flat)
    gathered: list = [None] * world
    dist.all_gather_object(gathered, mine, group=group)
    settings = [g[0] for g in gathered]
    if any(s != settings[0] for s in settings):
        raise ValueError(f"ranks disagree on (num_classes, ignore_index, reduce_zero_label, label_map): {settings}")
    sizes = [g[1] for g in gathered]
    if any(s != sizes[0] for s in sizes):
        raise ValueError(f"ranks disagree on dataset_size: {sizes}")
    per_rank = [[rec.frozen(f[:, o[i]:o[i + 1]]) for i in range(len(o) - 1)] for *_, o, f in gathered]

    local = stats._matrix
    if dataset_size is None:
        order = [(r, i) for r in range(world) for i in range(len(per_rank[r]))]
    else:
        order = _kept([g[3] for g in gathered], dataset_size)
        kept_here = {i for r, i in order if r == rank}
        local = stats._matrix.copy()
        flat_local = local.reshape(-1)
        for i in range(len(stats._records)):
            if i in kept_here:
                continue
            cells = stats._cells.get(i)
            if cells is None:  # cannot happen through update(index=...); a state built by hand
                flat_local[...] = -1
                break
            flat_local[cells[0]] -= cells[1]
    # One collective for the counts and for a flag: a rank whose matrix does not
    # match its records makes every rank raise, rather than one raising alone.
    k2 = local.size
    buffer = np.zeros(k2 + 1, dtype=np.int64)
    buffer[:k2] = local.reshape(-1)
    buffer[k2] = int((local < 0).any())
    tensor = torch.from_numpy(buffer)
    if dist.get_backend(group) == "nccl":  # NCCL reduces device tensors only
        tensor = tensor.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    result = tensor.cpu().numpy()
    if result[k2]:
        raise ValueError(f"{int(result[k2])} rank(s) hold per-image records that do not match their matrix; "
                         "nothing was summed")
    stats._matrix[...] = result[:k2].reshape(local.shape)
    stats._records = [per_rank[r][i] for r, i in order]
    stats.names = [gathered[r][2][i] for r, i in order]
    stats._indices = [gathered[r][3][i] for r, i in order]
    stats._cells = {}
    stats._synced = True
