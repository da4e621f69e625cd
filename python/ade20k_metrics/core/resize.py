"""Confusion matrices from low-resolution logits: upsampling, argmax and counting fused.

``ConfusionMatrix.update_logits(logits, target, resize="bilinear")`` takes
(N, C, h, w) scores (or (C, h, w) with an (H, W) target) and counts, for every
target pixel, the argmax of the scores bilinearly upsampled to (H, W) as
``torch.nn.functional.interpolate(logits.float(), size=(H, W),
mode="bilinear", align_corners=False)`` samples them.  The kernel
(csrc/ade20k_metrics/resize_argmax.hpp) blends one output row at a time into
a per-thread buffer of C x w floats: the (N, C, H, W) float tensor that
interpolate allocates (150 x 512 x 683 x 4 bytes = 210 MB per ADE20K image)
never exists.

Exactness.  The interpolated scores are computed in float32 with torch's
source positions and weights, but blended in another order (rows first), so
they may differ from torch's in the last bits; the argmax therefore equals
``interpolate(...).argmax(1)`` except where the two best interpolated scores
tie within float32 rounding (relative gaps below about 1e-6; the tests count
and check every such pixel).  float16 and bfloat16 scores are widened to
float32 before blending, as ``logits.float()`` would: torch interpolating in
half precision rounds its output to half, which ties classes that differ here.
Ties go to the lowest class, a NaN beats every number (numpy/torch argmax).
"""
from __future__ import annotations

from . import _core, reference
from .inputs import as_labels, as_scores
from .threads import kernel_threads

RESIZE_MODES = ("bilinear",)


def update_resized_logits(cm, logits, target, resize: str, axis=None) -> None:
    """Add argmax(upsample(logits)) vs target to ``cm``'s matrix, or raise leaving it unchanged."""
    if not isinstance(resize, str):
        raise TypeError(f"resize must be a str or None, got {type(resize).__name__}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize {resize!r}; choose from {RESIZE_MODES} or None")
    scores, score_type = as_scores(logits, "logits")
    t = as_labels(target, "target")
    if scores.ndim == 3 and t.ndim == 2:
        scores, t = scores[None], t[None]
    if scores.ndim != 4 or t.ndim != 3:
        raise ValueError(f"resize needs (N, C, h, w) logits and an (N, H, W) target (or (C, h, w) and (H, W)), "
                         f"got {scores.ndim}-d logits and a {t.ndim}-d target")
    if axis is not None and axis not in (1, -3):
        raise ValueError(f"with resize, the class axis is 1 (N, C, h, w), got axis={axis}")
    if scores.shape[0] != t.shape[0]:
        raise ValueError(f"logits hold {scores.shape[0]} images, target {t.shape[0]}")
    if scores.shape[1] != cm.num_classes:
        raise ValueError(f"logits have {scores.shape[1]} classes on axis 1, the matrix has "
                         f"num_classes={cm.num_classes}")
    if t.size and (scores.shape[2] == 0 or scores.shape[3] == 0):
        raise ValueError(f"logits of shape {scores.shape} have no pixels to upsample to {t.shape[1:]}")
    lookup = cm._lookup(t.dtype)
    lut, lut_lo, reduce_zero_label, label_map = lookup if lookup is not None else (None, 0, False, None)
    bad_target, bad_pred, _ = _core.accumulate_resized_argmax(
        t, scores, score_type, cm._matrix, cm.num_classes, cm.ignore_index, lut, lut_lo, reduce_zero_label,
        kernel_threads(cm._threads))
    if bad_target:
        rows = reference.target_rows(t, cm.num_classes, cm.ignore_index, reduce_zero_label, label_map)
        example = t[rows == reference.INVALID].flat[0]
        kept = "" if cm.ignore_index is None else f" and not ignore_index={cm.ignore_index}"
        raise ValueError(
            f"target has {bad_target} label(s) outside [0, {cm.num_classes}){kept}, e.g. {int(example)}"
            + (" (after reduce_zero_label/label_map)" if lookup is not None else ""))
    if bad_pred:  # cannot happen with as many classes as the matrix; kept as a guard
        raise RuntimeError(f"argmax produced {bad_pred} class indices outside the matrix")
