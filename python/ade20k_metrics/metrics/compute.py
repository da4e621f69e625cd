"""Metrics from a confusion matrix, under each established convention.

Every convention starts from the same dataset-level counts: the confusion
matrix summed over all images (rows = ground truth, columns = prediction).
For class k: tp = M[k, k], fp = column sum - tp, fn = row sum - tp, and

    IoU = tp / (tp + fp + fn)      Acc = recall = tp / (tp + fn)
    precision = tp / (tp + fp)     Dice = 2 tp / (2 tp + fp + fn)
    F-beta = (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)

The tools disagree only on classes where a ratio is 0/0 or that they leave out
of the mean.  A class is *absent* if nobody saw it (no ground truth, no
prediction) and *predicted-only* if the model predicted it but the ground truth
never contains it.

``mmseg`` (default; also HF evaluate ``mean_iou`` and torchmetrics'
    MulticlassJaccardIndex(average="macro") for IoU).  Every 0/0 is NaN and
    means are NaN-means.  An absent class is left out; a predicted-only class
    has IoU 0 (counted) and Acc NaN (left out).  mmseg quirk reproduced: its
    F-score is computed from precision and recall, so a class with tp = 0 has
    F-score NaN (0/0) and drops out of mFscore, while its Dice is 0.
``torchmetrics`` (MulticlassJaccardIndex / MulticlassAccuracy / ... with
    average="macro").  Classes with tp + fp + fn = 0 are left out; in every
    other class a 0/0 counts as 0, so a predicted-only class has IoU 0 *and*
    Acc 0.
``detectron2`` (SemSegEvaluator).  Only classes present in the ground truth are
    averaged, so a predicted-only class does not lower mIoU or mAcc.  fwIoU
    weights each class's IoU by its share of ground-truth pixels.  detectron2
    reports only mIoU, fwIoU, mACC and pACC; precision, Dice and F-score here
    follow its class set, with 0/0 counted as 0.
``csail`` (the official ADE20K devkit).  IoU = I / (U + 1e-10), averaged over
    all K classes, so absent and predicted-only classes both count as 0.  The
    devkit reports only IoU and pixel accuracy; the other per-class metrics
    here also average over all K classes with 0/0 counted as 0.

Worked example (K = 4).  Class 0: 4 ground-truth pixels, 3 predicted right and
1 predicted as class 2.  Class 1: 3 pixels, 2 right and 1 predicted as 0.
Class 2 is predicted-only; class 3 is absent::

    M = [[3, 0, 1, 0],        IoU0 = 3 / (4 + 4 - 3) = 3/5
         [1, 2, 0, 0],        IoU1 = 2 / (3 + 2 - 2) = 2/3
         [0, 0, 0, 0],        IoU2 = 0 / 1 = 0,  IoU3 = 0/0
         [0, 0, 0, 0]]

    convention    classes averaged   mIoU                         mAcc
    mmseg         0, 1, 2            (3/5 + 2/3 + 0) / 3 = 0.4222  (3/4 + 2/3) / 2     = 0.7083
    torchmetrics  0, 1, 2            (3/5 + 2/3 + 0) / 3 = 0.4222  (3/4 + 2/3 + 0) / 3 = 0.4722
    detectron2    0, 1               (3/5 + 2/3) / 2     = 0.6333  (3/4 + 2/3) / 2     = 0.7083
    csail         0, 1, 2, 3         (3/5 + 2/3) / 4     = 0.3167  (3/4 + 2/3) / 4     = 0.3542

Pixel accuracy (aAcc = 5/7) is the same everywhere.  An empty matrix (no
evaluated pixel) gives NaN for every mean under every convention (torchmetrics
itself returns NaN for Jaccard but 0 for Accuracy there).  ``explain(matrix)``
prints this analysis for any matrix.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..datasets.ade20k import class_names
from .shift import shift_message, warn_if_shifted

CONVENTIONS = ("mmseg", "torchmetrics", "detectron2", "csail")

# The devkit's semantic-segmentation-pytorch evaluation divides by union + 1e-10
# (the MATLAB devkit adds eps per image, a difference below 1e-15 relative).
CSAIL_EPSILON = 1e-10


def check_convention(convention) -> str:
    if not isinstance(convention, str):
        raise TypeError(f"convention must be a str, got {type(convention).__name__}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose from {CONVENTIONS}")
    return convention


def _check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"beta must be a positive real number, got {type(beta).__name__}")
    value = float(beta)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"beta must be positive and finite, got {beta!r}")
    return value


def _check_matrix(matrix) -> np.ndarray:
    m = np.asarray(matrix)
    if m.dtype.kind not in "iuf":
        raise TypeError(f"matrix must hold counts (integers or floats), got dtype {m.dtype}")
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"matrix must be square (K, K) with K >= 1, got shape {m.shape}")
    if m.dtype.kind == "f" and not np.all(np.isfinite(m)):
        raise ValueError("matrix has NaN or infinite counts")
    if np.any(m < 0):
        raise ValueError("matrix has negative counts")
    return m


_INT64_MAX = 2**63 - 1
# float64 holds every integer up to 2**53: float sums of counts stay exact below it.
_FLOAT_EXACT = 2**53


def _count_bound(m: np.ndarray, terms: int) -> int:
    """An upper bound of |any sum of ``terms`` entries| of integer counts (0 for none)."""
    if m.size == 0:
        return 0
    return max(int(m.max()), -int(m.min())) * terms


def count_sum(counts, axis=None):
    """The exact sum of integer counts: int64 where no sum can overflow, else Python ints.

    NumPy sums int64 modulo 2**64 (four cells of 2**62 sum to 0).  This checks
    the largest entry first, so ordinary counts take the one fast int64 sum;
    only counts that could overflow are summed as Python ints (an object array
    along ``axis``, or an int).  Float counts are summed as floats.
    """
    m = np.asarray(counts)
    if m.dtype.kind not in "iub":
        return m.sum(axis=axis)
    terms = m.size if axis is None else m.shape[axis]
    if _count_bound(m, terms) <= _INT64_MAX:
        return m.sum(axis=axis, dtype=np.int64)
    return m.astype(object).sum(axis=axis)


def _nanmean(x: np.ndarray, axis=None):
    """NaN-mean that is quietly NaN over an empty or all-NaN selection."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if x.size == 0:
            return float("nan")
        return np.nanmean(x, axis=axis)


