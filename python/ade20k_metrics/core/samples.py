"""Per-sample records: counts remembered under each sample's dataset index.

``ConfusionMatrix.update_samples`` counts like ``update`` and also keeps each
sample's own matrix, sparse (its non-zero cells), so that ``sync`` can drop
the samples DistributedSampler repeats (see distributed.py).
"""
from __future__ import annotations

import numpy as np

from .inputs import as_int, as_labels, label_pairs
from .kernel import count

# Per-sample records live on the accumulator as {index: [(flat cells, counts), ...]}.
RECORDS = "_sample_records"


def records(cm) -> dict:
    rec = cm.__dict__.get(RECORDS)
    if rec is None:
        rec = {}
        cm.__dict__[RECORDS] = rec
    return rec


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
        count(p, t, one, k, cm.ignore_index, cm._threads, cm._lookup(t.dtype))
        flat = one.ravel()
        cells = np.flatnonzero(flat)
        sparse.append((cells.astype(np.int64), flat[cells].copy()))
        total += one
    # Everything counted: commit.
    cm._matrix += total
    kept = records(cm)
    for index, rec in zip(index_list, sparse):
        kept.setdefault(index, []).append(rec)
