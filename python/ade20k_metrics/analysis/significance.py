"""Resampling over images: bootstrap intervals and the paired randomization test.

Every statistic here is the *dataset* mIoU (or per-class IoU), recomputed
from summed per-image counts for each resample, never an average of per-image
values: the interval and the test are about the number a paper reports.

Bootstrap (percentile).  Each resample draws N images with replacement; the
counts of the drawn images are summed (an image drawn twice counts twice) and
the metric recomputed.  The interval is the alpha/2 and 1 - alpha/2
quantiles of the resampled values.  Paired: the same draws for both
prediction sets, so the variation that comes from *which images* were
evaluated cancels in the difference.

Paired p-value: the approximate randomization (swap) test, two-sided.
Under the null hypothesis that the two prediction sets are exchangeable on
every image, swapping an image's two predictions does not change the
distribution of the difference of dataset mIoUs.  Each permutation swaps
each image with probability 1/2, sums the counts and recomputes both dataset
mIoUs; p = (1 + #{|d*| >= |d|}) / (1 + R) over R permutations, which is never
0 and is a valid p-value at any R (Phipson & Smyth 2010).  This is Noreen's
(1989) test as used for corpus-level, non-additive metrics (Riezler &
Maxwell 2005; the review of Dror et al. 2018).  Why this test: it is exact
under its null given the images, needs no normal approximation and tests the
dataset mIoU itself.  A bootstrap p-value has to shift the resampled
differences to the null (Koehn 2004; Berg-Kirkpatrick et al. 2012), which
is known to be anticonservative on small test sets; a t-test or Wilcoxon
test on per-image mIoUs would test per-image averaging, a different metric.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..metrics.compute import miou_from_counts, per_class_iou

# Resamples are drawn in blocks so the (resamples x images) weight matrix stays
# small however many of each are asked for (2^22 float64 = 32 MiB).
BLOCK_ELEMENTS = 1 << 22
# Two differences of dataset mIoU closer than this are the same for the test
# (they are computed from the same integer counts, so equal ones are equal exactly).
TIE_TOLERANCE = 1e-12


def check_resampling(n, confidence=None, name: str = "n_resamples") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    if confidence is not None:
        check_confidence(confidence)
    return int(n)


def check_confidence(confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"confidence must be a float in (0, 1), got {type(confidence).__name__}")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def bootstrap_weights(n_images: int, n_resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Blocks of (resamples x images) multiplicities: how often each image was drawn."""
    per_block = max(1, BLOCK_ELEMENTS // max(n_images, 1))
    done = 0
    while done < n_resamples:
        b = min(per_block, n_resamples - done)
        drawn = rng.integers(0, n_images, size=(b, n_images))
        offsets = (np.arange(b) * n_images)[:, None]
        yield np.bincount((drawn + offsets).ravel(), minlength=b * n_images).reshape(b, n_images).astype(np.float64)
        done += b


def swap_masks(n_images: int, n_permutations: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Blocks of (permutations x images) 0/1 floats: 1 where an image's two predictions are swapped."""
    per_block = max(1, BLOCK_ELEMENTS // max(n_images, 1))
    done = 0
    while done < n_permutations:
        b = min(per_block, n_permutations - done)
        yield rng.integers(0, 2, size=(b, n_images)).astype(np.float64)
        done += b


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) quantiles of the finite samples; NaN if there are none."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def column_intervals(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """``percentile_interval`` of every column of (R, K) samples."""
    k = samples.shape[1]
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    for c in range(k):
        low[c], high[c] = percentile_interval(samples[:, c], confidence)
    return low, high


Counts = tuple[np.ndarray, np.ndarray, np.ndarray]  # per-image (tp, fp, fn), each (N, K) float64


def left_out_class(convention: str, ignore_index: int | None, num_classes: int) -> int | None:
    """The class a convention leaves out of mIoU whatever its counts: torchmetrics' ignore_index class."""
    if convention == "torchmetrics" and ignore_index is not None and 0 <= ignore_index < num_classes:
        return int(ignore_index)
    return None


def class_iou(tp, fp, fn, convention: str, left_out: int | None) -> np.ndarray:
    """Per-class IoU of (..., K) counts, NaN where the convention leaves a class out of mIoU."""
    iou = per_class_iou(tp, fp, fn, convention)
    if left_out is not None:
        iou[..., left_out] = np.nan
    return iou


def miou(tp, fp, fn, convention: str, left_out: int | None):
    """Dataset mIoU of (..., K) counts, as compute_metrics gives it."""
    if left_out is None:
        return miou_from_counts(tp, fp, fn, convention)
    return _row_nanmean(class_iou(tp, fp, fn, convention, left_out))


def bootstrap_miou_samples(counts: Counts, convention: str, n_resamples: int, rng,
                           left_out: int | None = None) -> np.ndarray:
    """(R,) dataset mIoU of each bootstrap resample."""
    tp, fp, fn = counts
    return np.concatenate([miou(w @ tp, w @ fp, w @ fn, convention, left_out)
                           for w in bootstrap_weights(tp.shape[0], n_resamples, rng)])


@dataclass(frozen=True)
class PairedResamples:
    """What resampling says about mIoU(B) - mIoU(A) on the same images."""

    delta: float                 # observed dataset mIoU(B) - mIoU(A)
    delta_samples: np.ndarray    # (R,) paired bootstrap of the difference
    class_delta: np.ndarray      # (K,) observed IoU(B) - IoU(A) per class
    class_samples: np.ndarray    # (R, K) paired bootstrap of the per-class differences
    p_value: float               # two-sided paired randomization test of delta
    n_permutations: int


def paired_resampling(a: Counts, b: Counts, convention: str, n_resamples: int, n_permutations: int,
                      rng: np.random.Generator, left_out: int | None = None) -> PairedResamples:
    """Paired bootstrap of B - A (dataset mIoU and per-class IoU) and the randomization test's p-value.

    The bootstrap draws come first from ``rng``, then the swaps, so a seeded
    interval does not depend on how many permutations were asked for.
    """
    total_a = [x.sum(axis=0) for x in a]
    total_b = [x.sum(axis=0) for x in b]
    iou_a = class_iou(*total_a, convention, left_out)
    iou_b = class_iou(*total_b, convention, left_out)
    delta = float(_row_nanmean(iou_b) - _row_nanmean(iou_a))

    deltas, classes = [], []
    for w in bootstrap_weights(a[0].shape[0], n_resamples, rng):
        ia = class_iou(w @ a[0], w @ a[1], w @ a[2], convention, left_out)
        ib = class_iou(w @ b[0], w @ b[1], w @ b[2], convention, left_out)
        deltas.append(_row_nanmean(ib) - _row_nanmean(ia))
        classes.append(ib - ia)

    # Swapping image i moves (b_i - a_i) from B's totals to A's.
    moved = [xb - xa for xa, xb in zip(a, b)]
    extreme = 0
    bound = abs(delta) - TIE_TOLERANCE
    for s in swap_masks(a[0].shape[0], n_permutations, rng):
        shift = [s @ d for d in moved]
        swapped_a = [t + m for t, m in zip(total_a, shift)]
        swapped_b = [t - m for t, m in zip(total_b, shift)]
        d = miou(*swapped_b, convention, left_out) - miou(*swapped_a, convention, left_out)
        extreme += int(np.count_nonzero(np.abs(d[np.isfinite(d)]) >= bound))
    p_value = float("nan") if not np.isfinite(delta) else (1 + extreme) / (1 + n_permutations)
    return PairedResamples(delta=delta, delta_samples=np.concatenate(deltas), class_delta=iou_b - iou_a,
                           class_samples=np.concatenate(classes), p_value=p_value, n_permutations=n_permutations)


def _row_nanmean(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=-1)
