"""Pure-NumPy reference implementation: the definition the kernel is tested against.

Written for clarity, not speed: labels are turned into exact Python integers
(object arrays), so no dtype can wrap or overflow, and every rule is spelled
out once.  ``confusion_matrix`` has the same signature and results as
``ade20k_metrics.confusion_matrix``; ``reduce_zero_label``, ``label_map`` and
``label_map_on`` follow ``ade20k_metrics.ConfusionMatrix``.
"""
from __future__ import annotations

__all__ = ['IGNORED', 'INVALID', 'LABEL_MAP_ON', 'RawLabelMap', 'confusion_matrix', 'target_rows']

from collections.abc import Mapping

import numpy as np

IGNORED = -1
INVALID = -2

# Which labels a label_map reads: "reduced" (the default: the labels after reduce_zero_label, ignored
# pixels left alone) or "raw" (the labels as stored, every pixel, before reduce_zero_label: mmseg 0.30's
# intersect_and_union and HF evaluate's mean_iou, where a key of 0 or of the ignore value is a label too).
LABEL_MAP_ON = ("reduced", "raw")


class RawLabelMap(dict):
    """A label_map {old: new} that reads the raw labels (``label_map_on="raw"``), as a settings value.

    Equal only to another RawLabelMap with the same items, so accumulators of
    the two orders never merge; passed as ``label_map`` it sets that order.
    """

    def __eq__(self, other):
        return isinstance(other, RawLabelMap) and dict.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"RawLabelMap({dict.__repr__(self)})"


def check_label_map_on(label_map_on, label_map=None) -> str:
    """The order's name, checked (a RawLabelMap given as label_map means "raw")."""
    if not isinstance(label_map_on, str) or label_map_on not in LABEL_MAP_ON:
        raise ValueError(f"label_map_on must be one of {LABEL_MAP_ON}, got {label_map_on!r}")
    if isinstance(label_map, RawLabelMap):
        return "raw"
    return label_map_on


def _as_python_ints(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} labels must be integers, got dtype {arr.dtype}")
    return arr.astype(object)


def _mapped(v: np.ndarray, label_map: Mapping[int, int], where: np.ndarray) -> np.ndarray:
    """``v`` with label_map applied all at once (every mapping reads the labels before it) where ``where``."""
    mapped = v.copy()
    for old, new in label_map.items():
        mapped[(v == old) & where] = new
    return mapped


def target_rows(target, num_classes: int, ignore_index: int | None = 255,
                reduce_zero_label: bool = False, label_map: Mapping[int, int] | None = None,
                label_map_on: str = "reduced") -> np.ndarray:
    """The confusion-matrix row of every target pixel (int64, same shape).

    IGNORED (-1) for pixels not evaluated, INVALID (-2) for labels that are no
    class.  The rules, in order:
      0. label_map_on="raw" only: label_map {old: new} applied to the raw labels
         all at once, at every pixel (a key may be 0 or ignore_index);
      1. a raw label equal to ignore_index is ignored;
      2. reduce_zero_label: 0 is ignored, every other label v becomes v - 1;
      3. label_map_on="reduced" (the default): label_map applied to the
         (reduced) labels of the pixels not ignored, all at once;
      4. a label now equal to ignore_index is ignored;
      5. a label in [0, num_classes) is that class; anything else is invalid.
    """
    label_map_on = check_label_map_on(label_map_on, label_map)
    v = _as_python_ints(target, "target")
    shape = v.shape
    v = v.ravel()  # 1-d: arithmetic on 0-d object arrays would give bare ints
    if label_map and label_map_on == "raw":
        v = _mapped(v, label_map, np.ones(v.shape, dtype=bool))
    ignored = np.zeros(v.shape, dtype=bool)
    if ignore_index is not None:
        ignored |= v == ignore_index
    if reduce_zero_label:
        ignored |= v == 0
        v = v - 1
    if label_map and label_map_on == "reduced":
        v = _mapped(v, label_map, ~ignored)
    if ignore_index is not None:
        ignored |= v == ignore_index
    valid = ~ignored & (v >= 0) & (v < num_classes)
    rows = np.full(v.shape, INVALID, dtype=np.int64)
    rows[ignored] = IGNORED
    rows[valid] = v[valid].astype(np.int64)
    return rows.reshape(shape)


def confusion_matrix(pred, target, num_classes: int, *, ignore_index: int | None = 255,
                     n_threads: int | None = None, reduce_zero_label: bool = False,
                     label_map: Mapping[int, int] | None = None, label_map_on: str = "reduced") -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows = target, columns = pred.

    Pixels whose target is ignored are skipped whatever their prediction; any
    other pixel with a target or prediction outside [0, num_classes) is a
    ValueError.  ``n_threads`` is accepted for signature parity and unused.
    """
    del n_threads
    p = _as_python_ints(pred, "pred")
    rows = target_rows(target, num_classes, ignore_index, reduce_zero_label, label_map, label_map_on)
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
