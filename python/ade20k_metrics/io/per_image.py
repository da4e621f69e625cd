"""Folders scored image by image: ``ImageStats`` from one folder pair, or two prediction folders against one ground truth.

``evaluate_per_image`` is ``label_files.evaluate_pairs`` keeping every
image's counts (for ``--per-image`` and ``--ci``).  ``compare_folders`` reads
each ground-truth file once and both predictions of it, so the two runs are
scored on exactly the same decoded ground truth, in one pass.  Both decode
ahead on a thread pool with a bounded number of images in flight and report
the first bad file in order, as evaluate_pairs does.
"""
from __future__ import annotations

import csv
import io
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.stats import ImageStats
from ..analysis.significance import (bootstrap_miou_samples, check_confidence, check_resampling, left_out_class,
                                     percentile_interval)
from ..metrics.compute import check_convention, per_class_iou
from .dataset_files import DatasetFormat, DatasetPair
from .label_files import (InputError, LabelFormat, LabelPair, _decode, _open_label_image, _resize_nearest,
                          label_error, load_pair, to_train_ids)
from .report import printable


def image_stats_for(label_format: LabelFormat) -> ImageStats:
    # One image is counted in ~0.1 ms on one thread, far below decoding time.
    return ImageStats(label_format.num_classes, ignore_index=label_format.ignore_index,
                      reduce_zero_label=not label_format.gt_zero_based, n_threads=1,
                      boundary=getattr(label_format, "boundary", None))


def _ahead(items: Sequence, load: Callable, workers: int) -> Iterator:
    """Yield (item, load(item)) in order, loading up to 2 * workers items ahead on a thread pool."""
    workers = max(1, int(workers))
    if workers == 1:
        for item in items:
            yield item, load(item)
        return
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ade20k-decode")
    in_flight: deque[tuple[object, Future]] = deque()
    upcoming = iter(items)
    try:
        for item in upcoming:
            in_flight.append((item, executor.submit(load, item)))
            if len(in_flight) >= 2 * workers:
                break
        while in_flight:
            item, future = in_flight.popleft()
            result = future.result()
            following = next(upcoming, None)
            if following is not None:
                in_flight.append((following, executor.submit(load, following)))
            yield item, result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _count(stats: ImageStats, pair: LabelPair, pred_raw, gt, label_format: LabelFormat) -> None:
    try:
        stats.update(to_train_ids(pred_raw, label_format), gt, name=pair.key)
    except ValueError as e:
        raise label_error(pair, pred_raw, gt, label_format, e) from None


def evaluate_per_image(pairs: Sequence[LabelPair], label_format, *, threads: int = 1,
                       on_pair: Callable[[int], None] | None = None):
    """Every pair's counts, named by its key (raises InputError naming the first bad file, in order).

    ``label_format``: a ``LabelFormat`` (an ``ImageStats`` comes back) or a
    dataset's ``DatasetFormat`` (a ``DatasetImageStats``).
    """
    if isinstance(label_format, DatasetFormat):
        stats = DatasetImageStats(label_format)
        for done, (pair, loaded) in enumerate(_ahead(pairs, label_format.load_pair, threads), start=1):
            stats.add_pair(pair, *loaded)
            if on_pair is not None:
                on_pair(done)
        return stats
    stats = image_stats_for(label_format)
    for done, (pair, (pred_raw, gt)) in enumerate(_ahead(pairs, lambda p: load_pair(p, label_format), threads),
                                                  start=1):
        _count(stats, pair, pred_raw, gt, label_format)
        if on_pair is not None:
            on_pair(done)
    return stats


@dataclass(frozen=True)
class Triple:
    key: str
    pred_a: Path
    pred_b: Path
    gt: Path
    instances: Path | None = None  # Cityscapes' instanceIds file (compare --dataset cityscapes)


def _load_second(path: Path, gt: np.ndarray, gt_path: Path, label_format: LabelFormat) -> np.ndarray:
    """Decode a second prediction of an already decoded ground truth, with load_pair's size rule."""
    image = _open_label_image(path)
    size = (gt.shape[1], gt.shape[0])
    if image.size != size and label_format.resize != "nearest":
        got = image.size
        image.close()
        raise InputError(f"{printable(path)}: prediction is {got[0]}x{got[1]} but the ground truth "
                         f"{printable(gt_path)} is {size[0]}x{size[1]} (width x height); pass --resize nearest "
                         "to resize predictions as the ADE20K devkit does")
    pred = _decode(image)  # checked whole, as load_pair's are
    return pred if pred.shape == gt.shape else _resize_nearest(pred, size)


