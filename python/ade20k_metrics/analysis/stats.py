"""Per-image statistics: per-image IoU, worst images, bootstrap intervals, paired comparisons.

``ImageStats`` keeps, for every image, the true-positive, false-positive and
false-negative counts of the classes present in it (O(classes present) per
image, see records.py), taken from the same kernel pass that adds the image
to the dataset's confusion matrix.  From them:

* per-image IoU and mIoU.  Averaging per image is a *different metric* from
  the dataset mIoU (which sums every image's counts first); it is offered only
  under names that say so: ``image_miou``, ``mean_image_miou`` and
  ``torchmetrics_segmentation_miou`` (what torchmetrics' segmentation.MeanIoU
  computes).
* the worst-k images by their own mIoU;
* a bootstrap confidence interval of the dataset mIoU: resample images with
  replacement, sum their counts, recompute mIoU (percentile interval);
* a paired comparison of two prediction sets on the same images: the same
  resamples for both, giving an interval for the mIoU difference, and a
  two-sided paired randomization test's p-value (see significance.py for
  the method and why it was chosen).

It is an accumulator like ``ConfusionMatrix``: ``merge``, ``+``,
``state_dict``/``from_state_dict``, ``save``/``load`` and ``sync`` over
torch.distributed, keeping every image's counts, name and dataset index.
"""
from __future__ import annotations

import numbers
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..core import _core
from ..core.confusion import ConfusionMatrix, _label_map_on_member, npz_state, read_settings
from ..core.inputs import as_int, as_labels, check_pair
from ..core.kernel import _KERNEL_OPTIONS, _raise_invalid
from ..core.threads import kernel_threads
from ..metrics.compute import Metrics, _nanmean, check_convention, compute_metrics, per_class_iou
from . import records as rec
from .significance import (bootstrap_miou_samples, check_confidence, check_resampling, left_out_class,
                           paired_resampling, percentile_interval)