def _divide(num: np.ndarray, den: np.ndarray, zero_by_zero: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), zero_by_zero)


def counted_classes(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, convention: str) -> np.ndarray:
    """Which classes a convention averages over (bool, same shape as tp).

    mmseg counts every class but its NaNs drop out of the NaN-means, so for
    mmseg this mask is all True and the NaNs do the excluding.
    """
    if convention == "torchmetrics":
        return (tp + fp + fn) > 0
    if convention == "detectron2":
        return (tp + fn) > 0
    return np.ones(np.shape(tp), dtype=bool)


def per_class_iou(tp, fp, fn, convention: str = "mmseg") -> np.ndarray:
    """Per-class IoU under a convention; works on (..., K) arrays of counts.

    NaN marks a class the convention leaves out of mIoU, so mIoU is always
    the NaN-mean of this array over its last axis.
    """
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    union = tp + fp + fn
    if convention == "csail":
        return tp / (union + CSAIL_EPSILON)
    iou = _divide(tp, union, np.nan)
    if convention == "detectron2":
        iou = np.where(counted_classes(tp, fp, fn, convention), iou, np.nan)
    return iou


def miou_from_counts(tp, fp, fn, convention: str = "mmseg"):
    """mIoU from per-class counts of shape (..., K): a float, or one per leading index."""
    return _nanmean(per_class_iou(tp, fp, fn, convention), axis=-1)


