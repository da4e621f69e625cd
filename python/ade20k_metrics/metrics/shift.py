"""Noticing labels that are off by one class, from the confusion matrix alone.

The field's most common evaluation mistake: predictions written 0..K-1 against
ground truth 1..K (or the reverse: ADE20K's official 1..150 PNGs against a
reduced 0..149 ground truth, detectron2's ``annotations_detectron2`` against
the official files).  Every pixel then lands one cell beside the diagonal, and
the run reports an mIoU near 0 without a word.  The matrix shows it plainly:
the mass sits on a neighbouring diagonal, not on the main one.

The test is deliberately conservative, so that it never fires on a real run
(a bad model still puts more mass on the main diagonal than on one
neighbouring diagonal, and one confused pair of classes is not a shift):
the neighbouring diagonal holds at least half of all pixels, at least four
times the main diagonal, spread over at least three classes each of which has
more pixels there than on the main diagonal, and at least 1,000 pixels.
"""
from __future__ import annotations

import warnings

import numpy as np


class LabelShiftWarning(UserWarning):
    """The predictions look shifted by one class against the ground truth."""


MIN_CLASSES = 3
# A handful of pixels says nothing about a label format; an evaluation has thousands.
MIN_PIXELS = 1000


def label_shift(matrix) -> int:
    """+1 if predictions look one class higher than the ground truth, -1 if one lower, else 0."""
    m = np.asarray(matrix)
    k = m.shape[0] if m.ndim == 2 else 0
    if k < MIN_CLASSES + 1 or m.shape != (k, k):
        return 0
    counts = m.astype(np.float64)
    total = counts.sum()
    if total <= 0:
        return 0
    main = np.diag(counts)
    for shift in (1, -1):
        beside = np.diag(counts, shift)
        # class i (ground truth) predicted as i + shift, against class i predicted right
        own = main[:-1] if shift == 1 else main[1:]
        mass = beside.sum()
        if (mass >= MIN_PIXELS and mass >= 0.5 * total and mass >= 4 * main.sum()
                and int(np.count_nonzero(beside > own)) >= MIN_CLASSES):
            return shift
    return 0


def shift_message(shift: int, matrix, hint: str | None = None) -> str:
    """One line saying what the matrix shows and what is the likely fix."""
    counts = np.asarray(matrix, dtype=np.float64)
    total = counts.sum()
    share = np.diag(counts, shift).sum() / total
    right = np.trace(counts) / total
    direction = "one class higher" if shift > 0 else "one class lower"
    cell = "gt + 1" if shift > 0 else "gt - 1"
    text = (f"the predictions look {direction} than the ground truth: {share:.0%} of the pixels have "
            f"pred = {cell}, {right:.0%} pred = gt")
    if hint is None:
        hint = ("predictions in 1..K (e.g. ADE20K's official 1..150 format) against ground truth reduced to "
                "0..K-1: subtract 1 from the predictions" if shift > 0 else
                "predictions in 0..K-1 against ground truth in 1..K: reduce the ground truth "
                "(reduce_zero_label=True) or add 1 to the predictions")
    return f"{text}; likely {hint}"


def warn_if_shifted(matrix, hint: str | None = None, stacklevel: int = 3) -> int:
    """Warn (LabelShiftWarning) when ``label_shift`` finds a shift; returns the shift."""
    shift = label_shift(matrix)
    if shift:
        warnings.warn(shift_message(shift, matrix, hint), LabelShiftWarning, stacklevel=stacklevel)
    return shift


def shift_hint(shift: int, reduce_zero_label: bool) -> str | None:
    """The likely fix, for an accumulator's settings (None: the generic one)."""
    if shift > 0 and reduce_zero_label:
        return ("predictions in ADE20K's official 1..K format while reduce_zero_label=True reduced the ground "
                "truth to 0..K-1: pass pred - 1 (train ids)")
    if shift < 0 and not reduce_zero_label:
        return ("ground truth in the 1..K annotation format (0 = other) against predictions in 0..K-1: "
                "pass reduce_zero_label=True")
    return None
