"""mmseg 0.30's functional metrics (mmseg/core/evaluation/metrics.py), computed with our kernel.

Same names, signatures, keys and values as mmseg 0.30:
``intersect_and_union``, ``total_intersect_and_union``, ``eval_metrics``,
``mean_iou``, ``mean_dice``, ``mean_fscore``, ``pre_eval_to_metrics`` and
``total_area_to_metrics``.  Results are NumPy (mmseg returns torch tensors
from the first two); inputs may be NumPy arrays, CPU torch tensors, a
prediction ``.npy`` file name or a label image file name, as in mmseg.

    ret = eval_metrics(results, gt_seg_maps, num_classes=150, ignore_index=255,
                       metrics=["mIoU", "mDice", "mFscore"], reduce_zero_label=True)
    ret["aAcc"], ret["IoU"], ret["Acc"], ret["Dice"], ret["Fscore"], ret["Precision"], ret["Recall"]

Keys come in mmseg's order: "aAcc", then per metric asked for "IoU", "Acc"
(mIoU), "Dice", "Acc" (mDice; one "Acc" key in all), "Fscore",
"Precision", "Recall" (mFscore).  Without ``nan_to_num`` "aAcc" is a 0-d
array, with it a NumPy scalar (what ``np.nan_to_num`` returns), as in mmseg.
0/0 is NaN, quietly.

Where this deliberately differs from mmseg 0.30:

* The caller's arrays are never modified.  mmseg wraps them with
  ``torch.from_numpy`` and writes ``label_map`` and ``reduce_zero_label``
  into them, so a second evaluation of the same arrays sees shifted labels.
* ``label_map`` is applied all at once to the original labels, in int64:
  mmseg applies one pair after another ({1: 2, 2: 3} sends 1 on to 3, a swap
  {1: 2, 2: 1} sends both to 1) in the label's own dtype.
* With ``reduce_zero_label`` the labels 0 and 255 are ignored whatever
  ``ignore_index`` is; mmseg writes both as 255 and then ignores only
  ``ignore_index`` (with another one it counts their predictions as false
  positives).
* A label outside [0, num_classes) that is not ignored (ground truth, or a
  prediction at an evaluated pixel) is a ValueError; mmseg's ``torch.histc``
  drops it silently from that histogram only, which miscounts the union.
* ``results`` and ``gt_seg_maps`` of different lengths are a ValueError
  (mmseg's ``zip`` drops the extra maps).
* Counts are exact int64 and the areas float64 everywhere: mmseg's per-image
  areas are float32 (exact only below 2**24 pixels a class), so its
  ``pre_eval_to_metrics`` returns float32 ratios and its Fscore is always
  float32.  Values agree to float32 rounding.
"""
from __future__ import annotations

__all__ = [
    "eval_metrics",
    "f_score",
    "intersect_and_union",
    "mean_dice",
    "mean_fscore",
    "mean_iou",
    "pre_eval_to_metrics",
    "total_area_to_metrics",
    "total_intersect_and_union",
]

import operator
import os
from collections.abc import Iterable, Mapping

import numpy as np

from ..core.confusion import confusion_matrix
from ..core.inputs import as_labels, check_pair, is_torch_tensor, tensor_as_numpy
from ..io.label_files import read_label_map
from .hf import _check_hf_label_map, _hf_target

_ALLOWED_METRICS = ("mIoU", "mDice", "mFscore")
_IGNORED = -1  # the kernel's ignore value once the target has been remapped to int64
_END = object()


