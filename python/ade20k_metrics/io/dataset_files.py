"""A benchmark's official folders: finding and pairing its files, decoding them, scoring the pairs.

What ``ade20k-metrics evaluate PRED GT --dataset NAME`` runs (and ``show``):

- Most datasets: both folders searched recursively (hidden entries skipped);
  files pair by their path relative to the folder without the suffix.  Ground
  truth in the dataset's official suffixes (ADE20K-847 / Context-459: .tif,
  .tiff or .png), predictions in any label format io/formats.py reads (.png,
  .tif, .tiff, .npy).  A JPEG where a label map should be is an error that
  says why, not a silently missing file.
- Cityscapes: ground truth is every ``*_gtFine_labelIds.png`` under GT (other
  files there are ignored) with its ``*_gtFine_instanceIds.png`` beside it;
  the prediction is the one ``<city>_<seq>_<frame>*.png`` anywhere under PRED
  (cityscapesScripts' getPrediction: none is a missing prediction, several an
  error); predictions that match no ground truth are ignored, as there.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from ..core import reference
from .dataset_eval import DatasetConfusionMatrix
from .formats import JPEG_REASON, JPEG_SUFFIXES, LABEL_SUFFIXES, read_label_file
from .label_files import InputError, LabelPair, Pairing
from .report import ClassInfo


@dataclass(frozen=True)
class DatasetPair(LabelPair):
    instances: Path | None = None  # Cityscapes' instanceIds file


@dataclass(frozen=True)
class DatasetFormat:
    """How ``evaluate --dataset`` reads one dataset's files (the counterpart of label_files.LabelFormat)."""

    dataset: object                # datasets.registry.Dataset
    pred_train_ids: bool = False   # predictions hold class ids 0..K-1
    pred_colors: bool = False      # predictions are colour-coded with the dataset's palette

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def convention(self) -> str:
        return self.dataset.convention

    @property
    def palette(self) -> np.ndarray:
        return self.dataset.palette

    def accumulator(self, n_threads: int | None = None) -> DatasetConfusionMatrix:
        return DatasetConfusionMatrix(self.dataset, pred_train_ids=self.pred_train_ids, n_threads=n_threads)

    def class_info(self) -> ClassInfo:
        return ClassInfo(self.dataset.class_names, self.dataset.stuff)

    def describe(self) -> dict:
        out = self.dataset.describe()
        if self.pred_train_ids:
            out["prediction_labels"] = self.dataset.encodings["train_ids"]
        if self.pred_colors:
            out["prediction_labels"] = "colour-coded with the dataset's palette"
        return out

    def official_metrics(self, cm: DatasetConfusionMatrix) -> dict:
        """The official evaluation's own figures under the report's metric names (fractions)."""
        name = self.dataset.name
        if name == "cityscapes":
            s = cm.official_scores()
            return {"miou": s["averageScoreClasses"], "iiou": s["averageScoreInstClasses"],
                    "category_miou": s["averageScoreCategories"], "category_iiou": s["averageScoreInstCategories"]}
        if name == "coco-stuff-171":
            s = cm.official_scores()
            return {"miou": s["miou"], "macc": s["macc"], "aacc": s["pacc"], "fwiou": s["fwiou"]}
        return {}

    # -- files ----------------------------------------------------------------------------------------
    def pair_folders(self, pred_dir, gt_dir) -> Pairing:
        if self.dataset.name == "cityscapes":
            return _pair_cityscapes(self.dataset, Path(pred_dir), Path(gt_dir))
        preds = _find(Path(pred_dir), (".png",) if self.pred_colors else LABEL_SUFFIXES)
        gts = _find(Path(gt_dir), self.dataset.gt_suffixes)
        keys = sorted(preds.keys() & gts.keys())
        return Pairing(pairs=tuple(DatasetPair(k, preds[k], gts[k]) for k in keys),
                       missing_pred=tuple(sorted(gts.keys() - preds.keys())),
                       missing_gt=tuple(sorted(preds.keys() - gts.keys())))

    def load_pair(self, pair: LabelPair) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(prediction, ground truth, instances or None) as the files hold them; sizes checked."""
        gt = read_label_file(pair.gt)
        pred = self.load_prediction(pair.pred, gt, pair.gt)
        instances = None
        if getattr(pair, "instances", None) is not None:
            instances = read_label_file(pair.instances)
            if instances.shape != gt.shape:
                raise InputError(f"{pair.instances}: is {instances.shape[1]}x{instances.shape[0]} but the ground "
                                 f"truth {pair.gt} is {gt.shape[1]}x{gt.shape[0]} (width x height)")
        return pred, gt, instances

    def load_prediction(self, path, gt: np.ndarray, gt_path) -> np.ndarray:
        """One prediction file of the decoded ground truth ``gt`` (read from ``gt_path``), its size checked."""
        ds = self.dataset
        if self.pred_colors:
            pred = read_label_file(path, colours=ds.colours, colour_values=ds.colour_values)
        else:
            pred = read_label_file(path)
        if pred.shape != gt.shape:
            raise InputError(f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]} but the ground truth "
                             f"{gt_path} is {gt.shape[1]}x{gt.shape[0]} (width x height)")
        return pred

    def add_pair(self, cm: DatasetConfusionMatrix, pair: LabelPair, pred, gt, instances) -> None:
        """Count one decoded pair, turning a refusal into an InputError that names the file at fault."""
        try:
            cm.update(pred, gt, instances=instances)
        except ValueError as e:
            text = str(e)
            if text.startswith("pred:"):
                where = pair.pred
            elif text.startswith("instance"):
                where = pair.instances
            else:
                where = pair.gt
            raise InputError(f"{where}: {text}") from None

    def class_ids(self, pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel (predicted class, true class) for pictures: -1 where not evaluated or no class."""
        ds = self.dataset
        counted = self.accumulator(1).counted_pred(pred).astype(np.int64)
        if ds.space == "raw":
            gt = gt.astype(np.int64)
            known = (gt >= 0) & (gt < ds.count_classes)
            if ds.ignore_index is not None:
                known &= gt != ds.ignore_index
            gt_ids = np.where(known, ds.gt_to_class[np.where(known, gt, 0)], -1)
            inside = (counted >= 0) & (counted < ds.count_classes)
            pred_ids = np.where(inside, ds.pred_to_class[np.where(inside, counted, 0)], -1)
            return np.where(pred_ids < ds.num_classes, pred_ids, -1), gt_ids
        gt_ids = reference.target_rows(gt, ds.num_classes, ds.ignore_index, ds.reduce_zero_label)
        return np.where((counted >= 0) & (counted < ds.num_classes), counted, -1), np.where(gt_ids >= 0, gt_ids, -1)