@dataclass(frozen=True, eq=False)
class Metrics:
    """Dataset-level metrics; fractions in [0, 1], NaN where undefined under the convention.

    Per class (K,): ``iou``, ``acc`` (= recall), ``precision``, ``dice``,
    ``fscore`` (F-beta).  Means: ``miou``, ``macc``, ``mprecision``, ``mrecall``
    (= ``macc``), ``mdice``, ``mfscore``, each the NaN-mean of its per-class
    array.  ``aacc`` is overall pixel accuracy, ``fwiou`` the IoU weighted by
    ground-truth frequency, ``score`` the ADE20K scene-parsing score
    (aacc + miou) / 2.  ``matrix`` is the confusion matrix they came from.

    Boundary metrics, present when their counts were accumulated (else None):
    ``boundary_iou`` (K,) and its mean ``mboundary_iou`` (Boundary IoU of
    each class's inner bands, pooled over images; the mean follows the
    convention's IoU rules), ``boundary_f1`` (K,) and ``mboundary_f1`` (the BF
    score: per class the mean over the images where it is defined, then the
    NaN-mean over classes), ``boundary_matrix`` the (K+1, K+1) band counts.
    """

    convention: str
    iou: np.ndarray = field(repr=False)
    acc: np.ndarray = field(repr=False)
    miou: float
    macc: float
    aacc: float
    precision: np.ndarray = field(repr=False)
    dice: np.ndarray = field(repr=False)
    fscore: np.ndarray = field(repr=False)
    mprecision: float
    mrecall: float
    mdice: float
    mfscore: float
    fwiou: float
    score: float
    beta: float
    matrix: np.ndarray | None = field(repr=False)  # None when built from per-class counts
    micro_iou: float = float("nan")                 # sum tp / sum (tp + fp + fn) over the classes
    gt_pixels: np.ndarray | None = field(default=None, repr=False)    # (K,) ground-truth pixels per class
    pred_pixels: np.ndarray | None = field(default=None, repr=False)  # (K,) predicted pixels per class
    ignore_index: int | None = None                 # the class torchmetrics leaves out of its means, if any
    # Boundary metrics (None unless their counts were given; see compute_metrics).
    boundary_iou: np.ndarray | None = field(default=None, repr=False)
    mboundary_iou: float | None = None
    boundary_f1: np.ndarray | None = field(default=None, repr=False)
    mboundary_f1: float | None = None
    boundary_matrix: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return int(self.iou.shape[0])

    @property
    def recall(self) -> np.ndarray:
        return self.acc

    SCALARS = ("miou", "macc", "aacc", "mprecision", "mrecall", "mdice", "mfscore", "fwiou", "score", "micro_iou")
    PER_CLASS = ("iou", "acc", "precision", "dice", "fscore")
    BOUNDARY_SCALARS = ("mboundary_iou", "mboundary_f1")
    BOUNDARY_PER_CLASS = ("boundary_iou", "boundary_f1")

    def to_dict(self) -> dict:
        """A JSON-ready dict: plain floats and lists, with every NaN written as None.

        (JSON has no NaN; None means "undefined under this convention".)
        """
        def clean(x: float):
            x = float(x)
            return None if math.isnan(x) else x

        out = {"convention": self.convention, "beta": self.beta, "num_classes": self.num_classes}
        for name in self.SCALARS:
            out[name] = clean(getattr(self, name))
        for name in self.PER_CLASS:
            out[name] = [clean(v) for v in getattr(self, name)]
        for name in self.BOUNDARY_SCALARS:  # only the boundary metrics that were computed
            if getattr(self, name) is not None:
                out[name] = clean(getattr(self, name))
        for name in self.BOUNDARY_PER_CLASS:
            if getattr(self, name) is not None:
                out[name] = [clean(v) for v in getattr(self, name)]
        return out

    def group_miou(self, mask) -> float:
        """mIoU over a subset of classes (bool mask or class indices), same convention.

        NaN if the convention leaves out every class of the group.
        """
        selected = np.asarray(mask)
        if selected.dtype == bool:
            if selected.shape != self.iou.shape:
                raise ValueError(f"boolean mask must have shape {self.iou.shape}, got {selected.shape}")
            values = self.iou[selected]
        elif selected.dtype.kind in "iu":
            if selected.size and (selected.min() < 0 or selected.max() >= self.num_classes):
                raise ValueError(f"class indices must be in [0, {self.num_classes})")
            values = self.iou[selected]
        else:
            raise TypeError(f"mask must be booleans or class indices, got dtype {selected.dtype}")
        return float(_nanmean(values))

    def to_pandas(self, names=None):
        """Per-class results as a pandas DataFrame (``attrs``: convention and means); needs the pandas extra."""
        from .tables import metrics_frame

        return metrics_frame(self, names)

    def _repr_html_(self) -> str:
        """The means and a collapsible per-class table, for notebooks."""
        from .tables import metrics_html

        return metrics_html(self)

    def table(self, names=None, *, digits: int = 4) -> str:
        """A per-class table (fractions) with class names and pixel counts.

        ``names`` defaults to the ADE20K class names when there are 150 classes,
        else to the class indices.  "-" marks a value that is NaN (left out
        under this convention).
        """
        k = self.num_classes
        if names is None:
            if k == 150:
                names = class_names()
            else:
                names = [str(i) for i in range(k)]
        names = [str(n) for n in names]
        if len(names) != k:
            raise ValueError(f"names has {len(names)} entries for {k} classes")
        gt_pixels, pred_pixels = self.gt_pixels, self.pred_pixels
        integral = gt_pixels.dtype.kind in "iuO"

        def count(x) -> str:
            return str(int(x)) if integral else f"{float(x):g}"

        def num(x) -> str:
            return "-" if math.isnan(float(x)) else f"{float(x):.{digits}f}"

        fname = "F1" if self.beta == 1.0 else f"F{self.beta:g}"
        header = ["id", "class", "IoU", "Acc", "Precision", "Dice", fname, "GT pixels", "pred pixels"]
        boundary = [(label, getattr(self, name), getattr(self, "m" + name))
                    for label, name in (("BIoU", "boundary_iou"), ("BF", "boundary_f1"))
                    if getattr(self, name) is not None]
        header[7:7] = [label for label, _, _ in boundary]
        rows = []
        for i in range(k):
            rows.append([str(i), names[i], num(self.iou[i]), num(self.acc[i]), num(self.precision[i]),
                         num(self.dice[i]), num(self.fscore[i]), *(num(v[i]) for _, v, _ in boundary),
                         count(gt_pixels[i]), count(pred_pixels[i])])
        means = ["", f"mean ({self.convention})", num(self.miou), num(self.macc), num(self.mprecision),
                 num(self.mdice), num(self.mfscore), *(num(m) for _, _, m in boundary),
                 count(count_sum(gt_pixels)), count(count_sum(pred_pixels))]
        widths = [max(len(r[c]) for r in [header, means, *rows]) for c in range(len(header))]

        def fmt(r):
            return "  ".join(v.ljust(w) if c == 1 else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths)))

        rule = "-" * len(fmt(header))
        footer = (f"aAcc {num(self.aacc)}   mIoU {num(self.miou)}   fwIoU {num(self.fwiou)}   "
                  f"score (aAcc + mIoU)/2 {num(self.score)}"
                  + "".join(f"   m{label} {num(m)}" for label, _, m in boundary))
        notes = [f"note: {n}" for n in self.notes()]
        return "\n".join([fmt(header), rule, *map(fmt, rows), rule, fmt(means), footer, *notes])

    def notes(self) -> list[str]:
        """Why numbers shown side by side differ where a reader expects them equal (empty if they don't)."""
        out = []
        if self.convention == "mmseg":
            dropped = int(np.sum(np.isnan(self.fscore) & ~np.isnan(self.dice)))
            if dropped:
                out.append(f"mmseg computes the F-score from precision and recall, so the {dropped} class(es) with "
                           "no pixel right (tp = 0) have F-score NaN and drop out of mFscore while their Dice (0) "
                           "counts in mDice; per class the two are equal")
        if self.ignore_index is not None and self.convention == "torchmetrics" and 0 <= self.ignore_index < self.num_classes:
            out.append(f"class {self.ignore_index} is ignore_index and left out of mIoU, as torchmetrics does")
        return out

    def normalized_matrix(self, normalize: str | None = "true") -> np.ndarray:
        """The confusion matrix normalised over rows ("true"), columns ("pred") or all cells ("all")."""
        if self.matrix is None:
            raise ValueError("these metrics were computed from per-class counts: there is no matrix to normalise")
        return normalize_matrix(self.matrix, normalize)

    def __str__(self) -> str:
        def num(x) -> str:
            return "nan" if math.isnan(float(x)) else f"{float(x):.4f}"

        return (f"Metrics({self.convention}, K={self.num_classes}): mIoU {num(self.miou)}  mAcc {num(self.macc)}  "
                f"aAcc {num(self.aacc)}  mDice {num(self.mdice)}  mF{self.beta:g} {num(self.mfscore)}  "
                f"fwIoU {num(self.fwiou)}  score {num(self.score)}"
                + ("" if self.mboundary_iou is None else f"  mBIoU {num(self.mboundary_iou)}")
                + ("" if self.mboundary_f1 is None else f"  mBF {num(self.mboundary_f1)}"))


