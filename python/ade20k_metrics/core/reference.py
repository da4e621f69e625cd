"""Pure-NumPy reference implementation: the definition the kernel is tested against.

Written for clarity, not speed: labels are turned into exact Python integers
(object arrays), so no dtype can wrap or overflow, and every rule is spelled
out once.  ``confusion_matrix`` has the same signature and results as
``ade20k_metrics.confusion_matrix``; ``reduce_zero_label`` and ``label_map``
follow ``ade20k_metrics.ConfusionMatrix``.
"""
from __future__ import annotations

__all__ = ['IGNORED', 'INVALID', 'confusion_matrix', 'target_rows']

from collections.abc import Mapping

import numpy as np

IGNORED = -1
INVALID = -2


def _as_python_ints(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} labels must be integers, got dtype {arr.dtype}")
    return arr.astype(object)


def target_rows(target, num_classes: int, ignore_index: int | None = 255,
                reduce_zero_label: bool = False, label_map: Mapping[int, int] | None = None) -> np.ndarray:
    """The confusion-matrix row of every target pixel (int64, same shape).

    IGNORED (-1) for pixels not evaluated, INVALID (-2) for labels that are no
    class.  The rules, in order:
      1. a raw label equal to ignore_index is ignored;
      2. reduce_zero_label: 0 is ignored, every other label v becomes v - 1;
      3. label_map: {old: new} applied to the (reduced) labels all at once;
      4. a label now equal to ignore_index is ignored;
      5. a label in [0, num_classes) is that class; anything else is invalid.
    """
    v = _as_python_ints(target, "target")
    shape = v.shape
    v = v.ravel()  # 1-d: arithmetic on 0-d object arrays would give bare ints
    ignored = np.zeros(v.shape, dtype=bool)
    if ignore_index is not None:
        ignored |= v == ignore_index
    if reduce_zero_label:
        ignored |= v == 0
        v = v - 1
    if label_map:
        mapped = v.copy()
        for old, new in label_map.items():
            mapped[(v == old) & ~ignored] = new
        v = mapped
    if ignore_index is not None:
        ignored |= v == ignore_index
    valid = ~ignored & (v >= 0) & (v < num_classes)
    rows = np.full(v.shape, INVALID, dtype=np.int64)
    rows[ignored] = IGNORED
    rows[valid] = v[valid].astype(np.int64)
    return rows.reshape(shape)


def confusion_matrix(pred, target, num_classes: int, *, ignore_index: int | None = 255,
                     n_threads: int | None = None, reduce_zero_label: bool = False,
                     label_map: Mapping[int, int] | None = None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows = target, columns = pred.

    Pixels whose target is ignored are skipped whatever their prediction; any
    other pixel with a target or prediction outside [0, num_classes) is a
    ValueError.  ``n_threads`` is accepted for signature parity and unused.
    """
    del n_threads
    p = _as_python_ints(pred, "pred")
    rows = target_rows(target, num_classes, ignore_index, reduce_zero_label, label_map)
    if p.shape != rows.shape:
        raise ValueError(f"pred and target must have the same shape, got {p.shape} and {rows.shape}")
    rows, p = rows.ravel(), p.ravel()
    if np.any(rows == INVALID):
        raise ValueError("target has labels outside [0, num_classes) that are not ignore_index")
    evaluated = rows >= 0
    pred_valid = (p >= 0) & (p < num_classes)
    if np.any(evaluated & ~pred_valid):
        raise ValueError("pred has labels outside [0, num_classes)")
    cols = p[evaluated].astype(np.int64)
    flat = rows[evaluated] * num_classes + cols
    return np.bincount(flat, minlength=num_classes * num_classes).astype(np.int64).reshape(
        num_classes, num_classes)
