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


def evaluate_per_image(pairs: Sequence[LabelPair], label_format: LabelFormat, *, threads: int = 1,
                       on_pair: Callable[[int], None] | None = None) -> ImageStats:
    """Every pair's counts, named by its key (raises InputError naming the first bad file, in order)."""
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


def compare_folders(triples: Sequence[Triple], label_format: LabelFormat, *, threads: int = 1,
                    on_pair: Callable[[int], None] | None = None) -> tuple[ImageStats, ImageStats]:
    """(A, B): both prediction sets scored in one pass over the ground truth, images in the same order."""
    a, b = image_stats_for(label_format), image_stats_for(label_format)
    for done, (t, (pred_a, pred_b, gt)) in enumerate(_ahead(triples, lambda x: _load_triple(x, label_format),
                                                            threads), start=1):
        _count(a, LabelPair(t.key, t.pred_a, t.gt), pred_a, gt, label_format)
        _count(b, LabelPair(t.key, t.pred_b, t.gt), pred_b, gt, label_format)
        if on_pair is not None:
            on_pair(done)
    return a, b


# -- the per-image CSV --------------------------------------------------------------------------------

def _cell(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x)) if isinstance(x, (float, np.floating)) else str(x)


def per_image_csv(stats: ImageStats) -> str:
    """One row per image: image, pixels (evaluated), miou, aacc, iou_0 .. iou_{K-1}; NaN as an empty cell.

    The per-image values are each image's own (a class in neither map of the
    image is empty), the quantities behind the dataset-level bootstrap.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    k = stats.num_classes
    writer.writerow(["image", "pixels", "miou", "aacc", *[f"iou_{c}" for c in range(k)]])
    iou = stats.image_iou()
    miou, aacc, pixels = stats.image_miou(), stats.image_aacc(), stats.pixels()
    for i, name in enumerate(stats.names):
        writer.writerow([str(name), int(pixels[i]), _cell(miou[i]), _cell(aacc[i]), *map(_cell, iou[i].tolist())])
    return out.getvalue()