def _check_zero_division(zero_division) -> float | None:
    if zero_division is None:
        return None
    if isinstance(zero_division, bool) or not isinstance(zero_division, numbers.Real):
        raise TypeError(f"zero_division must be a number or None, got {type(zero_division).__name__}")
    return float(zero_division)


def _check_ignore_class(ignore_index) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    return int(ignore_index)


def compute_metrics(matrix, *, convention: str = "mmseg", beta: float = 1.0, ignore_index: int | None = None,
                    zero_division: float | None = None, warn_shift: bool = True, boundary_matrix=None,
                    boundary_f1=None) -> Metrics:
    """All metrics of a (K, K) confusion matrix (rows = ground truth) under a convention.

    ``convention`` is one of ``CONVENTIONS`` (see the module docstring for what
    each means); ``beta`` weights recall in the F-score (F-beta).
    ``ignore_index``: the ignored label the matrix was counted with (its pixels
    are already left out of the matrix).  Only the torchmetrics convention uses
    it: when it is a class (0 <= ignore_index < K), torchmetrics' Jaccard index
    leaves that class out of mIoU and micro IoU, and so does this.
    ``zero_division``: None (default) leaves a per-class value that is 0/0 NaN;
    a number puts that number there instead (torchmetrics' ``zero_division``
    for average="none").  Means are the same either way.
    A matrix whose counts sit on a diagonal next to the main one (predictions
    off by one class) gives a ``LabelShiftWarning`` unless ``warn_shift=False``.
    ``boundary_matrix``: the (K+1, K+1) band counts of ``ConfusionMatrix(...,
    boundary=ratio)``, for Boundary IoU; ``boundary_f1``: the pair (f1_sum,
    f1_count) of (K,) per-class sums of per-image BF scores and the numbers
    of images where each is defined, for the BF score.
    """
    m = _check_matrix(matrix)
    convention = check_convention(convention)
    counts = m.astype(np.float64)
    tp = np.diag(counts).copy()
    if m.dtype.kind in "iu" and _count_bound(m, m.size) > _FLOAT_EXACT:
        # Float sums would round at every step: sum as Python ints, round once.
        exact = m.astype(object)
        tp_i, gt_i, pred_i = np.diag(exact), exact.sum(axis=1), exact.sum(axis=0)
        gt, pred, fp, fn = (np.array(x, dtype=np.float64) for x in (gt_i, pred_i, pred_i - tp_i, gt_i - tp_i))
        total, correct = int(gt_i.sum()), int(tp_i.sum())  # int / int is correctly rounded
    else:
        gt = counts.sum(axis=1)
        pred = counts.sum(axis=0)
        fp, fn = pred - tp, gt - tp
        total, correct = gt.sum(), tp.sum()
    metrics = _from_counts(tp, gt, pred, convention, beta, ignore_index, zero_division, m,
                           count_sum(m, axis=1), count_sum(m, axis=0), exact=(fp, fn, total, correct))
    if warn_shift:
        warn_if_shifted(m)
    extra = {}
    if boundary_matrix is not None:
        extra.update(_boundary_iou_metrics(boundary_matrix, m.shape[0], convention))
    if boundary_f1 is not None:
        extra.update(_boundary_f1_metrics(boundary_f1, m.shape[0]))
    return dataclasses.replace(metrics, **extra) if extra else metrics


