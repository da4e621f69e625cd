"""Confusion matrices over a Dask cluster: folder-scale or array-scale evaluation.

    from dask.distributed import Client
    from ade20k_metrics.dask import evaluate_files
    client = Client("tcp://scheduler:8786")            # or LocalCluster(); None: Dask's default
    cm = evaluate_files(pairs, 150, reduce_zero_label=True)
    cm.compute().miou

Each task counts one partition (``partition_size`` file pairs, or one block
of a Dask array) into a partial (K, K) int64 matrix on a worker; partials are
summed in a tree (``split_every`` at a time), so only matrices, never label
maps, cross the network, and the sum is exact.  The result is an ordinary
``ConfusionMatrix``.  A bad file or label anywhere raises when the graph is
computed, and no matrix is returned.  Labels that look off by one class
(metrics/shift.py) give a ``LabelShiftWarning`` when the result is computed.

With ``boundary=`` / ``boundary_f1=`` (Boundary IoU, BF score: core/boundary.py)
each task returns its partial ``ConfusionMatrix`` instead, and partials are
merged the same way; arrays are then split only between images, never inside
one (a band reaches across a block's edge).

Importing this module imports dask; ``import ade20k_metrics`` never does.
"""
from __future__ import annotations

__all__ = ['evaluate_arrays', 'evaluate_files', 'read_labels', 'tree_sum']

import os
from collections.abc import Mapping, Sequence

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("ade20k_metrics.dask needs dask: pip install 'ade20k-metrics[dask]'") from e

from ..core.confusion import ConfusionMatrix
from ..metrics.shift import label_shift, shift_hint, warn_if_shifted


