"""Confusion matrices straight from class scores (logits or probabilities).

``ConfusionMatrix.update_logits(logits, target)`` takes the argmax over the
class axis inside the counting pass (csrc/ade20k_metrics/argmax.hpp): the
(N, H, W) label map a ``scores.argmax(1)`` would allocate never exists.

Argmax rules are NumPy's and torch's: ties go to the lowest class index, a NaN
score beats every number (the first NaN wins), and -0.0 ties with +0.0.
float32, float16 and bfloat16 go to the kernel; float64 scores are reduced by
NumPy's argmax in float64 a slab at a time (never rounded to float32, which
could change an argmax), then counted.
"""
from __future__ import annotations

import numpy as np

from . import _core, reference
from .inputs import as_int, as_labels, as_scores
from .threads import kernel_threads
from .tuning import override_options

# Kernel tuning (ArgmaxOptions in argmax.hpp), changed only by tests and
# benchmarks through ``argmax_options``; results never depend on it.
_ARGMAX_OPTIONS: dict[str, int] = {}


def argmax_options(**options: int):
    """Temporarily override tile, min_scores_per_thread, isa, chunk_pixels or private_up_to (tests, benchmarks)."""
    return override_options(_ARGMAX_OPTIONS, {"tile", "min_scores_per_thread", "isa", "chunk_pixels", "private_up_to"},
                            "argmax", options)


def class_axis(scores_ndim: int, target_ndim: int, axis) -> int:
    """The class axis of the scores, checked; None: the axis before the two spatial ones."""
    if scores_ndim != target_ndim + 1:
        raise ValueError(
            f"logits must have one dimension more than target (the class axis), got {scores_ndim}-d logits "
            f"and a {target_ndim}-d target")
    if axis is None:
        return max(0, scores_ndim - 3)
    a = as_int(axis, "axis", "an int or None")
    if not -scores_ndim <= a < scores_ndim:
        raise ValueError(f"axis {a} is out of range for {scores_ndim}-d logits")
    return a % scores_ndim


# float64 scores: the kernel's argmax takes float32/float16 only, and rounding to float32 could change
# an argmax, so NumPy's argmax runs on slabs of about this many scores (8 MiB of float64), each slab's
# labels counted at once: the temporaries are a slab's, never the batch's.
_FLOAT64_SLAB_SCORES = 1 << 20


def slabs(shape: tuple[int, ...], pixels: int):
    """Indices that cut an array of ``shape`` into pieces of at most ``pixels`` elements (whole axes last)."""
    k, size = len(shape), 1
    while k > 0 and size * shape[k - 1] <= pixels:  # the trailing axes that fit whole in one piece
        size *= shape[k - 1]
        k -= 1
    if k == 0:
        yield (Ellipsis,)
        return
    block = max(1, pixels // size)
    for lead in np.ndindex(*shape[:k - 1]):
        for start in range(0, shape[k - 1], block):
            yield lead + (slice(start, start + block),)


def _update_float64(cm, scores: np.ndarray, target: np.ndarray, a: int) -> None:
    by_pixel = np.moveaxis(scores, a, -1)  # a view: the target's axes, then the classes
    partial = np.zeros_like(cm._matrix)
    pixels = max(1, _FLOAT64_SLAB_SCORES // max(cm.num_classes, 1))
    for index in slabs(target.shape, pixels):
        cm._count(np.argmax(by_pixel[index], axis=-1), target[index], partial)
    _core.add_counts(cm._matrix, partial)  # all-or-nothing: added only once every slab counted


def check_scores(scores: np.ndarray, t: np.ndarray, axis, num_classes: int) -> int:
    """The class axis of scores against a target, checked (shapes and class count)."""
    a = class_axis(scores.ndim, t.ndim, axis)
    spatial = scores.shape[:a] + scores.shape[a + 1:]
    if spatial != t.shape:
        raise ValueError(f"logits of shape {scores.shape} (classes on axis {a}) do not match target of "
                         f"shape {t.shape}")
    if scores.shape[a] != num_classes:
        raise ValueError(f"logits have {scores.shape[a]} classes on axis {a}, the matrix has "
                         f"num_classes={num_classes}")
    return a


def update_logits(cm, logits, target, axis=None) -> None:
    """Add argmax(logits, axis) vs target to ``cm``'s matrix, or raise leaving it unchanged."""
    scores, score_type = as_scores(logits, "logits", float64=True)
    t = as_labels(target, "target")
    a = check_scores(scores, t, axis, cm.num_classes)
    if score_type is None:  # float64
        _update_float64(cm, scores, t, a)
        return
    t, ignore_index, lookup = cm._kernel_target(t)  # rows coded in NumPy for a sparse label_map
    lut, lut_lo, reduce_zero_label, label_map = lookup if lookup is not None else (None, 0, False, None)
    bad_target, bad_pred, _ = _core.accumulate_argmax(
        t, scores, score_type, a, cm._matrix, cm.num_classes, ignore_index, lut, lut_lo, reduce_zero_label,
        kernel_threads(cm._threads), **_ARGMAX_OPTIONS)
    if bad_target:
        rows = reference.target_rows(t, cm.num_classes, cm.ignore_index, reduce_zero_label, label_map)
        example = t[rows == reference.INVALID].flat[0]
        kept = "" if cm.ignore_index is None else f" and not ignore_index={cm.ignore_index}"
        raise ValueError(
            f"target has {bad_target} label(s) outside [0, {cm.num_classes}){kept}, e.g. {int(example)}"
            + (" (after reduce_zero_label/label_map)" if lookup is not None else ""))
    if bad_pred:  # cannot happen with as many classes as the matrix; kept as a guard
        raise RuntimeError(f"argmax produced {bad_pred} class indices outside the matrix")

