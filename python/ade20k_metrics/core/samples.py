"""Per-sample records: counts remembered under each sample's dataset index.

``ConfusionMatrix.update_samples`` counts like ``update`` and also keeps each
sample's own matrix, sparse (its non-zero cells), so that ``sync`` can drop
the samples DistributedSampler repeats (see distributed.py).
"""
from __future__ import annotations

import numpy as np

from . import _core
from .inputs import as_int, as_labels, label_pairs

# Per-sample records live on the accumulator as {index: [(flat cells, counts), ...]}.
RECORDS = "_sample_records"


def records(cm) -> dict:
    # setdefault, one step under the GIL: two threads that both found no
    # records must not each install a dict, one of them then lost.
    return cm.__dict__.setdefault(RECORDS, {})


def drop_records(cm) -> None:
    cm.__dict__.pop(RECORDS, None)


def merge_records(cm, other) -> None:
    """Add other's per-sample records to cm's (merge, copy): sync then drops repeats across both."""
    theirs = other.__dict__.get(RECORDS)
    if not theirs:
        return
    kept = records(cm)
    for index, recs in list(theirs.items()):  # a snapshot: other may be updated meanwhile
        kept.setdefault(index, []).extend(list(recs))  # (cells, counts) pairs are never modified


def _index_list(indices) -> list[int]:
    if hasattr(indices, "tolist"):  # numpy arrays, torch tensors (no torch import needed)
        indices = indices.tolist()
    out = []
    for i in indices:
        v = as_int(i, "indices", "ints")
        if v < 0:
            raise ValueError(f"sample indices must be >= 0, got {v}")
        out.append(v)
    return out


def update_samples(cm, indices, preds, targets) -> None:
    """Count samples and remember each one's matrix under its dataset index (all-or-nothing)."""
    if np.ndim(indices) == 0 and not isinstance(indices, (list, tuple)):
        index = as_int(indices, "indices", "an int or a sequence of ints")
        if index < 0:
            raise ValueError(f"sample indices must be >= 0, got {index}")
        index_list = [index]
        pairs = label_pairs(preds, targets)
    else:
        index_list = _index_list(indices)
        if isinstance(preds, (list, tuple)) and isinstance(targets, (list, tuple)):
            pairs = label_pairs(preds, targets)
        else:  # batches: the first axis is the sample
            p, t = as_labels(preds, "preds"), as_labels(targets, "targets")
            if p.shape != t.shape:
                raise ValueError(f"preds and targets must have the same shape, got {p.shape} and {t.shape}")
            if p.ndim == 0:
                raise ValueError("a batch needs a first (sample) axis")
            pairs = [(p[i], t[i]) for i in range(p.shape[0])]
    if len(pairs) != len(index_list):
        raise ValueError(f"got {len(index_list)} indices for {len(pairs)} samples")
    k = cm.num_classes
    sparse = []
    total = np.zeros((k, k), dtype=np.int64)
    one = np.zeros((k, k), dtype=np.int64)
    for p, t in pairs:
        one[...] = 0
        cm._count(p, t, one)
        flat = one.ravel()
        cells = np.flatnonzero(flat)
        sparse.append((cells.astype(np.int64), flat[cells].copy()))
        _core.add_counts(total, one)  # OverflowError rather than a count wrapped past int64
    # Everything counted: commit with the kernel's checked add, which holds the
    # GIL (NumPy's += releases it, so two threads' adds could interleave and
    # lose counts) and raises OverflowError with nothing added.
    _core.add_counts(cm._matrix, total)
    kept = records(cm)
    for index, rec in zip(index_list, sparse):
        kept.setdefault(index, []).append(rec)