def _load_triple(t: Triple, label_format: LabelFormat):
    pred_a, gt = load_pair(LabelPair(t.key, t.pred_a, t.gt), label_format)
    return pred_a, _load_second(t.pred_b, gt, t.gt, label_format), gt


def _load_dataset_triple(t: Triple, label_format: DatasetFormat):
    """(pred A, pred B, ground truth, instances) of one triple, the ground truth (and instances) decoded once."""
    pair_a = DatasetPair(t.key, t.pred_a, t.gt, t.instances)
    pred_a, gt, instances = label_format.load_pair(pair_a)
    pred_b = label_format.load_prediction(t.pred_b, gt, t.gt)
    return pred_a, pred_b, gt, instances


def compare_folders(triples: Sequence[Triple], label_format, *, threads: int = 1,
                    on_pair: Callable[[int], None] | None = None):
    """(A, B): both prediction sets scored in one pass over the ground truth, images in the same order.

    ``label_format``: a ``LabelFormat`` (two ``ImageStats``) or a ``DatasetFormat`` (two ``DatasetImageStats``).
    """
    if isinstance(label_format, DatasetFormat):
        a, b = DatasetImageStats(label_format), DatasetImageStats(label_format)
        for done, (t, (pred_a, pred_b, gt, instances)) in enumerate(
                _ahead(triples, lambda x: _load_dataset_triple(x, label_format), threads), start=1):
            a.add_pair(DatasetPair(t.key, t.pred_a, t.gt, t.instances), pred_a, gt, instances)
            b.add_pair(DatasetPair(t.key, t.pred_b, t.gt, t.instances), pred_b, gt, instances)
            if on_pair is not None:
                on_pair(done)
        return a, b
    a, b = image_stats_for(label_format), image_stats_for(label_format)
    for done, (t, (pred_a, pred_b, gt)) in enumerate(_ahead(triples, lambda x: _load_triple(x, label_format),
                                                            threads), start=1):
        _count(a, LabelPair(t.key, t.pred_a, t.gt), pred_a, gt, label_format)
        _count(b, LabelPair(t.key, t.pred_b, t.gt), pred_b, gt, label_format)
        if on_pair is not None:
            on_pair(done)
    return a, b


# -- a benchmark's files, image by image --------------------------------------------------------------

