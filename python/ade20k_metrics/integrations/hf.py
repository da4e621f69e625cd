"""Drop-in replacements for other libraries' metric functions, computed with our kernel.

``hf_mean_iou`` takes the arguments of HF evaluate's ``mean_iou`` metric and
returns the same dict, to floating-point equality on every input that HF
handles correctly.  Where HF has a bug, this function deliberately differs:

* ``label_map`` is applied all at once, to the original labels ({1: 2, 2: 3}
  sends 1 to 2, not on to 3), in 64-bit integers: HF writes the new ids into
  the label array's own dtype, where they can wrap or overflow.
* Inputs are never modified.
* ``reduce_labels`` turns 0 into "ignored".  HF turns 0 into 255 and then
  ignores only ``ignore_index``; with an ``ignore_index`` other than 255 HF
  keeps those background pixels, drops their label from the histogram and
  still counts the prediction as a false positive.  Here they are ignored
  whatever ``ignore_index`` is.
* A label outside [0, num_labels) that is not ignored (in the ground truth, or
  in the prediction at an evaluated pixel) is a ValueError.  HF's histogram
  silently drops it, which miscounts that pixel (a ground-truth label out of
  range still adds its prediction to the union).
* ``results`` and ``gt_seg_maps`` of different lengths are a ValueError (HF's
  zip drops the extra maps); a prediction of another shape than its ground
  truth is a ValueError; float label maps are a TypeError (HF histograms them).
* No RuntimeWarning for classes whose IoU or accuracy is 0/0: they are NaN,
  as in HF.
"""
from __future__ import annotations

__all__ = ['hf_mean_iou']

import itertools
import operator
from collections.abc import Mapping

import numpy as np

from ..core.confusion import confusion_matrix
from ..core.inputs import as_labels, check_pair
from ..metrics.compute import compute_metrics

# HF's reduce_labels writes the background as 255 (and 255 - 1 back to 255).
_HF_REDUCED_BACKGROUND = 255
# The value our kernel is told to ignore once the target has been remapped to int64.
_IGNORED = -1