def _boundary_iou_metrics(boundary_matrix, k: int, convention: str) -> dict:
    """Boundary IoU from the (K+1, K+1) band counts: the convention's IoU rule on tp = B[c, c],
    fp = column c - tp, fn = row c - tp (sums including index K, "not in the band")."""
    b = _check_matrix(boundary_matrix)
    if b.shape != (k + 1, k + 1):
        raise ValueError(f"boundary_matrix must have shape {(k + 1, k + 1)} for {k} classes, got {b.shape}")
    counts = b.astype(np.float64)
    tp = np.diag(counts)[:k].copy()
    fp = counts[:, :k].sum(axis=0) - tp
    fn = counts[:k, :].sum(axis=1) - tp
    biou = per_class_iou(tp, fp, fn, convention)
    mean = float(_nanmean(biou)) if counts.sum() > 0 else float("nan")
    frozen = b.copy()
    for a in (biou, frozen):
        a.flags.writeable = False
    return {"boundary_iou": biou, "mboundary_iou": mean, "boundary_matrix": frozen}


def _boundary_f1_metrics(boundary_f1, k: int) -> dict:
    """BF score per class (mean over the images where defined, NaN where none) and its NaN-mean."""
    if not isinstance(boundary_f1, (tuple, list)) or len(boundary_f1) != 2:
        raise TypeError(f"boundary_f1 must be a pair (f1_sum, f1_count) of (K,) arrays, got {type(boundary_f1).__name__}")
    f1_sum, f1_count = boundary_f1
    f1_sum = np.asarray(f1_sum, dtype=np.float64)
    f1_count = np.asarray(f1_count)
    if f1_sum.shape != (k,) or f1_count.shape != (k,):
        raise ValueError(f"boundary_f1 sums and counts must have shape ({k},), got {f1_sum.shape} and {f1_count.shape}")
    if f1_count.dtype.kind not in "iu" or np.any(f1_count < 0):
        raise ValueError("boundary_f1 counts must be non-negative integers")
    if not np.all(np.isfinite(f1_sum)) or np.any(f1_sum < 0) or np.any(f1_sum > f1_count):
        raise ValueError("boundary_f1 sums must lie in [0, count] (each image's score is in [0, 1])")
    bf = _divide(f1_sum, f1_count, np.nan)
    bf.flags.writeable = False
    return {"boundary_f1": bf, "mboundary_f1": float(_nanmean(bf))}