def dataset_format(name: str, *, pred_train_ids: bool = False, pred_colors: bool = False) -> DatasetFormat:
    from ..datasets import registry

    if pred_train_ids and pred_colors:
        raise ValueError("--pred-colors and --pred-train-ids exclude each other: colours decode to the "
                         "official prediction values")
    return DatasetFormat(registry.get(name), pred_train_ids=pred_train_ids, pred_colors=pred_colors)


# -- finding files ------------------------------------------------------------------------------------

def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to root, "/"-separated; path) of every file, sorted, hidden entries skipped."""
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                path = Path(dirpath, name)
                yield path.relative_to(root).as_posix(), path


def _find(root: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for relative, path in _walk(root):
        suffix = os.path.splitext(relative)[1].lower()
        if suffix in JPEG_SUFFIXES:
            raise InputError(f"{path}: a JPEG among the label maps; {JPEG_REASON}")
        if suffix not in suffixes:
            continue
        key = relative[: -len(suffix)]
        if key in found:
            raise InputError(f"{path}: same name as {found[key]} apart from the suffix")
        found[key] = path
    return found


def _pair_cityscapes(ds, pred_dir: Path, gt_dir: Path) -> Pairing:
    ending, instance_ending = ds.gt_pattern, ds.instance_pattern
    gts: dict[str, tuple[Path, Path]] = {}
    for relative, path in _walk(gt_dir):
        if not path.name.endswith(ending):
            continue
        key = path.name[: -len(ending)]
        instances = path.with_name(key + instance_ending)
        if not instances.is_file():
            raise InputError(f"{instances}: missing; cityscapesScripts reads the instance file beside {path.name} "
                             "for the instance-level scores")
        if key in gts:
            raise InputError(f"{path}: a second ground truth for {key} (the first is {gts[key][0]})")
        gts[key] = (path, instances)
    if not gts:
        return Pairing(pairs=(), missing_pred=(), missing_gt=())
    lengths = sorted({len(k) for k in gts})
    matches: dict[str, list[Path]] = {}
    for _, path in _walk(pred_dir):
        name = path.name
        for n in lengths:  # getPrediction's pattern "<city>_<seq>_<frame>*.png" for each ground truth
            key = name[:n]
            if key in gts and fnmatchcase(name, key + "*.png"):
                matches.setdefault(key, []).append(path)
    pairs, missing = [], []
    for key in sorted(gts):
        found = matches.get(key, [])
        if len(found) > 1:
            raise InputError(f"{found[1]}: found multiple predictions for ground truth {gts[key][0]} "
                             f"(also {found[0]}); cityscapesScripts takes exactly one file matching {key}*.png")
        if not found:
            missing.append(key)
            continue
        pairs.append(DatasetPair(key, found[0], gts[key][0], gts[key][1]))
    return Pairing(pairs=tuple(pairs), missing_pred=tuple(missing), missing_gt=())


# -- scoring the pairs --------------------------------------------------------------------------------

def _ordered(items: Sequence, work: Callable, workers: int, window: int) -> Iterator:
    """``work(item)`` for each item, done ahead by ``workers`` threads, yielded in order; at most
    ``window`` in flight (bounded memory); an error is raised when its item's turn comes."""
    if workers <= 1:
        for item in items:
            yield item, work(item)
        return
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ade20k-decode")
    in_flight: deque[tuple[object, Future]] = deque()
    upcoming = iter(items)
    try:
        for item in upcoming:
            in_flight.append((item, executor.submit(work, item)))
            if len(in_flight) >= window:
                break
        while in_flight:
            item, future = in_flight.popleft()
            result = future.result()
            following = next(upcoming, None)
            if following is not None:
                in_flight.append((following, executor.submit(work, following)))
            yield item, result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def evaluate_dataset_pairs(pairs: Sequence[LabelPair], label_format: DatasetFormat, *, threads: int | None = None,
                           on_pair: Callable[[int], None] | None = None) -> DatasetConfusionMatrix:
    """The dataset accumulator over all pairs, in order (InputError naming the first bad file)."""
    from ..core.threads import resolve_threads

    workers = resolve_threads(threads)
    cm = label_format.accumulator(n_threads=1)  # the decoders are the bound; see label_files.evaluate_pairs
    for done, (pair, (pred, gt, instances)) in enumerate(
            _ordered(pairs, label_format.load_pair, workers, 2 * workers), start=1):
        label_format.add_pair(cm, pair, pred, gt, instances)
        if on_pair is not None:
            on_pair(done)
    return cm