def f_score(precision, recall, beta=1):
    """mmseg's F-beta of precision and recall (elementwise; NaN where both are 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 + beta ** 2) * (precision * recall) / ((beta ** 2 * precision) + recall)


def _check_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def _prediction(pred) -> np.ndarray:
    if isinstance(pred, (str, os.PathLike)):
        pred = np.load(os.fspath(pred), allow_pickle=False)  # mmseg: np.load of a saved prediction
    return as_labels(pred, "pred_label")


def _label(label) -> np.ndarray:
    if isinstance(label, (str, os.PathLike)):
        label = read_label_map(label)  # mmseg: the image's stored values ('unchanged')
    return as_labels(label, "label")


def _areas(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    intersect = np.diag(matrix).astype(np.float64)
    pred_area = matrix.sum(axis=0).astype(np.float64)
    label_area = matrix.sum(axis=1).astype(np.float64)
    return intersect, pred_area + label_area - intersect, pred_area, label_area


def _matrix(pred_label, label, num_classes: int, ignore_index, label_map, reduce_zero_label) -> np.ndarray:
    p, t = _prediction(pred_label), _label(label)
    check_pair(p, t)
    mapping = _check_hf_label_map(label_map)
    if mapping is None and not reduce_zero_label:
        return confusion_matrix(p, t, num_classes, ignore_index=ignore_index)
    # The 0.30 order: label_map first, then reduce_zero_label (0 -> ignored, k -> k - 1).
    rows = _hf_target(t, num_classes, ignore_index, mapping, bool(reduce_zero_label))
    return confusion_matrix(p, rows, num_classes, ignore_index=_IGNORED)


def _check_settings(num_classes, ignore_index, reduce_zero_label):
    num_classes = _check_int(num_classes, "num_classes")
    if ignore_index is not None:
        ignore_index = _check_int(ignore_index, "ignore_index")
    if not isinstance(reduce_zero_label, (bool, np.bool_)):
        raise TypeError(f"reduce_zero_label must be a bool, got {type(reduce_zero_label).__name__}")
    return num_classes, ignore_index, bool(reduce_zero_label)


def intersect_and_union(pred_label, label, num_classes, ignore_index, label_map=None, reduce_zero_label=False):
    """Per-class (intersection, union, prediction area, label area) of one map, float64 (num_classes,).

    ``label_map`` and ``reduce_zero_label`` transform ``label`` as mmseg 0.30
    does (mapping first), without writing into it.
    """
    num_classes, ignore_index, reduce_zero_label = _check_settings(num_classes, ignore_index, reduce_zero_label)
    return _areas(_matrix(pred_label, label, num_classes, ignore_index, label_map, reduce_zero_label))


def _pairs(results, gt_seg_maps):
    """zip(results, gt_seg_maps) that refuses sequences of different lengths (either may be an iterable)."""
    preds, labels = iter(results), iter(gt_seg_maps)
    n = 0
    while True:
        p, t = next(preds, _END), next(labels, _END)
        if p is _END and t is _END:
            return
        if p is _END or t is _END:
            longer = "gt_seg_maps" if p is _END else "results"
            raise ValueError(f"results and gt_seg_maps differ in length: {longer} has more than {n} maps")
        n += 1
        yield p, t


def total_intersect_and_union(results, gt_seg_maps, num_classes, ignore_index, label_map=None,
                              reduce_zero_label=False):
    """The four areas summed over every (prediction, ground truth) pair, float64 (num_classes,)."""
    num_classes, ignore_index, reduce_zero_label = _check_settings(num_classes, ignore_index, reduce_zero_label)
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for pred, label in _pairs(results, gt_seg_maps):
        total += _matrix(pred, label, num_classes, ignore_index, label_map, reduce_zero_label)
    return _areas(total)


def _metric_list(metrics) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    if not set(metrics).issubset(_ALLOWED_METRICS):
        raise KeyError(f"metrics {metrics} is not supported")
    return metrics


def _as_area(x, name: str) -> np.ndarray:
    if is_torch_tensor(x):
        x = tensor_as_numpy(x, name)
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


def total_area_to_metrics(total_area_intersect, total_area_union, total_area_pred_label, total_area_label,
                          metrics=("mIoU",), nan_to_num=None, beta=1):
    """mmseg's metrics from the four summed areas: {"aAcc": ..., "IoU": (K,), ...} (see the module docstring)."""
    metrics = _metric_list(metrics)
    intersect = _as_area(total_area_intersect, "total_area_intersect")
    union = _as_area(total_area_union, "total_area_union")
    pred_area = _as_area(total_area_pred_label, "total_area_pred_label")
    label_area = _as_area(total_area_label, "total_area_label")
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = {"aAcc": np.asarray(intersect.sum() / label_area.sum())}
        for metric in metrics:
            if metric == "mIoU":
                ret["IoU"] = intersect / union
                ret["Acc"] = intersect / label_area
            elif metric == "mDice":
                ret["Dice"] = 2 * intersect / (pred_area + label_area)
                ret["Acc"] = intersect / label_area
            else:
                precision = intersect / pred_area
                recall = intersect / label_area
                ret["Fscore"] = f_score(precision, recall, beta)
                ret["Precision"] = precision
                ret["Recall"] = recall
    if nan_to_num is not None:
        ret = {key: np.nan_to_num(value, nan=nan_to_num) for key, value in ret.items()}
    return ret