def compute_metrics_from_counts(tp, fp, fn, *, convention: str = "mmseg", beta: float = 1.0,
                                ignore_index: int | None = None, zero_division: float | None = None) -> Metrics:
    """The same metrics from per-class counts (K,) of true positives, false positives, false negatives.

    For counts summed elsewhere (mmseg's ``pre_eval`` results, another tool's
    stat scores).  Overall pixel accuracy is sum(tp) / sum(tp + fn).  The
    result has no ``matrix`` (``normalized_matrix`` is unavailable).
    """
    tp_, fp_, fn_ = (_check_counts(a, name) for a, name in ((tp, "tp"), (fp, "fp"), (fn, "fn")))
    if not tp_.shape == fp_.shape == fn_.shape:
        raise ValueError(f"tp, fp and fn must have one shape (K,), got {tp_.shape}, {fp_.shape}, {fn_.shape}")
    gt_pixels, pred_pixels = tp_ + fn_, tp_ + fp_
    return _from_counts(tp_.astype(np.float64), gt_pixels.astype(np.float64), pred_pixels.astype(np.float64),
                        check_convention(convention), beta, ignore_index, zero_division, None, gt_pixels, pred_pixels)


def compute_metrics_from_areas(area_intersect, area_union, area_pred_label, area_label, *,
                               convention: str = "mmseg", beta: float = 1.0, ignore_index: int | None = None,
                               zero_division: float | None = None) -> Metrics:
    """The same metrics from mmseg's per-class areas (intersect, union, pred_label, label).

    The four (K,) arrays that mmseg's ``intersect_and_union`` returns and its
    ``pre_eval_to_metrics`` sums; the union must equal pred_label + label -
    intersect (a mismatch means the areas were summed inconsistently).
    """
    inter, union, pred_label, label = (_check_counts(a, n) for a, n in (
        (area_intersect, "area_intersect"), (area_union, "area_union"),
        (area_pred_label, "area_pred_label"), (area_label, "area_label")))
    if not inter.shape == union.shape == pred_label.shape == label.shape:
        raise ValueError("the four areas must have one shape (K,), got "
                         f"{inter.shape}, {union.shape}, {pred_label.shape}, {label.shape}")
    if not np.allclose(union, pred_label + label - inter, rtol=1e-9, atol=0):
        raise ValueError("area_union differs from area_pred_label + area_label - area_intersect")
    if np.any(inter > np.minimum(pred_label, label)):
        raise ValueError("area_intersect exceeds area_pred_label or area_label for some class")
    return compute_metrics_from_counts(inter, pred_label - inter, label - inter, convention=convention, beta=beta,
                                       ignore_index=ignore_index, zero_division=zero_division)


