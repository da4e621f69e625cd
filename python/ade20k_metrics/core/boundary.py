"""Boundary metrics' counting: the kernel calls, their checks, and the accumulator state.

Boundary IoU (``boundary=ratio``) counts, in the same pass as the region
confusion matrix, a (K+1, K+1) matrix of inner-band labels (K = "not in the
band"; csrc/ade20k_metrics/boundary.hpp).  The BF score (``boundary_f1=ratio``)
keeps, per class, the sum of the per-image F1 scores and the number of images
where it is defined.  The rules are DESIGN.md's ("Boundary metrics");
core/boundary_reference.py spells them out in NumPy.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _core
from .inputs import as_labels, check_ignore_index, check_num_classes, check_pair
from .kernel import _raise_invalid
from .threads import kernel_threads, resolve_threads
from .tuning import override_options

# Kernel tuning (BoundaryOptions in boundary.hpp), changed only by tests and
# benchmarks through ``boundary_options``; results never depend on it.
_BOUNDARY_OPTIONS: dict[str, int] = {}


def boundary_options(**options: int):
    """Temporarily override min_pixels_per_thread or isa of the boundary kernels (tests, benchmarks)."""
    return override_options(_BOUNDARY_OPTIONS, {"min_pixels_per_thread", "isa"}, "boundary", options)


def check_ratio(value, name: str) -> float | None:
    """A boundary ratio (``boundary=``, ``boundary_f1=``, ``dilation_ratio=``): None or a positive finite real."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number (a fraction of the image diagonal) or None, "
                        f"got {type(value).__name__}")
    ratio = float(value)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"{name} must be positive and finite (a fraction of the image diagonal), got {value!r}")
    return ratio


def dilation_pixels(height: int, width: int, ratio: float) -> int:
    """d = max(1, round(ratio * sqrt(h*h + w*w))): boundary-iou-api's rule (Python's round, half to even)."""
    return max(1, int(round(ratio * math.sqrt(float(height) * height + float(width) * width))))


def f1_theta(height: int, width: int, ratio: float) -> float:
    """The BF threshold in pixels: ratio times the image diagonal (float64, not rounded)."""
    return ratio * math.sqrt(float(height) * height + float(width) * width)


def check_maps(pred: np.ndarray, target: np.ndarray) -> None:
    check_pair(pred, target)
    if pred.ndim < 2:
        raise ValueError(f"boundary metrics need label maps (H, W) or batches (N, H, W), got shape {pred.shape}")


def count_boundary(pred: np.ndarray, target: np.ndarray, out: np.ndarray, boundary_out: np.ndarray,
                   num_classes: int, ignore_index: int | None, n_threads: int, lookup: tuple | None,
                   ratio: float) -> None:
    """Add the region counts to ``out`` and the band counts to ``boundary_out``, or raise leaving both unchanged."""
    check_maps(pred, target)
    h, w = target.shape[-2:]
    lut, lut_lo, reduce_zero_label, label_map = lookup if lookup is not None else (None, 0, False, None)
    # Raw target bits decide the bands unless a label_map may merge labels (then the kernel codes rows first).
    raw_equal = not label_map
    bad_target, bad_pred, _ = _core.accumulate_boundary(
        target, pred, out, boundary_out, num_classes, ignore_index, lut, lut_lo, reduce_zero_label, raw_equal,
        dilation_pixels(h, w, ratio), kernel_threads(n_threads), **_BOUNDARY_OPTIONS)
    if bad_target or bad_pred:
        _raise_invalid(pred, target, num_classes, ignore_index, bad_target, bad_pred, lookup)


def count_bf(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None, n_threads: int,
             lookup: tuple | None, ratio: float) -> tuple[np.ndarray, np.ndarray, float, int]:
    """BF scores of one map or a batch: (f1_sum (K,), f1_count (K,), sum of per-image means, images scored).

    Labels that are no class are skipped: count the region pairs too (count_boundary) to have them reported.
    """
    check_maps(pred, target)
    h, w = target.shape[-2:]
    lut, lut_lo, reduce_zero_label, _ = lookup if lookup is not None else (None, 0, False, None)
    f1_sum, f1_count, image_sum, images = _core.bf_scores(
        target, pred, num_classes, ignore_index, lut, lut_lo, reduce_zero_label, f1_theta(h, w, ratio),
        kernel_threads(n_threads))
    return f1_sum, f1_count, float(image_sum), int(images)


def band_iou(boundary_matrix: np.ndarray) -> np.ndarray:
    """(K,) tp / union of a (K+1, K+1) boundary matrix; NaN where the union is 0."""
    b = np.asarray(boundary_matrix)
    k = b.shape[0] - 1
    tp = np.diag(b)[:k].astype(np.float64)
    union = b[:k, :].sum(axis=1) + b[:, :k].sum(axis=0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def boundary_iou(pred, target, num_classes: int, *, dilation_ratio: float = 0.02, ignore_index: int | None = 255,
                 n_threads: int | None = None) -> np.ndarray:
    """Per-class Boundary IoU of one map (H, W), or of a batch (N, H, W) pooled over its images.

    For class c: |G_c^d & P_c^d| / |G_c^d | P_c^d|, where X_c^d is the inner
    band of class c (its pixels within chessboard distance d of another label
    or of the image's outside), d = max(1, round(dilation_ratio * diagonal)):
    exactly boundary-iou-api's ``boundary_iou`` on gt == c and pred == c.
    Pixels whose target is ``ignore_index`` are not counted (they still bound
    the ground-truth bands).  Returns (num_classes,) float64, NaN where the union is 0.
    """
    k = check_num_classes(num_classes)
    ignore = check_ignore_index(ignore_index)
    ratio = check_ratio(dilation_ratio, "dilation_ratio")
    if ratio is None:
        raise TypeError("dilation_ratio must be a positive real number, got None")
    threads = resolve_threads(n_threads)
    p = as_labels(pred, "pred")
    t = as_labels(target, "target")
    out = np.zeros((k, k), dtype=np.int64)
    band = np.zeros((k + 1, k + 1), dtype=np.int64)
    count_boundary(p, t, out, band, k, ignore, threads, None, ratio)
    return band_iou(band)