def read_labels(path) -> np.ndarray:
    """A label map from a file: .npy (memory-mapped) or any image Pillow reads in a label mode.

    Images are decoded as ``ade20k-metrics evaluate`` decodes them: a
    truncated or damaged PNG, a colour, floating-point or lossy (JPEG) image,
    one over ``PIL.Image.MAX_IMAGE_PIXELS`` or a file that is not a regular
    file is a ValueError naming it, whatever ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``
    says, and no pixel of it is counted.
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    path = os.fspath(path)
    if path.endswith(".npy"):
        return np.load(path, mmap_mode="r")
    from ..io.label_files import InputError, read_label_map

    try:
        return read_label_map(path)
    except InputError as e:
        raise ValueError(str(e)) from None


def _accumulator(settings: tuple, n_threads) -> ConfusionMatrix:
    k, ignore_index, reduce_zero_label, label_map, *band = settings
    boundary, boundary_f1 = band if band else (None, None)
    return ConfusionMatrix(k, ignore_index=ignore_index, reduce_zero_label=reduce_zero_label,
                           label_map=label_map, n_threads=n_threads, boundary=boundary, boundary_f1=boundary_f1)


def _has_boundary(settings: tuple) -> bool:
    return len(settings) > 4


def _partial(cm: ConfusionMatrix):
    """What a task hands on: the matrix alone, or the whole accumulator when it has boundary state."""
    return cm if cm._boundary is not None else np.array(cm.matrix)


def _empty_partial(settings: tuple, n_threads):
    if _has_boundary(settings):
        return dask.delayed(_accumulator)(settings, n_threads)
    k = settings[0]
    return dask.delayed(np.zeros)((k, k), dtype=np.int64)


def _partial_files(pairs: list, settings: tuple, n_threads):
    cm = _accumulator(settings, n_threads)
    for pred_path, target_path in pairs:
        try:
            cm.update(read_labels(pred_path), read_labels(target_path))
        except (ValueError, TypeError) as e:
            raise type(e)(f"{os.fspath(pred_path)!r} vs {os.fspath(target_path)!r}: {e}") from e
    return _partial(cm)


def _partial_block(pred: np.ndarray, target: np.ndarray, settings: tuple, n_threads):
    cm = _accumulator(settings, n_threads)
    cm.update(pred, target)
    return _partial(cm)


def _sum(parts: list):
    if isinstance(parts[0], ConfusionMatrix):  # with boundary state: merged accumulators
        total = parts[0].copy()
        for p in parts[1:]:
            total.merge(p)
        return total
    total = np.array(parts[0], dtype=np.int64, copy=True)
    for p in parts[1:]:
        total += p
    return total


def tree_sum(parts: list, split_every: int = 8):
    """One delayed matrix: the sum of delayed matrices, ``split_every`` at a time per task."""
    if split_every < 2:
        raise ValueError(f"split_every must be >= 2, got {split_every}")
    if not parts:
        raise ValueError("nothing to sum")
    while len(parts) > 1:
        parts = [dask.delayed(_sum)(parts[i:i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def _settings(num_classes, ignore_index, reduce_zero_label, label_map, boundary=None, boundary_f1=None) -> tuple:
    # Built here once, so bad settings fail on the client before any task runs.
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, reduce_zero_label=reduce_zero_label,
                         label_map=label_map, boundary=boundary, boundary_f1=boundary_f1)
    return cm._settings()


def _finish(total, settings: tuple, n_threads, compute: bool):
    if not compute:
        return total
    (matrix,) = dask.compute(total)
    if isinstance(matrix, ConfusionMatrix):
        return matrix
    cm = _accumulator(settings, n_threads)
    cm._matrix[...] = matrix
    # Said here, not only at cm.compute(): a folder-scale job's labels off by one class must not pass in silence.
    warn_if_shifted(matrix, shift_hint(label_shift(matrix), cm.reduce_zero_label), stacklevel=4)
    return cm


def evaluate_files(pairs: Sequence, num_classes: int, *, ignore_index: int | None = 255,
                   reduce_zero_label: bool = False, label_map: Mapping[int, int] | None = None,
                   partition_size: int = 16, split_every: int = 8, n_threads: int | None = None,
                   compute: bool = True, boundary: float | None = None, boundary_f1: float | None = None):
    """Evaluate (prediction path, ground-truth path) pairs over Dask; returns a ConfusionMatrix.

    ``compute=False`` returns the delayed (K, K) matrix instead (with
    ``boundary``/``boundary_f1``: the delayed ConfusionMatrix), to combine
    with other graphs.  ``n_threads`` is the kernel's per-task thread count
    on the workers (None: the worker's default).  ``boundary``,
    ``boundary_f1``: as ``ConfusionMatrix``'s.
    """
    settings = _settings(num_classes, ignore_index, reduce_zero_label, label_map, boundary, boundary_f1)
    pairs = [tuple(p) for p in pairs]
    if any(len(p) != 2 for p in pairs):
        raise ValueError("pairs must be (prediction, ground truth) path pairs")
    if partition_size < 1:
        raise ValueError(f"partition_size must be >= 1, got {partition_size}")
    if not pairs:
        parts = [_empty_partial(settings, n_threads)]
    else:
        parts = [dask.delayed(_partial_files)(pairs[i:i + partition_size], settings, n_threads)
                 for i in range(0, len(pairs), partition_size)]
    return _finish(tree_sum(parts, split_every), settings, n_threads, compute)


def evaluate_arrays(preds, targets, num_classes: int, *, ignore_index: int | None = 255,
                    reduce_zero_label: bool = False, label_map: Mapping[int, int] | None = None,
                    split_every: int = 8, n_threads: int | None = None, compute: bool = True,
                    boundary: float | None = None, boundary_f1: float | None = None):
    """Evaluate two equally shaped Dask (or NumPy) label arrays, block by block; returns a ConfusionMatrix.

    ``targets`` is rechunked to ``preds``' chunks when they differ.  With
    ``boundary``/``boundary_f1`` the arrays are label maps (H, W) or batches
    (..., H, W), and each block holds whole images (the last two axes are
    rechunked to one block where they are split).
    """
    settings = _settings(num_classes, ignore_index, reduce_zero_label, label_map, boundary, boundary_f1)
    preds = preds if isinstance(preds, da.Array) else da.asarray(preds)
    targets = targets if isinstance(targets, da.Array) else da.asarray(targets)
    if preds.shape != targets.shape:
        raise ValueError(f"preds and targets must have the same shape, got {preds.shape} and {targets.shape}")
    for name, a in (("preds", preds), ("targets", targets)):
        if a.dtype.kind not in "iub":
            raise TypeError(f"{name} has dtype {a.dtype}; labels must be integers")
    if _has_boundary(settings):
        if preds.ndim < 2:
            raise ValueError(f"boundary metrics need label maps (H, W) or batches (..., H, W), got shape {preds.shape}")
        whole = {preds.ndim - 2: -1, preds.ndim - 1: -1}
        if any(len(preds.chunks[axis]) > 1 for axis in whole):
            preds = preds.rechunk(whole)
    if targets.chunks != preds.chunks:
        targets = targets.rechunk(preds.chunks)
    p_blocks = preds.to_delayed().ravel()
    t_blocks = targets.to_delayed().ravel()
    parts = [dask.delayed(_partial_block)(p, t, settings, n_threads) for p, t in zip(p_blocks, t_blocks)]
    if not parts:
        parts = [_empty_partial(settings, n_threads)]
    return _finish(tree_sum(parts, split_every), settings, n_threads, compute)