def _check_counts(a, name: str) -> np.ndarray:
    if _is_tensor(a):
        a = a.detach().cpu().numpy()
    v = np.asarray(a)
    if v.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold counts (integers or floats), got dtype {v.dtype}")
    if v.ndim != 1 or v.shape[0] == 0:
        raise ValueError(f"{name} must be one count per class, shape (K,) with K >= 1, got shape {v.shape}")
    if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
        raise ValueError(f"{name} has NaN or infinite counts")
    if np.any(v < 0):
        raise ValueError(f"{name} has negative counts")
    return v


def _is_tensor(x) -> bool:
    return hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy")


def _from_counts(tp, gt, pred, convention, beta, ignore_index, zero_division, matrix, gt_pixels,
                 pred_pixels, exact=None) -> Metrics:
    # exact: (fp, fn, total, correct) when the caller summed the counts exactly (past 2**53).
    beta = _check_beta(beta)
    ignore_index = _check_ignore_class(ignore_index)
    fill = _check_zero_division(zero_division)
    k = tp.shape[0]
    if exact is None:
        fp, fn = pred - tp, gt - tp
        total, correct = gt.sum(), tp.sum()
    else:
        fp, fn, total, correct = exact
    # torchmetrics' Jaccard index leaves its ignore_index class out when that is a class.
    skip = ignore_index if convention == "torchmetrics" and ignore_index is not None and 0 <= ignore_index < k else None

    # mmseg: 0/0 is NaN and NaN-means drop it; the others: 0/0 is 0 inside the counted class set.
    zero_by_zero = np.nan if convention == "mmseg" else 0.0
    counted = counted_classes(tp, fp, fn, convention)
    b2 = beta * beta
    iou = per_class_iou(tp, fp, fn, convention)
    acc = _divide(tp, gt, zero_by_zero)
    precision = _divide(tp, pred, zero_by_zero)
    dice = _divide(2 * tp, gt + pred, zero_by_zero)
    fscore = _divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, zero_by_zero)
    if convention == "mmseg":
        # mmseg's f_score(precision, recall) is 0/0 whenever tp == 0.
        fscore = np.where(tp > 0, fscore, np.nan)
    acc, precision, dice, fscore = (np.where(counted, a, np.nan) for a in (acc, precision, dice, fscore))
    union = tp + fp + fn
    iou_for_mean, micro_union = iou, union
    if skip is not None:
        iou_for_mean = iou.copy()
        iou_for_mean[skip] = np.nan
        micro_union = union.copy()
        micro_union[skip] = 0.0

    if total > 0:
        aacc = float(correct / total)
        present = gt > 0
        # detectron2's fwIoU: IoU weighted by each class's share of ground-truth pixels.
        fwiou = float(np.sum(iou[present] * (gt[present] / total)))
        miou, macc = float(_nanmean(iou_for_mean)), float(_nanmean(acc))
        mprecision, mdice, mfscore = (float(_nanmean(a)) for a in (precision, dice, fscore))
    else:
        aacc = fwiou = miou = macc = mprecision = mdice = mfscore = float("nan")
    micro_iou = (float(tp.sum() / micro_union.sum()) if micro_union.sum() > 0
                 else (float("nan") if fill is None else fill))
    if fill is not None:  # per-class 0/0 values as the caller asked; the means above are unchanged
        undefined_iou = union == 0 if convention != "csail" else np.zeros(k, dtype=bool)
        iou = np.where(undefined_iou | np.isnan(iou), fill, iou)
        acc, precision, dice, fscore = (np.where(np.isnan(a), fill, a) for a in (acc, precision, dice, fscore))
    frozen = None
    if matrix is not None:
        frozen = matrix.copy()
        frozen.flags.writeable = False
    gt_pixels, pred_pixels = np.array(gt_pixels), np.array(pred_pixels)
    for a in (iou, acc, precision, dice, fscore, gt_pixels, pred_pixels):
        a.flags.writeable = False
    return Metrics(convention=convention, iou=iou, acc=acc, miou=miou, macc=macc, aacc=aacc,
                   precision=precision, dice=dice, fscore=fscore, mprecision=mprecision, mrecall=macc,
                   mdice=mdice, mfscore=mfscore, fwiou=fwiou, score=(aacc + miou) / 2, beta=beta,
                   matrix=frozen, micro_iou=micro_iou, gt_pixels=gt_pixels, pred_pixels=pred_pixels,
                   ignore_index=ignore_index)


NORMALIZE = ("true", "pred", "all")