def _check_hf_label_map(label_map) -> tuple[np.ndarray, np.ndarray] | None:
    if label_map is None:
        return None
    if not isinstance(label_map, Mapping):
        raise TypeError(f"label_map must be a mapping {{old: new}}, got {type(label_map).__name__}")
    if not label_map:
        return None
    try:
        pairs = sorted((operator.index(k), operator.index(v)) for k, v in label_map.items())
    except TypeError:
        raise TypeError("label_map keys and values must be ints") from None
    keys = np.array([k for k, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.int64)
    return keys, values


def _hf_target(label: np.ndarray, num_labels: int, ignore_index, label_map, reduce_labels: bool) -> np.ndarray:
    """HF's ground-truth transform as int64 rows, ignored pixels = _IGNORED; never writes ``label``."""
    v = label.astype(np.int64)  # a copy: the caller's array stays as it was
    if label_map is not None:
        keys, values = label_map
        at = np.clip(np.searchsorted(keys, v), 0, len(keys) - 1)
        hit = keys[at] == v
        v = np.where(hit, values[at], v)  # every mapping reads the original labels
    ignored = np.zeros(v.shape, dtype=bool)
    if reduce_labels:
        # HF: 0 -> 255, then every label - 1, then 254 -> 255.
        ignored |= (v == 0) | (v == _HF_REDUCED_BACKGROUND)
        v = v - 1
    if ignore_index is not None:
        ignored |= v == ignore_index
    invalid = ~ignored & ((v < 0) | (v >= num_labels))
    if invalid.any():
        example = int(v[invalid].flat[0])
        raise ValueError(
            f"ground truth has {int(invalid.sum())} label(s) outside [0, {num_labels}) that are not "
            f"ignore_index={ignore_index} (after label_map/reduce_labels), e.g. {example}")
    v[ignored] = _IGNORED
    return v


_REQUIRED = object()


def hf_mean_iou(results=None, gt_seg_maps=None, num_labels: int | None = None, ignore_index=_REQUIRED,
                nan_to_num=None, label_map=None, reduce_labels: bool = False, *, predictions=None,
                references=None) -> dict:
    """HF evaluate's ``mean_iou``: the same arguments and the same dict, from our kernel.

    Called as HF's function (``mean_iou(results, gt_seg_maps, num_labels,
    ignore_index, ...)``) or as its metric (``evaluate.load("mean_iou").compute(
    predictions=..., references=..., num_labels=..., ignore_index=...)``).
    ``results``/``predictions`` and ``gt_seg_maps``/``references`` are
    iterables of label maps (lists, generators, or arrays whose first axis
    indexes images); each pair must have one shape, pairs may differ.  Returns
    {"mean_iou", "mean_accuracy", "overall_accuracy", "per_category_iou",
    "per_category_accuracy"} as NumPy float64 scalars and (num_labels,)
    arrays; ``nan_to_num`` replaces every NaN in them.  The values are those of
    the ``mmseg`` convention (``compute_metrics``).  See the module docstring
    for where this deliberately differs from HF's bugs.
    """
    results = _one_of(results, predictions, "results", "predictions")
    gt_seg_maps = _one_of(gt_seg_maps, references, "gt_seg_maps", "references")
    if num_labels is None:
        raise TypeError("hf_mean_iou() missing required argument: 'num_labels'")
    if ignore_index is _REQUIRED:
        raise TypeError("hf_mean_iou() missing required argument: 'ignore_index' (HF requires it; None ignores nothing)")
    if isinstance(num_labels, bool):
        raise TypeError("num_labels must be an int, got bool")
    num_labels = operator.index(num_labels)
    if ignore_index is not None:
        if isinstance(ignore_index, bool):
            raise TypeError("ignore_index must be an int or None, got bool")
        ignore_index = operator.index(ignore_index)
    if not isinstance(reduce_labels, (bool, np.bool_)):
        raise TypeError(f"reduce_labels must be a bool, got {type(reduce_labels).__name__}")
    mapping = _check_hf_label_map(label_map)
    if nan_to_num is not None and (isinstance(nan_to_num, bool) or not isinstance(nan_to_num, (int, float))):
        raise TypeError(f"nan_to_num must be a number or None, got {type(nan_to_num).__name__}")

    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    missing = object()
    n = 0
    # zip_longest, not zip: HF's zip drops the maps of the longer sequence; iterators have no len().
    preds_it, labels_it = iter(results), iter(gt_seg_maps)
    for pred, label in itertools.zip_longest(preds_it, labels_it, fillvalue=missing):
        if pred is missing or label is missing:
            rest = 1 + sum(1 for _ in (labels_it if pred is missing else preds_it))
            longer, shorter = ("ground-truth maps", "predictions") if pred is missing else ("predictions", "ground-truth maps")
            raise ValueError(f"{n + rest} {longer} but {n} {shorter}")
        n += 1
        p, t = as_labels(pred, "prediction"), as_labels(label, "ground truth")
        check_pair(p, t)
        if mapping is None and not reduce_labels:
            # Nothing to transform: the kernel reads the label map in place.
            matrix += confusion_matrix(p, t, num_labels, ignore_index=ignore_index)
        else:
            rows = _hf_target(t, num_labels, ignore_index, mapping, bool(reduce_labels))
            matrix += confusion_matrix(p, rows, num_labels, ignore_index=_IGNORED)

    m = compute_metrics(matrix, convention="mmseg")  # a label shift warns here (LabelShiftWarning)
    out = {
        "mean_iou": np.float64(m.miou),
        "mean_accuracy": np.float64(m.macc),
        "overall_accuracy": np.float64(m.aacc),
        "per_category_iou": np.array(m.iou, dtype=np.float64),
        "per_category_accuracy": np.array(m.acc, dtype=np.float64),
    }
    if nan_to_num is not None:
        out = {key: np.nan_to_num(value, nan=nan_to_num) for key, value in out.items()}
    return out


def _one_of(positional, keyword, name: str, hf_name: str):
    if positional is not None and keyword is not None:
        raise TypeError(f"give {name} or {hf_name}, not both")
    value = keyword if positional is None else positional
    if value is None:
        raise TypeError(f"hf_mean_iou() missing required argument: {name!r} (or {hf_name!r})")
    return value