def eval_metrics(results, gt_seg_maps, num_classes, ignore_index, metrics=("mIoU",), nan_to_num=None,
                 label_map=None, reduce_zero_label=False, beta=1):
    """mmseg 0.30's ``eval_metrics``: the dataset-level metrics of lists (or N-d arrays) of maps."""
    metrics = _metric_list(metrics)  # before counting, as a KeyError would come after it in mmseg
    areas = total_intersect_and_union(results, gt_seg_maps, num_classes, ignore_index, label_map,
                                      reduce_zero_label)
    return total_area_to_metrics(*areas, metrics, nan_to_num, beta)


def mean_iou(results, gt_seg_maps, num_classes, ignore_index, nan_to_num=None, label_map=None,
             reduce_zero_label=False):
    """{"aAcc", "IoU", "Acc"}: ``eval_metrics`` with metrics=["mIoU"]."""
    return eval_metrics(results, gt_seg_maps, num_classes, ignore_index, ["mIoU"], nan_to_num, label_map,
                        reduce_zero_label)


def mean_dice(results, gt_seg_maps, num_classes, ignore_index, nan_to_num=None, label_map=None,
              reduce_zero_label=False):
    """{"aAcc", "Dice", "Acc"}: ``eval_metrics`` with metrics=["mDice"]."""
    return eval_metrics(results, gt_seg_maps, num_classes, ignore_index, ["mDice"], nan_to_num, label_map,
                        reduce_zero_label)


def mean_fscore(results, gt_seg_maps, num_classes, ignore_index, nan_to_num=None, label_map=None,
                reduce_zero_label=False, beta=1):
    """{"aAcc", "Fscore", "Precision", "Recall"}: ``eval_metrics`` with metrics=["mFscore"]."""
    return eval_metrics(results, gt_seg_maps, num_classes, ignore_index, ["mFscore"], nan_to_num, label_map,
                        reduce_zero_label, beta)


def pre_eval_to_metrics(pre_eval_results, metrics=("mIoU",), nan_to_num=None, beta=1):
    """Metrics from per-image (intersect, union, pred_area, label_area) tuples (ours, or mmseg's tensors)."""
    metrics = _metric_list(metrics)
    if not isinstance(pre_eval_results, Iterable):
        raise TypeError(f"pre_eval_results must be a list of 4-tuples, got {type(pre_eval_results).__name__}")
    totals = None
    for i, entry in enumerate(pre_eval_results):
        if isinstance(entry, (str, bytes, Mapping)) or len(entry) != 4:
            raise ValueError(f"pre_eval_results[{i}] must be (intersect, union, pred_area, label_area)")
        areas = [_as_area(a, f"pre_eval_results[{i}]") for a in entry]
        if totals is None:
            totals = areas
        else:
            if any(a.shape != b.shape for a, b in zip(areas, totals)):
                raise ValueError(f"pre_eval_results[{i}] has areas of another shape than the first entry")
            totals = [a + b for a, b in zip(totals, areas)]
    if totals is None:
        raise ValueError("pre_eval_results is empty")  # mmseg: an AssertionError
    return total_area_to_metrics(*totals, metrics, nan_to_num, beta)