FORMAT = "ade20k_metrics.ImageStats"
DEFAULT_PERMUTATIONS = 10_000


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
    """mIoU of A minus mIoU of B on the same images, with a paired bootstrap interval and a p-value.

    ``share_not_better`` is the share of resamples in which A's mIoU was not
    above B's.  ``p_value`` is the two-sided paired randomization (swap)
    test of "A and B do equally well" over ``n_permutations`` permutations
    (see ade20k_metrics.analysis.significance).
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
    p_value: float = float("nan")
    n_permutations: int = 0

    def __str__(self) -> str:
        return (f"mIoU A {self.miou_a:.4f} - B {self.miou_b:.4f} = {self.difference:+.4f} "
                f"[{self.low:+.4f}, {self.high:+.4f}] ({100 * self.confidence:g}% paired bootstrap CI, "
                f"{self.n_resamples} resamples, {self.convention}); A not better in "
                f"{100 * self.share_not_better:.1f}% of resamples; p = {self.p_value:.4g} "
                f"(two-sided paired randomization test, {self.n_permutations} permutations)")


def _check_seed(seed):
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be None, an int >= 0 or a numpy Generator, got {seed!r}")
    return int(seed)


class ImageStats:
    """Accumulates per-image counts next to the dataset confusion matrix.

    Same settings as ``ConfusionMatrix`` (``reduce_zero_label`` and
    ``label_map`` included).  ``update(pred, target)`` adds ONE image (any
    shape); ``update_batch`` adds a batch whose first axis indexes images.
    Both are all-or-nothing: if they raise, nothing was added.
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255, reduce_zero_label: bool = False,
                 label_map: Mapping[int, int] | None = None, n_threads: int | None = None,
                 label_map_on: str = "reduced", boundary: float | None = None):
        # Holds the checked settings and the target lookup tables; never counts.
        # With boundary= it also holds the dataset's band matrix (compute() reports Boundary IoU).
        self._settings_holder = ConfusionMatrix(num_classes, ignore_index=ignore_index,
                                                reduce_zero_label=reduce_zero_label, label_map=label_map,
                                                n_threads=n_threads, label_map_on=label_map_on, boundary=boundary)
        # boundary=: each image's band (class, tp, fp, fn) record, as the region records (records.py).
        self._band_records: list[np.ndarray] | None = [] if boundary is not None else None
        self.num_classes = self._settings_holder.num_classes
        # The dataset matrix is the holder's own, so compute() is exactly ConfusionMatrix.compute.
        self._matrix = self._settings_holder._matrix
        self._records: list[np.ndarray] = []
        self.names: list = []
        self._indices: list[int | None] = []
        self._cells: dict[int, np.ndarray] = {}  # image position -> its sparse matrix (indexed images only)
        self._synced = False

    # -- settings -----------------------------------------------------------
    @property
    def ignore_index(self) -> int | None:
        return self._settings_holder.ignore_index

    @property
    def reduce_zero_label(self) -> bool:
        return self._settings_holder.reduce_zero_label

    @property
    def label_map(self) -> dict[int, int] | None:
        return self._settings_holder.label_map

    @property
    def n_threads(self) -> int | None:
        return self._settings_holder.n_threads

    @property
    def boundary(self) -> float | None:
        """Boundary IoU's dilation ratio (None: no boundary counts)."""
        return self._settings_holder.boundary

    def _settings(self) -> tuple:
        return self._settings_holder._settings()

    # -- accumulation -------------------------------------------------------
    def update(self, pred, target, *, name=None, index: int | None = None) -> ImageStats:
        """Add one image; returns self.

        ``name`` (e.g. its file name) labels it in reports (default: its
        position).  ``index``: its dataset index, for ``sync(dataset_size=...)``
        to drop the samples DistributedSampler repeats; an indexed image also
        keeps its sparse matrix until ``sync``.
        """
        p = as_labels(pred, "pred")
        t = as_labels(target, "target")
        check_pair(p, t)
        if index is not None:
            index = as_int(index, "index", "an int or None")
            if index < 0:
                raise ValueError(f"index must be >= 0, got {index}")
        holder = self._settings_holder
        band_record = self._band_record(p, t) if self._band_records is not None else None
        t, ignore_index, lookup = holder._kernel_target(t)  # as ConfusionMatrix counts it
        lut, lut_lo, reduce_zero_label, _ = lookup if lookup is not None else (None, 0, False, None)
        bad_target, bad_pred, record, cells = _core.accumulate_image(
            t, p, self._matrix, self.num_classes, ignore_index, lut, lut_lo, reduce_zero_label,
            index is not None, kernel_threads(holder._threads), **_KERNEL_OPTIONS)
        if bad_target or bad_pred:
            _raise_invalid(p, t, self.num_classes, ignore_index, bad_target, bad_pred, lookup)
        record.flags.writeable = False
        if cells is not None:
            cells.flags.writeable = False
            self._cells[len(self._records)] = cells
        if band_record is not None:
            band, band_record = band_record
            _core.add_counts(holder._boundary.matrix, band)
            self._band_records.append(band_record)
        self.names.append(len(self._records) if name is None else name)
        self._records.append(record)
        self._indices.append(index)
        return self

    def _band_record(self, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One image's (K+1, K+1) band counts and its read-only (4, n) record of the classes with a band.

        Counted before anything is added (a bad label raises here, nothing changed).
        """
        from ..core.boundary import count_boundary

        holder = self._settings_holder
        k = self.num_classes
        if p.ndim != 2:
            raise ValueError(f"boundary= needs one label map (H, W) per image, got shape {p.shape}")
        kt, ignore_index, lookup = holder._kernel_target(t)
        band = np.zeros((k + 1, k + 1), np.int64)
        count_boundary(p, kt, np.zeros((k, k), np.int64), band, k, ignore_index, holder._threads, lookup,
                       holder.boundary)
        tp = np.diag(band)[:k]
        fp = band[:, :k].sum(axis=0) - tp
        fn = band[:k, :].sum(axis=1) - tp
        present = np.flatnonzero(tp + fp + fn)
        record = np.stack([present, tp[present], fp[present], fn[present]]).astype(np.int64)
        record.flags.writeable = False
        return band, record

    def image_boundary_iou(self) -> np.ndarray:
        """(N, K) Boundary IoU of each class in each image (``boundary=``); NaN where neither map has its band.

        Per image and class exactly ``am.boundary_iou`` of that image alone.
        """
        if self._band_records is None:
            raise ValueError("image_boundary_iou needs ImageStats(..., boundary=ratio)")
        tp, fp, fn = rec.dense(self._band_records, self.num_classes)
        return per_class_iou(tp, fp, fn, "mmseg")

    def image_mboundary_iou(self) -> np.ndarray:
        """(N,) each image's own mean Boundary IoU over the classes with a band in it (NaN: none)."""
        return np.asarray(_nanmean(self.image_boundary_iou(), axis=1), dtype=np.float64).reshape(len(self))

    def update_batch(self, preds, targets, *, names=None, indices=None) -> ImageStats:
        """Add a batch of images: ``preds[i]``, ``targets[i]`` is image i. Returns self.

        All-or-nothing: the batch is counted into a new accumulator first and
        merged only when every image was counted.
        """
        preds, targets = np.asarray(preds), np.asarray(targets)
        if preds.shape != targets.shape or preds.ndim < 1:
            raise ValueError(f"preds and targets must have the same shape (N, ...), got {preds.shape} "
                             f"and {targets.shape}")
        n = preds.shape[0]
        if names is not None and len(names) != n:
            raise ValueError(f"names has {len(names)} entries for {n} images")
        if indices is not None:
            if hasattr(indices, "tolist"):
                indices = indices.tolist()
            if len(indices) != n:
                raise ValueError(f"indices has {len(indices)} entries for {n} images")
        batch = self._empty_like()
        for i in range(n):
            batch.update(preds[i], targets[i], name=len(self) + i if names is None else names[i],
                         index=None if indices is None else indices[i])
        return self.merge(batch)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def matrix(self) -> np.ndarray:
        """Dataset confusion matrix: the sum of every image's (read-only view)."""
        view = self._matrix.view()
        view.flags.writeable = False
        return view

    @property
    def total(self) -> int:
        """Pixels counted so far (all images)."""
        return self._settings_holder.total

    @property
    def indices(self) -> list[int | None]:
        """Each image's dataset index (None where none was given)."""
        return list(self._indices)

    def records(self) -> list[np.ndarray]:
        """Each image's read-only (4, n) int64 record: rows class, tp, fp, fn over its n classes present."""
        return list(self._records)

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-image (tp, fp, fn), each (N, K) int64."""
        return rec.dense(self._records, self.num_classes)

    def pixels(self) -> np.ndarray:
        """(N,) evaluated (non-ignored) pixels of each image."""
        return np.fromiter((int(r[rec.TP].sum() + r[rec.FN].sum()) for r in self._records), dtype=np.int64,
                           count=len(self._records))

    def compute(self, convention: str = "mmseg", beta: float = 1.0, **options) -> Metrics:
        """Dataset-level metrics (the sum over images): ``ConfusionMatrix.compute`` of the same matrix."""
        return self._settings_holder.compute(convention, beta, **options)

    def reset(self) -> ImageStats:
        if self._band_records is not None:
            self._settings_holder._boundary.matrix[...] = 0
            self._band_records.clear()
        self._matrix[...] = 0
        self._records.clear()
        self.names.clear()
        self._indices.clear()
        self._cells.clear()
        self._synced = False
        return self

    # -- combining ----------------------------------------------------------
    def _empty_like(self) -> ImageStats:
        return ImageStats(self.num_classes, ignore_index=self.ignore_index, reduce_zero_label=self.reduce_zero_label,
                          label_map=self.label_map, n_threads=self.n_threads, boundary=self.boundary)

    def merge(self, other: ImageStats) -> ImageStats:
        """Append another accumulator's images after this one's (same settings); returns self."""
        if not isinstance(other, ImageStats):
            raise TypeError(f"can only merge an ImageStats, got {type(other).__name__}")
        if other._settings() != self._settings():
            raise ValueError(
                "cannot merge accumulators with different settings: "
                f"{self._settings()} vs {other._settings()} (num_classes, ignore_index, reduce_zero_label, label_map)")
        if other is self:
            other = self.copy()
        if self._band_records is not None:  # both checked before either is added
            self._settings_holder._boundary.check_addable(other._settings_holder._boundary)
        _core.add_counts(self._matrix, other._matrix)  # OverflowError leaves everything as it was
        if self._band_records is not None:
            self._settings_holder._boundary.add(other._settings_holder._boundary)
            self._band_records.extend(other._band_records)
        start = len(self._records)
        self._records.extend(other._records)
        self.names.extend(other.names)
        self._indices.extend(other._indices)
        self._cells.update({start + i: cells for i, cells in other._cells.items()})
        return self

    def __add__(self, other: ImageStats) -> ImageStats:
        if not isinstance(other, ImageStats):
            return NotImplemented
        return self.copy().merge(other)

    def __iadd__(self, other: ImageStats) -> ImageStats:
        if not isinstance(other, ImageStats):
            return NotImplemented
        return self.merge(other)

    def copy(self) -> ImageStats:
        new = self._empty_like()
        new._matrix[...] = self._matrix
        if self._band_records is not None:
            new._settings_holder._boundary.matrix[...] = self._settings_holder._boundary.matrix
            new._band_records = list(self._band_records)
        new._records = list(self._records)  # records are read-only arrays: sharing them is safe
        new.names = list(self.names)
        new._indices = list(self._indices)
        new._cells = dict(self._cells)
        new._synced = self._synced
        return new

    def __eq__(self, other) -> bool:
        if not isinstance(other, ImageStats):
            return NotImplemented
        return (self._settings() == other._settings() and self.names == other.names
                and self._indices == other._indices and np.array_equal(self._matrix, other._matrix)
                and len(self._records) == len(other._records)
                and all(np.array_equal(a, b) for a, b in zip(self._records, other._records))
                and self._same_bands(other)
                and self._cells.keys() == other._cells.keys()
                and all(np.array_equal(c, other._cells[i]) for i, c in self._cells.items()))

    __hash__ = None  # mutable

    def _no_boundary_yet(self, what: str) -> None:
        if self._band_records is not None:
            raise NotImplementedError(f"{what} of an ImageStats with boundary= is not available yet "
                                      "(pickle keeps everything; merge and + work)")

    def _same_bands(self, other: ImageStats) -> bool:
        if self._band_records is None:
            return other._band_records is None
        return (other._band_records is not None
                and np.array_equal(self._settings_holder._boundary.matrix, other._settings_holder._boundary.matrix)
                and all(np.array_equal(a, b) for a, b in zip(self._band_records, other._band_records)))

    def __repr__(self) -> str:
        return (f"ImageStats(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"reduce_zero_label={self.reduce_zero_label}, images={len(self)}, pixels={int(self._matrix.sum())})")

    # -- state --------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to rebuild this accumulator exactly (plain types and int64 arrays)."""
        self._no_boundary_yet("state_dict, save and load")
        offsets, flat = rec.pack(self._records)
        cell_images = sorted(self._cells)
        cell_offsets, cells = rec.pack([self._cells[i] for i in cell_images], rows=2)
        return {
            "format": FORMAT,
            "version": 1,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "reduce_zero_label": self.reduce_zero_label,
            "label_map": None if self.label_map is None else dict(self.label_map),
            "matrix": self._matrix.copy(),
            "names": list(self.names),
            "indices": list(self._indices),
            "offsets": offsets,
            "records": flat,
            "cell_images": np.array(cell_images, dtype=np.int64),
            "cell_offsets": cell_offsets,
            "cells": cells,
            **({"label_map_on": "raw"} if self._settings_holder.label_map_on == "raw" else {}),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping, *, n_threads: int | None = None) -> ImageStats:
        """Rebuild from ``state_dict()``; every part is checked against the others (ValueError/TypeError)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        required = {"num_classes", "ignore_index", "reduce_zero_label", "label_map", "matrix", "names", "offsets",
                    "records"}
        missing = required - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        if state.get("format", FORMAT) != FORMAT:
            raise ValueError(f"not an ImageStats state (format {state.get('format')!r})")
        if state.get("version", 1) != 1:
            raise ValueError(f"unsupported state version {state.get('version')!r}")
        # The settings and the matrix are checked as ConfusionMatrix checks its own.
        cm = ConfusionMatrix.from_state_dict({k: state[k] for k in ("num_classes", "ignore_index",
                                              "reduce_zero_label", "label_map", "matrix", "label_map_on")
                                              if k in state}, n_threads=n_threads)
        stats = cls(cm.num_classes, ignore_index=cm.ignore_index, reduce_zero_label=cm.reduce_zero_label,
                    label_map=cm.label_map, n_threads=n_threads)
        names = list(state["names"])
        records = rec.unpack(state["offsets"], state["records"], len(names), stats.num_classes, cm._matrix)
        indices = rec.check_indices(state.get("indices", [None] * len(names)), len(names))
        empty = np.zeros(0, dtype=np.int64)
        cells = rec.unpack_cells(state.get("cell_images", empty), state.get("cell_offsets", np.zeros(1, np.int64)),
                                 state.get("cells", np.zeros((2, 0), np.int64)), records, indices, stats.num_classes)
        stats._matrix[...] = cm._matrix
        stats._records, stats.names, stats._indices, stats._cells = records, names, indices, cells
        return stats

    def save(self, path) -> None:
        """Write the state to an .npz file atomically (a temporary file, then a rename).

        Names must be str or int (they are stored without pickle).
        """
        path = os.fspath(path)
        state = self.state_dict()
        names, name_is_int = _encode_names(state["names"])
        label_map = state["label_map"] or {}
        arrays = dict(
            format=np.array(FORMAT), version=np.int64(1), num_classes=np.int64(self.num_classes),
            ignore_index=np.array([] if self.ignore_index is None else [self.ignore_index], np.int64),
            reduce_zero_label=np.bool_(self.reduce_zero_label),
            label_map=np.array(sorted(label_map.items()), dtype=np.int64).reshape(-1, 2),
            matrix=state["matrix"], names=names, name_is_int=name_is_int,
            indices=np.array([-1 if i is None else i for i in state["indices"]], dtype=np.int64),
            offsets=state["offsets"], records=state["records"], cell_images=state["cell_images"],
            cell_offsets=state["cell_offsets"], cells=state["cells"], **_label_map_on_member(state))
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, *, n_threads: int | None = None) -> ImageStats:
        """Read a file written by ``save``; a corrupt or foreign file is a ValueError."""
        # Every member's header is checked before its data is read, as ConfusionMatrix.load does.
        with npz_state(path, FORMAT, "ImageStats") as fields:

            def ints(name, rank):
                return fields.array(name, "iu", lambda shape: len(shape) == rank, f"{rank}-d")

            names = fields.array("names", "U", lambda shape: len(shape) == 1, "1-d")
            name_is_int = fields.array("name_is_int", "b", lambda shape: len(shape) == 1, "1-d")
            state = {
                "format": FORMAT,
                **read_settings(fields),
                "matrix": ints("matrix", 2),
                "names": _decode_names(names, name_is_int),
                "indices": [None if i < 0 else i for i in ints("indices", 1).tolist()],
                "offsets": ints("offsets", 1),
                "records": ints("records", 2),
                "cell_images": ints("cell_images", 1),
                "cell_offsets": ints("cell_offsets", 1),
                "cells": ints("cells", 2),
            }
            return cls.from_state_dict(state, n_threads=n_threads)

    def sync(self, group=None, *, dataset_size: int | None = None) -> ImageStats:
        """Gather every rank's images onto every rank and sum the matrices exactly; returns self.

        Without ``dataset_size``: all images, rank by rank.  With it (=
        len(dataset)), every image must have been given its dataset ``index``;
        the samples DistributedSampler repeated are kept once (the first in
        rank order) and the images are put in index order, which must be
        exactly 0 .. dataset_size-1, else every rank raises the same
        ValueError with nothing changed (see analysis/image_sync.py).  Call
        once, after the last update.
        """
        from .image_sync import sync_image_stats

        self._no_boundary_yet("sync")
        sync_image_stats(self, group=group, dataset_size=dataset_size)
        return self

    # -- per-image averages (a different metric, named as such) -------------
    def image_iou(self) -> np.ndarray:
        """(N, K) IoU of each class in each image; NaN where the class is in neither map."""
        tp, fp, fn = self.counts()
        # The per-image rule: a class in neither map of the image is left out (NaN).
        return per_class_iou(tp, fp, fn, "mmseg")

    def _image_iou(self, include_background: bool) -> np.ndarray:
        """image_iou(), without class 0's column unless ``include_background`` (torchmetrics' MeanIoU rule)."""
        if not isinstance(include_background, (bool, np.bool_)):
            raise TypeError(f"include_background must be a bool, got {type(include_background).__name__}")
        iou = self.image_iou()
        # torchmetrics drops the first class's channel only when there is another one.
        return iou if include_background or self.num_classes == 1 else iou[:, 1:]

    def image_miou(self, *, include_background: bool = True) -> np.ndarray:
        """(N,) each image's own mIoU over the classes in its prediction or ground truth.

        The same per-sample value as torchmetrics.functional.segmentation.mean_iou
        (input_format="index").  NaN for an image with nothing evaluated.
        ``include_background=False`` leaves class 0 out of every image's mean
        (its pixels still count as the other classes' false positives and
        negatives), as torchmetrics' ``include_background`` does.
        """
        iou = self._image_iou(include_background)
        return np.asarray(_nanmean(iou, axis=1), dtype=np.float64).reshape(len(self))

    def image_aacc(self) -> np.ndarray:
        """(N,) each image's pixel accuracy; NaN for an image with nothing evaluated."""
        tp = np.fromiter((int(r[rec.TP].sum()) for r in self._records), dtype=np.float64, count=len(self))
        pixels = self.pixels().astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pixels > 0, tp / np.where(pixels > 0, pixels, 1), np.nan)

    def mean_image_miou(self, *, include_background: bool = True) -> float:
        """Mean over images of each image's mIoU: per-image averaging, NOT the dataset mIoU."""
        return float(_nanmean(self.image_miou(include_background=include_background)))

    def torchmetrics_segmentation_miou(self, per_class: bool = False, *, include_background: bool = True):
        """What torchmetrics' segmentation.MeanIoU(input_format="index") computes.

        torchmetrics (1.9) sums the IoU of every (image, class) pair whose union
        is non-empty and divides by the number of such pairs, so images with
        many classes weigh more.  ``per_class=True``: for each class, its mean
        IoU over the images where it appears (NaN where it never does;
        torchmetrics writes -1 there).  ``include_background=False``: class 0
        left out, as ``MeanIoU(include_background=False)`` (per class: K - 1 values,
        for classes 1..K-1).
        """
        iou = self._image_iou(include_background)
        if per_class:
            return np.asarray(_nanmean(iou, axis=0), dtype=np.float64).reshape(iou.shape[1])
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
    def _left_out(self, convention: str) -> int | None:
        return left_out_class(convention, self.ignore_index, self.num_classes)

    def _miou(self, convention: str) -> float:
        return float(compute_metrics(self._matrix, convention=convention, ignore_index=self.ignore_index,
                                     warn_shift=False).miou)

    def _float_counts(self):
        return tuple(a.astype(np.float64) for a in self.counts())

    def bootstrap_miou(self, n_resamples: int = 1000, *, confidence: float = 0.95, convention: str = "mmseg",
                       seed=None) -> ConfidenceInterval:
        """Percentile bootstrap interval of the dataset mIoU, resampling images."""
        n_resamples = check_resampling(n_resamples)
        confidence = check_confidence(confidence)
        convention = check_convention(convention)
        if len(self) == 0:
            raise ValueError("no images accumulated")
        rng = np.random.default_rng(_check_seed(seed))
        samples = bootstrap_miou_samples(self._float_counts(), convention, n_resamples, rng, self._left_out(convention))
        low, high = percentile_interval(samples, confidence)
        return ConfidenceInterval(estimate=self._miou(convention),
                                  low=low, high=high, confidence=confidence, n_resamples=n_resamples,
                                  convention=convention)

    def check_same_images(self, other: ImageStats) -> None:
        """ValueError unless ``other`` holds the same images in the same order (same ground truth per image)."""
        if not isinstance(other, ImageStats):
            raise TypeError(f"can only compare with an ImageStats, got {type(other).__name__}")
        if len(self) != len(other) or self.num_classes != other.num_classes:
            raise ValueError(f"not the same images: {len(self)} images x {self.num_classes} classes vs "
                             f"{len(other)} x {other.num_classes}")
        # Ground truth per image and class is tp + fn; it does not depend on the prediction.
        for i, (a, b) in enumerate(zip(self._records, other._records)):
            if not _same_ground_truth(a, b):
                raise ValueError(f"not the same images: the ground truth of image {self.names[i]!r} differs")

    def compare(self, other: ImageStats, n_resamples: int = 1000, *, confidence: float = 0.95,
                convention: str = "mmseg", seed=None, n_permutations: int = DEFAULT_PERMUTATIONS) -> PairedComparison:
        """Paired bootstrap of mIoU(self) - mIoU(other) over the same images, and a paired p-value.

        Both must hold the same images in the same order: their per-image
        ground-truth pixel counts of every class must agree, else ValueError.
        """
        if not isinstance(other, ImageStats):
            raise TypeError(f"can only compare with an ImageStats, got {type(other).__name__}")
        n_resamples = check_resampling(n_resamples)
        n_permutations = check_resampling(n_permutations, name="n_permutations")
        confidence = check_confidence(confidence)
        convention = check_convention(convention)
        if len(self) == 0:
            raise ValueError("no images accumulated")
        self.check_same_images(other)
        rng = np.random.default_rng(_check_seed(seed))
        # B - A with A = other, B = self: the difference self - other.
        res = paired_resampling(other._float_counts(), self._float_counts(), convention, n_resamples,
                                n_permutations, rng, self._left_out(convention))
        low, high = percentile_interval(res.delta_samples, confidence)
        miou_a, miou_b = self._miou(convention), other._miou(convention)
        finite = res.delta_samples[~np.isnan(res.delta_samples)]
        return PairedComparison(miou_a=miou_a, miou_b=miou_b, difference=miou_a - miou_b, low=low, high=high,
                                confidence=confidence, n_resamples=n_resamples,
                                share_not_better=float(np.mean(finite <= 0)) if finite.size else float("nan"),
                                convention=convention, p_value=res.p_value, n_permutations=n_permutations)