def normalize_matrix(matrix, normalize: str | None = "true") -> np.ndarray:
    """A confusion matrix as fractions, named as torchmetrics and scikit-learn name them.

    "true": each row (ground-truth class) sums to 1; "pred": each column
    (predicted class) sums to 1; "all": all cells sum to 1; None or "none":
    the counts, as float64.  A row or column with no pixel is 0 (as in both
    peers), never NaN.
    """
    m = _check_matrix(matrix).astype(np.float64)
    if normalize is None or normalize == "none":
        return m
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE} or None, got {normalize!r}")
    if normalize == "true":
        den = m.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        den = m.sum(axis=0, keepdims=True)
    else:
        den = np.full((1, 1), m.sum())
    return _divide(m, np.broadcast_to(den, m.shape), 0.0)


@dataclass(frozen=True)
class Explanation:
    """Why the conventions disagree on one matrix; ``str()`` gives a readable report."""

    num_classes: int
    absent: tuple[int, ...]           # no ground truth, no prediction
    predicted_only: tuple[int, ...]   # predicted, never in the ground truth
    missed: tuple[int, ...]           # in the ground truth, never predicted right (tp = 0)
    miou: dict                        # convention -> mIoU
    macc: dict                        # convention -> mAcc
    names: tuple[str, ...] | None = None
    shift: int = 0                    # +1 / -1: predictions look one class higher / lower (see shift.py)
    matrix: np.ndarray | None = field(default=None, repr=False, compare=False)

    def _label(self, k: int) -> str:
        return f"{k} ({self.names[k]})" if self.names is not None else str(k)

    def _list(self, classes) -> str:
        if not classes:
            return "none"
        shown = ", ".join(self._label(k) for k in classes[:12])
        return shown + (f", ... ({len(classes)} in all)" if len(classes) > 12 else "")

    def __str__(self) -> str:
        lines = [
            f"{self.num_classes} classes; {len(self.absent)} absent, {len(self.predicted_only)} predicted-only, "
            f"{len(self.missed)} in the ground truth with no pixel right.",
            f"  absent (no ground truth, no prediction): {self._list(self.absent)}",
            f"  predicted-only (predicted, no ground truth): {self._list(self.predicted_only)}",
            f"  missed (in the ground truth, no pixel right; IoU 0 everywhere): {self._list(self.missed)}",
            "How each convention treats them, and its mIoU / mAcc:",
        ]
        rules = {
            "mmseg": "absent left out; predicted-only IoU 0 counted, Acc left out",
            "torchmetrics": "absent left out; predicted-only IoU 0 and Acc 0 counted",
            "detectron2": "only classes in the ground truth are averaged",
            "csail": "all classes averaged; absent and predicted-only count as 0",
        }
        for name in CONVENTIONS:
            lines.append(f"  {name:<13}{self.miou[name]:.4f} / {self.macc[name]:.4f}   ({rules[name]})")
        if self.shift:
            lines.append(f"Warning: {shift_message(self.shift, self.matrix)}")
        return "\n".join(lines)


def explain(matrix, names=None) -> Explanation:
    """Which classes make the conventions disagree on this matrix, and mIoU/mAcc under each.

    ``names`` (optional, one per class) labels the classes; for 150 classes the
    ADE20K names are used by default.
    """
    m = _check_matrix(matrix)
    k = m.shape[0]
    if names is None and k == 150:
        names = class_names()
    if names is not None:
        names = tuple(str(n) for n in names)
        if len(names) != k:
            raise ValueError(f"names has {len(names)} entries for {k} classes")
    gt, pred, tp = count_sum(m, axis=1), count_sum(m, axis=0), np.diag(m)
    by_convention = {c: compute_metrics(m, convention=c, warn_shift=False) for c in CONVENTIONS}
    shift = warn_if_shifted(m)
    return Explanation(
        num_classes=k,
        absent=tuple(int(i) for i in np.flatnonzero((gt == 0) & (pred == 0))),
        predicted_only=tuple(int(i) for i in np.flatnonzero((gt == 0) & (pred > 0))),
        missed=tuple(int(i) for i in np.flatnonzero((gt > 0) & (tp == 0))),
        miou={c: r.miou for c, r in by_convention.items()},
        macc={c: r.macc for c, r in by_convention.items()},
        names=names,
        shift=shift,
        matrix=m,
    )
