"""The dataset registry: one ``Dataset`` description per benchmark, read from the data files.

Every fact (class names, palettes, id tables, ignore values, the official file
layout, the sources) lives in ``data/<name>/`` as CSV and JSON, each file
citing where it was transcribed from; this module only reads them and derives
the lookup tables the evaluation needs.

Two ways of counting, after the official evaluations:

``space = "train"``
    The files' labels are the class ids (or ADE20K's ids + 1), so the
    accumulator counts a (K, K) matrix of class ids, as every peer does.
``space = "raw"``
    The official evaluation counts a matrix over the dataset's own ids and
    derives the class scores from it (cityscapesScripts: 34 x 34 labelIds;
    COCO-Stuff's evaluate_performance.py: 182 x 182 stuffthingmaps ids).  The
    accumulator counts that same matrix, so a prediction of an id that is no
    class (Cityscapes' void labels, COCO's 11 ids without annotations) is, as
    there, a miss of the true class and nobody's false positive.
    ``gt_to_class`` / ``pred_to_class`` project it onto the K classes (a
    prediction column ``K`` collects those misses).

``Dataset.confusion_matrix()`` builds the accumulator, which needs the
counting layer above this one: the package face binds its factory once at
import (``bind_accumulator``), so this bottom layer names no module above it
(docs/architecture.md, "The face").
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np

from . import ade20k

# Values of the lookup tables below that are not a class or a counted id.
INVALID = -1      # pred tables: a value the official format never holds (an error)
NOT_EVALUATED = -1  # gt_to_class: a counted ground-truth id whose pixels are not evaluated

NAMES = ("ade20k", "ade20k-847", "cityscapes", "pascal-voc", "pascal-context-59", "pascal-context-459",
         "coco-stuff-171", "mapillary-vistas")


@dataclass(frozen=True)
class RawLabel:
    """One id of a dataset's own numbering (``space = "raw"`` datasets)."""

    id: int
    name: str
    class_id: int            # 0..K-1, or -1: not one of the evaluated classes
    category: str | None = None
    has_instances: bool = False
    ignore_in_eval: bool = False


@dataclass(frozen=True, eq=False)
class Dataset:
    """What an evaluation needs to know about one benchmark's files.

    ``num_classes``, ``class_names``, ``palette`` ((K, 3) uint8 RGB) describe
    the K evaluated classes; ``things`` (bool (K,)) is the dataset's own
    thing/stuff split where it defines one (``stuff`` is its complement), else
    None.  ``convention`` is the official evaluation's convention for the means.
    The rest says how the official files encode labels (see the module docstring).
    """

    name: str
    title: str
    num_classes: int
    class_names: tuple[str, ...]
    palette: np.ndarray = field(repr=False)
    things: np.ndarray | None = field(repr=False)
    convention: str
    space: str                                   # "train" or "raw"
    count_classes: int                           # size of the counted (square) matrix
    ignore_index: int | None                     # ground-truth value never counted
    reduce_zero_label: bool                      # ADE20K: 0 = other, k -> k - 1
    pred_official: np.ndarray | None = field(repr=False)   # official prediction value -> counted id
    pred_train_ids: np.ndarray | None = field(repr=False)  # class id -> counted id (--pred-train-ids)
    gt_to_class: np.ndarray | None = field(repr=False)     # raw space: counted gt id -> class or -1
    pred_to_class: np.ndarray | None = field(repr=False)   # raw space: counted pred id -> class or K
    colours: np.ndarray = field(repr=False)                # (N, 3) colours of colour-coded predictions
    colour_values: np.ndarray = field(repr=False)          # (N,) the official prediction value of each
    gt_suffixes: tuple[str, ...]
    pred_suffixes: tuple[str, ...]
    gt_pattern: str | None                       # the ground-truth files' name ending (Cityscapes)
    instance_pattern: str | None                 # the instance files' name ending (Cityscapes)
    gt_folder: str | None                        # the official ground-truth folder, for messages
    encodings: dict = field(repr=False)          # human-readable: ground_truth, prediction, train_ids
    sources: tuple[str, ...] = field(repr=False)
    raw_labels: tuple[RawLabel, ...] = field(repr=False, default=())
    categories: tuple[str, ...] | None = field(repr=False, default=None)  # per class (Cityscapes)
    instance_sizes: dict = field(repr=False, default_factory=dict)      # class name -> average size
    gt_absent_ids: tuple[int, ...] = ()          # counted ids the official ground truth never holds (an error)
    notes: tuple[str, ...] = field(repr=False, default=())

    @property
    def stuff(self) -> np.ndarray | None:
        return None if self.things is None else ~self.things

    @property
    def void_column(self) -> bool:
        """Whether predictions can be a miss that is nobody's false positive (raw-space datasets)."""
        return self.space == "raw"

    def describe(self) -> dict:
        """The settings of an evaluation on this dataset, for reports (plain types)."""
        return {
            "dataset": self.name,
            "num_classes": self.num_classes,
            "ground_truth_labels": self.encodings.get("ground_truth"),
            "prediction_labels": self.encodings.get("prediction"),
            "official_convention": self.convention,
        }

    def confusion_matrix(self, *, pred_train_ids: bool = False, n_threads: int | None = None):
        """An accumulator that takes this dataset's official files' labels as they are.

        ``update(pred, target)`` takes the ground truth as the official files
        hold it and predictions in the official prediction format (or class ids
        0..K-1 with ``pred_train_ids=True``); ``compute()`` gives ``Metrics``
        over the K classes under the official convention.  Cityscapes' takes
        ``update(pred, target, instances=...)`` for the instance-level scores.
        """
        if _ACCUMULATOR is None:  # only if the package face was bypassed
            raise RuntimeError("the dataset accumulator is not bound; import ade20k_metrics first")
        return _ACCUMULATOR(self, pred_train_ids=pred_train_ids, n_threads=n_threads)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {self.num_classes} classes: {self.title})"