def _same_ground_truth(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two records have the same ground-truth pixels (tp + fn) of every class."""
    ga, gb = a[rec.TP] + a[rec.FN], b[rec.TP] + b[rec.FN]
    ca, cb = a[rec.CLASS][ga > 0], b[rec.CLASS][gb > 0]
    return np.array_equal(ca, cb) and np.array_equal(ga[ga > 0], gb[gb > 0])


def _encode_names(names: list) -> tuple[np.ndarray, np.ndarray]:
    is_int = np.zeros(len(names), dtype=bool)
    text = []
    for i, name in enumerate(names):
        if isinstance(name, (bool, np.bool_)) or not isinstance(name, (str, numbers.Integral)):
            raise TypeError(f"ImageStats.save stores names that are str or int; image {i} is named {name!r}")
        if isinstance(name, str):
            if name.endswith("\0"):
                raise ValueError(f"ImageStats.save cannot store a name that ends with a NUL character: {name!r}")
            text.append(name)
        else:
            is_int[i] = True
            text.append(str(int(name)))
    return np.array(text, dtype=str) if text else np.zeros(0, dtype="<U1"), is_int


def _decode_names(text: np.ndarray, is_int: np.ndarray) -> list:
    if text.ndim != 1 or is_int.shape != text.shape or text.dtype.kind != "U" or is_int.dtype != bool:
        raise ValueError("names must be a 1-d str array with a bool flag per name")
    return [int(t) if flag else str(t) for t, flag in zip(text.tolist(), is_int.tolist())]
