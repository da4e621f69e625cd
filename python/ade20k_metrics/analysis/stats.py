"""Per-image statistics: per-image IoU, worst images, bootstrap intervals, paired comparisons.

``ImageStats`` keeps, for every image, the per-class true-positive,
false-positive and false-negative counts (3 x K integers, not the K x K
matrix), taken from the same kernel pass that builds the dataset's confusion
matrix.  From them:

* per-image IoU and mIoU.  Averaging per image is a *different metric* from
  the dataset mIoU (which sums every image's counts first); it is offered only
  under names that say so: ``image_miou``, ``mean_image_miou`` and
  ``torchmetrics_segmentation_miou`` (what torchmetrics' segmentation.MeanIoU
  computes).
* the worst-k images by their own mIoU;
* a bootstrap confidence interval of the dataset mIoU: resample images with
  replacement, sum their counts, recompute mIoU (percentile interval);
* a paired comparison of two prediction sets on the same images: the same
  resamples for both, giving an interval for the mIoU difference.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..core import _core
from ..core.confusion import ConfusionMatrix
from ..metrics.compute import Metrics, _nanmean, check_convention, compute_metrics, miou_from_counts, per_class_iou

# Bootstrap resamples are drawn in blocks so the (resamples x images) weight
# matrix stays small however many of each are asked for.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class ConfidenceInterval:
    """A bootstrap percentile interval around a point estimate (fractions, like every metric)."""

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    convention: str

    def __str__(self) -> str:
        return (f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}] "
                f"({100 * self.confidence:g}% bootstrap CI, {self.n_resamples} resamples, {self.convention})")


@dataclass(frozen=True)
class PairedComparison:
    """mIoU of A minus mIoU of B on the same images, with a paired bootstrap interval.

    ``share_not_better`` is the share of resamples in which A's mIoU was not
    above B's: near 0 means A's lead holds up under resampling of images.
    """

    miou_a: float
    miou_b: float
    difference: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    share_not_better: float
    convention: str

    def __str__(self) -> str:
        return (f"mIoU A {self.miou_a:.4f} - B {self.miou_b:.4f} = {self.difference:+.4f} "
                f"[{self.low:+.4f}, {self.high:+.4f}] ({100 * self.confidence:g}% paired bootstrap CI, "
                f"{self.n_resamples} resamples, {self.convention}); A not better in "
                f"{100 * self.share_not_better:.1f}% of resamples")


def _check_resampling(n_resamples, confidence) -> tuple[int, float]:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral):
        raise TypeError(f"n_resamples must be an int, got {type(n_resamples).__name__}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"confidence must be a float in (0, 1), got {type(confidence).__name__}")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return int(n_resamples), float(confidence)


def _resample_counts(n_images: int, n_resamples: int, rng: np.random.Generator):
    """Yield blocks of (resamples x images) multiplicities: how often each image was drawn."""
    per_block = max(1, _BLOCK_ELEMENTS // max(n_images, 1))
    done = 0
    while done < n_resamples:
        b = min(per_block, n_resamples - done)
        drawn = rng.integers(0, n_images, size=(b, n_images))
        offsets = (np.arange(b) * n_images)[:, None]
        yield np.bincount((drawn + offsets).ravel(), minlength=b * n_images).reshape(b, n_images)
        done += b


class ImageStats:
    """Accumulates per-image counts next to the dataset confusion matrix.

    Same settings as ``ConfusionMatrix`` (``reduce_zero_label`` and
    ``label_map`` included).  ``update(pred, target)`` adds ONE image (any
    shape); ``update_batch`` adds a batch whose first axis indexes images.
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255, reduce_zero_label: bool = False,
                 label_map: Mapping[int, int] | None = None, n_threads: int | None = None):
        # One scratch accumulator per instance: reset, count one image, read its matrix.
        self._scratch = ConfusionMatrix(num_classes, ignore_index=ignore_index, reduce_zero_label=reduce_zero_label,
                                        label_map=label_map, n_threads=n_threads)
        self.num_classes = self._scratch.num_classes
        self._matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self._tp: list[np.ndarray] = []
        self._fp: list[np.ndarray] = []
        self._fn: list[np.ndarray] = []
        self.names: list = []

    # -- accumulation -------------------------------------------------------
    def update(self, pred, target, *, name=None) -> ImageStats:
        """Add one image; ``name`` (e.g. its file name) labels it in reports. Returns self."""
        self._scratch.reset()
        self._scratch.update(pred, target)  # raises before anything here changes
        m = self._scratch.matrix
        # The checked add (OverflowError, nothing added) before anything is kept;
        # one image's sums fit int64 (it has fewer than 2**63 pixels).
        _core.add_counts(self._matrix, m)
        tp = np.diag(m).copy()
        self._tp.append(tp)
        self._fp.append(m.sum(axis=0) - tp)
        self._fn.append(m.sum(axis=1) - tp)
        self.names.append(len(self.names) if name is None else name)
        return self

    def update_batch(self, preds, targets, *, names=None) -> ImageStats:
        """Add a batch of images: ``preds[i]``, ``targets[i]`` is image i. Returns self."""
        preds, targets = np.asarray(preds), np.asarray(targets)
        if preds.shape != targets.shape or preds.ndim < 1:
            raise ValueError(f"preds and targets must have the same shape (N, ...), got {preds.shape} "
                             f"and {targets.shape}")
        if names is not None and len(names) != preds.shape[0]:
            raise ValueError(f"names has {len(names)} entries for {preds.shape[0]} images")
        for i in range(preds.shape[0]):
            self.update(preds[i], targets[i], name=None if names is None else names[i])
        return self

    def __len__(self) -> int:
        return len(self._tp)

    @property
    def matrix(self) -> np.ndarray:
        """Dataset confusion matrix: the sum of every image's (read-only view)."""
        view = self._matrix.view()
        view.flags.writeable = False
        return view

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-image (tp, fp, fn), each (N, K) int64."""
        if not self._tp:
            empty = np.zeros((0, self.num_classes), dtype=np.int64)
            return empty, empty.copy(), empty.copy()
        return np.stack(self._tp), np.stack(self._fp), np.stack(self._fn)

    def compute(self, convention: str = "mmseg", beta: float = 1.0) -> Metrics:
        """Dataset-level metrics (the sum over images), as ``ConfusionMatrix.compute``."""
        return compute_metrics(self._matrix, convention=convention, beta=beta)

    # -- per-image averages (a different metric, named as such) -------------
    def image_iou(self) -> np.ndarray:
        """(N, K) IoU of each class in each image; NaN where the class is in neither map."""
        tp, fp, fn = self.counts()
        # The per-image rule: a class in neither map of the image is left out (NaN).
        return per_class_iou(tp, fp, fn, "mmseg")

    def image_miou(self) -> np.ndarray:
        """(N,) each image's own mIoU over the classes in its prediction or ground truth.

        The same per-sample value as torchmetrics.functional.segmentation.mean_iou
        (input_format="index").  NaN for an image with nothing evaluated.
        """
        return np.asarray(_nanmean(self.image_iou(), axis=1), dtype=np.float64).reshape(len(self))

    def mean_image_miou(self) -> float:
        """Mean over images of each image's mIoU: per-image averaging, NOT the dataset mIoU."""
        return float(_nanmean(self.image_miou()))

    def torchmetrics_segmentation_miou(self, per_class: bool = False):
        """What torchmetrics' segmentation.MeanIoU(input_format="index") computes.

        torchmetrics (1.9) sums the IoU of every (image, class) pair whose union
        is non-empty and divides by the number of such pairs, so images with
        many classes weigh more.  ``per_class=True``: for each class, its mean
        IoU over the images where it appears (NaN where it never does;
        torchmetrics writes -1 there).
        """
        iou = self.image_iou()
        if per_class:
            return np.asarray(_nanmean(iou, axis=0), dtype=np.float64).reshape(self.num_classes)
        return float(_nanmean(iou))

    def worst(self, k: int = 10) -> list[tuple[object, float]]:
        """The k images with the lowest own mIoU, as (name, mIoU), worst first (NaN images skipped)."""
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        per_image = self.image_miou()
        valid = np.flatnonzero(~np.isnan(per_image))
        order = valid[np.argsort(per_image[valid], kind="stable")]
        return [(self.names[i], float(per_image[i])) for i in order[: int(k)]]

    # -- uncertainty --------------------------------------------------------
    def bootstrap_miou(self, n_resamples: int = 1000, *, confidence: float = 0.95, convention: str = "mmseg",
                       seed=None) -> ConfidenceInterval:
        """Percentile bootstrap interval of the dataset mIoU, resampling images."""
        n_resamples, confidence = _check_resampling(n_resamples, confidence)
        convention = check_convention(convention)
        if len(self) == 0:
            raise ValueError("no images accumulated")
        tp, fp, fn = (a.astype(np.float64) for a in self.counts())
        rng = np.random.default_rng(seed)
        samples = np.concatenate([
            miou_from_counts(w @ tp, w @ fp, w @ fn, convention) for w in _resample_counts(len(self), n_resamples, rng)
        ])
        low, high = _percentile_interval(samples, confidence)
        return ConfidenceInterval(estimate=float(compute_metrics(self._matrix, convention=convention).miou),
                                  low=low, high=high, confidence=confidence, n_resamples=n_resamples,
                                  convention=convention)

    def compare(self, other: ImageStats, n_resamples: int = 1000, *, confidence: float = 0.95,
                convention: str = "mmseg", seed=None) -> PairedComparison:
        """Paired bootstrap of mIoU(self) - mIoU(other) over the same images.

        Both must hold the same images in the same order: their per-image
        ground-truth pixel counts of every class must agree, else ValueError.
        """
        if not isinstance(other, ImageStats):
            raise TypeError(f"can only compare with an ImageStats, got {type(other).__name__}")
        n_resamples, confidence = _check_resampling(n_resamples, confidence)
        convention = check_convention(convention)
        if len(self) == 0:
            raise ValueError("no images accumulated")
        if len(self) != len(other) or self.num_classes != other.num_classes:
            raise ValueError(f"not the same images: {len(self)} images x {self.num_classes} classes vs "
                             f"{len(other)} x {other.num_classes}")
        tp_a, fp_a, fn_a = (x.astype(np.float64) for x in self.counts())
        tp_b, fp_b, fn_b = (x.astype(np.float64) for x in other.counts())
        # Ground truth per image and class is tp + fn; it does not depend on the prediction.
        if not np.array_equal(tp_a + fn_a, tp_b + fn_b):
            bad = int(np.flatnonzero(np.any(tp_a + fn_a != tp_b + fn_b, axis=1))[0])
            raise ValueError(f"not the same images: the ground truth of image {self.names[bad]!r} differs")
        rng = np.random.default_rng(seed)
        diffs = []
        for w in _resample_counts(len(self), n_resamples, rng):
            diffs.append(miou_from_counts(w @ tp_a, w @ fp_a, w @ fn_a, convention)
                         - miou_from_counts(w @ tp_b, w @ fp_b, w @ fn_b, convention))
        diffs = np.concatenate(diffs)
        low, high = _percentile_interval(diffs, confidence)
        miou_a = float(compute_metrics(self._matrix, convention=convention).miou)
        miou_b = float(compute_metrics(other._matrix, convention=convention).miou)
        finite = diffs[~np.isnan(diffs)]
        return PairedComparison(miou_a=miou_a, miou_b=miou_b, difference=miou_a - miou_b, low=low, high=high,
                                confidence=confidence, n_resamples=n_resamples,
                                share_not_better=float(np.mean(finite <= 0)) if finite.size else float("nan"),
                                convention=convention)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