_ACCUMULATOR: Callable | None = None


def bind_accumulator(factory: Callable) -> None:
    """Set what ``Dataset.confusion_matrix`` builds (called once, by the package face)."""
    global _ACCUMULATOR
    _ACCUMULATOR = factory


def names() -> tuple[str, ...]:
    """The registered datasets' names."""
    return NAMES


def get(name: str) -> Dataset:
    """The description of dataset ``name`` (one of ``names()``)."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(NAMES)}")
    return _load(name)


# -- reading the data files ---------------------------------------------------------------------------

def _data(name: str, file: str) -> str:
    return resources.files(__package__).joinpath("data", name, file).read_text(encoding="utf-8")


def _rows(name: str, file: str) -> list[dict]:
    """A data CSV's rows; lines starting with '#' are its citation header."""
    text = "".join(line for line in io.StringIO(_data(name, file)) if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(text)))


def _meta(name: str) -> dict:
    return json.loads(_data(name, "dataset.json"))


def _colours(rows: list[dict]) -> np.ndarray:
    return np.array([[int(r["r"]), int(r["g"]), int(r["b"])] for r in rows], dtype=np.uint8).reshape(-1, 3)


def _frozen(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.flags.writeable = False
    return a


def _table(size: int, pairs) -> np.ndarray:
    table = np.full(size, INVALID, dtype=np.int64)
    for k, v in pairs:
        table[k] = v
    return table


def _build(meta: dict, *, class_names, palette, things, count_classes, ignore_index, reduce_zero_label=False,
           pred_official=None, pred_train_ids=None, gt_to_class=None, pred_to_class=None, colours=None,
           colour_values=None, **extra) -> Dataset:
    k = len(class_names)
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    if palette.shape != (k, 3):
        raise RuntimeError(f"{meta['name']}: palette has shape {palette.shape}, expected ({k}, 3)")
    if colours is None:  # colour-coded predictions hold the class colours, decoded to the official values
        colours, colour_values = palette, np.arange(k, dtype=np.int64)
    gt, pred = meta["ground_truth"], meta["prediction"]
    encodings = {"ground_truth": gt["encoding"], "prediction": pred["encoding"],
                 "train_ids": pred.get("train_ids", f"0..{k - 1}")}
    return Dataset(
        name=meta["name"], title=meta["title"], num_classes=k, class_names=tuple(class_names),
        palette=_frozen(palette), things=_frozen(things), convention=meta["convention"], space=meta["space"],
        count_classes=count_classes, ignore_index=ignore_index, reduce_zero_label=reduce_zero_label,
        pred_official=_frozen(pred_official), pred_train_ids=_frozen(pred_train_ids),
        gt_to_class=_frozen(gt_to_class), pred_to_class=_frozen(pred_to_class),
        colours=_frozen(np.ascontiguousarray(colours, dtype=np.uint8)),
        colour_values=_frozen(np.asarray(colour_values, dtype=np.int64)),
        gt_suffixes=tuple(gt["suffixes"]), pred_suffixes=tuple(pred["suffixes"]),
        gt_pattern=gt.get("pattern"), instance_pattern=gt.get("instances"), gt_folder=gt.get("folder"),
        encodings=encodings, sources=tuple(meta["sources"]),
        notes=tuple(v for key, v in meta.items() if key.endswith("_note")), **extra)


@lru_cache(maxsize=None)
def _load(name: str) -> Dataset:
    meta = _meta(name)
    return _LOADERS[name](meta)


def _ade20k(meta: dict) -> Dataset:
    table = ade20k.classes()
    k = ade20k.NUM_CLASSES
    # Official predictions hold 1..150; 0 is not a class.
    pred = _table(k + 1, ((v, v - 1) for v in range(1, k + 1)))
    return _build(meta, class_names=table.names, palette=table.palette, things=~table.stuff, count_classes=k,
                  ignore_index=meta["ground_truth"]["ignore_index"], reduce_zero_label=True, pred_official=pred,
                  colours=table.palette, colour_values=np.arange(1, k + 1))


def _plain(meta: dict) -> Dataset:
    """Datasets whose files hold the class ids themselves (train space, no id table)."""
    rows = _rows(meta["name"], meta["classes"])
    if [int(r["train_id"]) for r in rows] != list(range(len(rows))):
        raise RuntimeError(f"{meta['name']}: {meta['classes']} is damaged: train ids are not 0..K-1")
    return _build(meta, class_names=[r["name"] for r in rows], palette=_colours(rows), things=None,
                  count_classes=len(rows), ignore_index=meta["ground_truth"]["ignore_index"])


def _mapillary(meta: dict) -> Dataset:
    rows = _rows(meta["name"], meta["classes"])
    evaluated = [r for r in rows if r["evaluate"] == "1"]
    if [int(r["id"]) for r in evaluated] != list(range(len(evaluated))):
        raise RuntimeError("mapillary-vistas: classes.csv is damaged: evaluated ids are not 0..64")
    return _build(meta, class_names=[r["readable"] for r in evaluated], palette=_colours(evaluated),
                  things=np.array([r["instances"] == "1" for r in evaluated]), count_classes=len(evaluated),
                  ignore_index=meta["ground_truth"]["ignore_index"])


def _cityscapes(meta: dict) -> Dataset:
    rows = _rows(meta["name"], meta["classes"])
    labels = [RawLabel(id=int(r["id"]), name=r["name"],
                       class_id=int(r["train_id"]) if r["ignore_in_eval"] == "0" else -1,
                       category=r["category"], has_instances=r["has_instances"] == "1",
                       ignore_in_eval=r["ignore_in_eval"] == "1") for r in rows]
    counted = [lab for lab in labels if lab.id >= 0]   # license plate (id -1) is in no file
    ids = [lab.id for lab in counted]
    if ids != list(range(len(ids))):
        raise RuntimeError("cityscapes: labels.csv is damaged: labelIds are not 0..33")
    r = len(ids)
    evaluated = sorted((lab for lab in counted if lab.class_id >= 0), key=lambda lab: lab.class_id)
    k = len(evaluated)
    if [lab.class_id for lab in evaluated] != list(range(k)):
        raise RuntimeError("cityscapes: labels.csv is damaged: trainIds of the evaluated labels are not 0..K-1")
    by_id = {int(row["id"]): row for row in rows}
    gt_to_class = np.array([lab.class_id for lab in counted], dtype=np.int64)
    pred_to_class = np.where(gt_to_class >= 0, gt_to_class, k)
    # trainId -> labelId as cityscapesScripts' trainId2label does (the first label listed wins):
    # 0..18 -> their label, 255 -> "unlabeled" (0), a void prediction.
    train_to_id = {}
    for lab, row in zip(labels, rows):
        train_to_id.setdefault(int(row["train_id"]), lab.id)
    pred_train = _table(256, [(t, train_to_id[t]) for t in range(k)] + [(255, train_to_id[255])])
    # Colour-coded predictions: each colour to the first labelId that has it, evaluated labels first
    # (pole and polegroup share one colour, so do car and license plate): a void colour is a void prediction.
    colours, values, seen = [], [], set()
    for lab in sorted(counted, key=lambda lab: (lab.class_id < 0, lab.id)):
        rgb = tuple(int(by_id[lab.id][c]) for c in "rgb")
        if rgb not in seen:
            seen.add(rgb)
            colours.append(rgb)
            values.append(lab.id)
    sizes = {row["name"]: float(row["avg_size"]) for row in _rows(meta["name"], "instance_sizes.csv")}
    return _build(meta, class_names=[lab.name for lab in evaluated],
                  palette=np.array([[int(by_id[lab.id][c]) for c in "rgb"] for lab in evaluated]),
                  things=np.array([lab.has_instances for lab in evaluated]), count_classes=r,
                  ignore_index=None, pred_official=None, pred_train_ids=pred_train, gt_to_class=gt_to_class,
                  pred_to_class=pred_to_class, colours=np.array(colours), colour_values=np.array(values),
                  raw_labels=tuple(labels), categories=tuple(lab.category for lab in evaluated),
                  instance_sizes=sizes)


def _coco_stuff(meta: dict) -> Dataset:
    rows = _rows(meta["name"], meta["classes"])
    if [int(r["png_id"]) for r in rows] != list(range(len(rows))):
        raise RuntimeError("coco-stuff-171: labels.csv is damaged: png ids are not 0..181")
    r = len(rows)
    classes = [row for row in rows if int(row["train_id"]) != 255]
    k = len(classes)
    if [int(row["train_id"]) for row in classes] != list(range(k)):
        raise RuntimeError("coco-stuff-171: labels.csv is damaged: train ids are not 0..170")
    gt_to_class = np.array([int(row["train_id"]) if int(row["train_id"]) != 255 else NOT_EVALUATED for row in rows])
    pred_to_class = np.where(gt_to_class >= 0, gt_to_class, k)
    pred_train = _table(k, ((int(row["train_id"]), int(row["png_id"])) for row in classes))
    labels = tuple(RawLabel(id=int(row["png_id"]), name=row["name"], class_id=int(gt_to_class[i]))
                   for i, row in enumerate(rows))
    return _build(meta, class_names=[row["name"] for row in classes], palette=_colours(classes),
                  things=np.array([row["kind"] == "thing" for row in classes]), count_classes=r,
                  ignore_index=meta["ground_truth"]["ignore_index"], pred_official=None, pred_train_ids=pred_train,
                  gt_to_class=gt_to_class, pred_to_class=pred_to_class, colours=_colours(classes),
                  colour_values=np.array([int(row["png_id"]) for row in classes]), raw_labels=labels,
                  gt_absent_ids=tuple(int(i) for i in np.flatnonzero(gt_to_class < 0)))


_LOADERS = {
    "ade20k": _ade20k,
    "ade20k-847": _plain,
    "cityscapes": _cityscapes,
    "pascal-voc": _plain,
    "pascal-context-59": _plain,
    "pascal-context-459": _plain,
    "coco-stuff-171": _coco_stuff,
    "mapillary-vistas": _mapillary,
}