class DatasetImageStats:
    """``evaluate --dataset NAME`` keeping every image's counts: the dataset's own accumulator plus per-image records.

    The dataset-level numbers (the table, the official scores: Cityscapes'
    iIoU and category scores, COCO-Stuff's) come from the dataset's
    ``DatasetConfusionMatrix``, exactly as without per-image results.  Each
    image's counts are kept over the K classes the way that accumulator
    counts them: a prediction that is no class (a raw id without a class, e.g.
    a Cityscapes labelId ignored in evaluation) is a miss of the true class and
    nobody's false positive; they are held in an ``ImageStats`` of K + 1
    classes whose last class holds those predictions and is cut off whenever
    counts are read.  ``bootstrap_miou`` and ``compare`` resample these counts;
    the names and methods are those ``ImageStats`` offers to the CLI.
    """

    def __init__(self, label_format: DatasetFormat):
        self.label_format = label_format
        self.cm = label_format.accumulator(n_threads=1)  # one image is far cheaper to count than to decode
        k = label_format.num_classes
        self.num_classes = k
        self.class_names = tuple(label_format.dataset.class_names)
        self._void = k        # predictions that are no class
        self._not_evaluated = k + 1
        self._images = ImageStats(k + 1, ignore_index=self._not_evaluated, reduce_zero_label=False, n_threads=1)

    # -- counting ----------------------------------------------------------------------------------------
    def add_pair(self, pair: LabelPair, pred: np.ndarray, gt: np.ndarray, instances) -> None:
        """Count one decoded pair as the official files hold it (an InputError naming the file at fault)."""
        self.label_format.add_pair(self.cm, pair, pred, gt, instances)  # checks the labels, all or nothing
        pred_ids, gt_ids = self.label_format.class_ids(pred, gt)
        gt_ids = np.where(gt_ids >= 0, gt_ids, self._not_evaluated)
        pred_ids = np.where(pred_ids >= 0, pred_ids, self._void)
        self._images.update(pred_ids, gt_ids, name=pair.key)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def names(self) -> list:
        return self._images.names

    # -- the dataset's own numbers -----------------------------------------------------------------------
    @property
    def total(self) -> int:
        return self.cm.total

    @property
    def matrix(self) -> np.ndarray:
        return self.cm.matrix

    def compute(self, convention: str | None = None, beta: float = 1.0, **options):
        return self.cm.compute(convention, beta, **options)

    def class_matrix(self) -> np.ndarray:
        return self.cm.class_matrix()

    def official_scores(self) -> dict:
        return self.cm.official_scores()

    # -- per-image counts --------------------------------------------------------------------------------
    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-image (tp, fp, fn), each (N, K) int64 (predictions that are no class are misses only)."""
        k = self.num_classes
        return tuple(np.ascontiguousarray(a[:, :k]) for a in self._images.counts())

    def _float_counts(self):
        return tuple(a.astype(np.float64) for a in self.counts())

    def _left_out(self, convention: str) -> int | None:
        return left_out_class(convention, self.label_format.dataset.ignore_index, self.num_classes)

    def _miou(self, convention: str) -> float:
        """The dataset mIoU; under the official convention the official evaluation's own figure."""
        if convention == self.label_format.convention:
            official = self.label_format.official_metrics(self.cm)
            if "miou" in official:
                return float(official["miou"])
        return float(self.cm.compute(convention).miou)

    def pixels(self) -> np.ndarray:
        tp, _, fn = self.counts()
        return (tp + fn).sum(axis=1)

    def image_iou(self) -> np.ndarray:
        """(N, K) IoU of each class in each image; NaN where the class is in neither map (ImageStats' rule)."""
        return per_class_iou(*self.counts(), "mmseg")

    def image_miou(self) -> np.ndarray:
        iou = self.image_iou()
        present = ~np.isnan(iou)
        n = present.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.where(present, iou, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)

    def image_aacc(self) -> np.ndarray:
        tp, _, fn = self.counts()
        right, pixels = tp.sum(axis=1).astype(np.float64), (tp + fn).sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pixels > 0, right / np.maximum(pixels, 1), np.nan)

    # -- uncertainty -------------------------------------------------------------------------------------
    def bootstrap_miou(self, n_resamples: int = 1000, *, confidence: float = 0.95, convention: str | None = None,
                       seed=None):
        """Percentile bootstrap interval of the dataset mIoU, resampling images (ImageStats.bootstrap_miou's)."""
        from ..analysis.stats import ConfidenceInterval, _check_seed

        convention = check_convention(self.label_format.convention if convention is None else convention)
        n_resamples = check_resampling(n_resamples)
        confidence = check_confidence(confidence)
        if len(self) == 0:
            raise ValueError("no images accumulated")
        rng = np.random.default_rng(_check_seed(seed))
        samples = bootstrap_miou_samples(self._float_counts(), convention, n_resamples, rng, self._left_out(convention))
        low, high = percentile_interval(samples, confidence)
        return ConfidenceInterval(estimate=self._miou(convention), low=low, high=high, confidence=confidence,
                                  n_resamples=n_resamples, convention=convention)

    def check_same_images(self, other: DatasetImageStats) -> None:
        if not isinstance(other, DatasetImageStats) or other.label_format.dataset.name != self.label_format.dataset.name:
            raise TypeError("can only compare with the same dataset's DatasetImageStats")
        self._images.check_same_images(other._images)


# -- the per-image CSV --------------------------------------------------------------------------------

def _cell(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x)) if isinstance(x, (float, np.floating)) else str(x)


def per_image_csv(stats: ImageStats) -> str:
    """One row per image: image, pixels (evaluated), miou, aacc, iou_0 .. iou_{K-1}; NaN as an empty cell.

    The per-image values are each image's own (a class in neither map of the
    image is empty), the quantities behind the dataset-level bootstrap.  With
    a dataset (``DatasetImageStats``) the class columns are named
    ``iou_<class name>`` in class order.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    k = stats.num_classes
    names = getattr(stats, "class_names", None)  # a dataset's: iou_<class name>
    header = [f"iou_{c}" for c in range(k)] if names is None else [f"iou_{name}" for name in names]
    writer.writerow(["image", "pixels", "miou", "aacc", *header])
    iou = stats.image_iou()
    miou, aacc, pixels = stats.image_miou(), stats.image_aacc(), stats.pixels()
    for i, name in enumerate(stats.names):
        writer.writerow([str(name), int(pixels[i]), _cell(miou[i]), _cell(aacc[i]), *map(_cell, iou[i].tolist())])
    return out.getvalue()
