"""ADE20K SceneParsing (150 classes): class table, palette, bundled real sample.

The data come from the official devkit (BSD-3, see data/ade20k/LICENSE-sceneparsing.txt):
``classes150.csv`` (objectInfo150 with the devkit's 35 stuff / 115 thing split
and the color150 palette) and three validation annotations.  Annotation PNGs
hold 0 = "other" (not evaluated) and 1..150 = classes; ``reduce_zero_label``
turns that into train ids 0..149 with 0 ignored.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

NUM_CLASSES = 150
IGNORE_INDEX = 255


def _data_file(*parts: str):
    return resources.files(__package__).joinpath("data", "ade20k", *parts)


@dataclass(frozen=True)
class ClassTable:
    """One entry per class, indexed by train id (annotation label - 1)."""

    names: tuple[str, ...]
    full_names: tuple[str, ...]
    stuff: np.ndarray        # bool (150,): the devkit's stuff classes
    pixel_ratio: np.ndarray  # float (150,): share of all ADE20K pixels
    train_images: np.ndarray
    val_images: np.ndarray
    palette: np.ndarray      # uint8 (150, 3) RGB


@lru_cache(maxsize=None)
def classes() -> ClassTable:
    with _data_file("classes150.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows.sort(key=lambda r: int(r["train_id"]))
    if [int(r["train_id"]) for r in rows] != list(range(NUM_CLASSES)):
        raise RuntimeError("classes150.csv is damaged: train ids are not 0..149")
    return ClassTable(
        names=tuple(r["name"] for r in rows),
        full_names=tuple(r["full_name"] for r in rows),
        stuff=np.array([r["stuff"] == "1" for r in rows]),
        pixel_ratio=np.array([float(r["pixel_ratio"]) for r in rows]),
        train_images=np.array([int(r["train_images"]) for r in rows]),
        val_images=np.array([int(r["val_images"]) for r in rows]),
        palette=np.array([[int(r["r"]), int(r["g"]), int(r["b"])] for r in rows], dtype=np.uint8),
    )


def class_names() -> tuple[str, ...]:
    return classes().names


@lru_cache(maxsize=None)
def _sample_arrays() -> dict[str, np.ndarray]:
    with _data_file("sample", "annotations.npz").open("rb") as f, np.load(f) as z:
        return {name: z[name] for name in sorted(z.files)}


def sample_annotations() -> dict[str, np.ndarray]:
    """The three bundled validation annotations (uint8, 0 = other, 1..150), by image name.

    Decoded from the PNGs beside them, so no image library is needed.
    """
    return {name: a.copy() for name, a in _sample_arrays().items()}


def simulate_prediction(annotation: np.ndarray, seed: int = 0) -> np.ndarray:
    """A plausible model output for a ground-truth map, in the same 1..150 format.

    Boundaries shifted by a few pixels, one region given a confusable class,
    a small spurious blob of a class absent from the image, and "other" pixels
    given a neighbouring class, as a real model would.  Deterministic per seed.
    """
    rng = np.random.default_rng(seed)
    gt = np.asarray(annotation)
    h, w = gt.shape
    pred = np.roll(gt, (int(rng.integers(2, 6)), int(rng.integers(-5, 5))), axis=(0, 1)).copy()
    present = np.unique(gt[gt > 0])
    if present.size:
        victim = int(rng.choice(present))
        pred[(gt == victim) & (rng.random(gt.shape) < 0.6)] = (victim % NUM_CLASSES) + 1
    absent = np.setdiff1d(np.arange(1, NUM_CLASSES + 1), present)
    y, x = int(rng.integers(0, h - h // 8)), int(rng.integers(0, w - w // 8))
    pred[y:y + h // 10, x:x + w // 10] = int(rng.choice(absent))
    other = pred == 0
    if other.any():
        pred[other] = int(present[0]) if present.size else 1
    return pred.astype(np.uint8)


# The 75 classes with the largest pixel ratio are "frequent", the other 75 "rare":
# in classes150.csv the 75th has ratio 0.0011 and the 76th 0.0010, so the split is unambiguous.
FREQUENT_CLASSES = 75


def class_groups(n_frequent: int = FREQUENT_CLASSES) -> dict[str, np.ndarray]:
    """Boolean (150,) masks by train id: the devkit's 35 "stuff" and 115 "things", and the
    ``n_frequent`` classes with the most pixels ("frequent") against the rest ("rare")."""
    if isinstance(n_frequent, bool) or not isinstance(n_frequent, int):
        raise TypeError(f"n_frequent must be an int, got {type(n_frequent).__name__}")
    if not 0 < n_frequent < NUM_CLASSES:
        raise ValueError(f"n_frequent must be in [1, {NUM_CLASSES - 1}], got {n_frequent}")
    table = classes()
    by_pixels = np.argsort(-table.pixel_ratio, kind="stable")
    frequent = np.zeros(NUM_CLASSES, dtype=bool)
    frequent[by_pixels[:n_frequent]] = True
    return {"stuff": table.stuff.copy(), "things": ~table.stuff, "frequent": frequent, "rare": ~frequent}


def summary(metrics, *, n_frequent: int = FREQUENT_CLASSES) -> dict:
    """ADE20K report of a 150-class ``Metrics``: overall mIoU next to mIoU over class groups.

    Keys: convention, miou, miou_stuff, miou_things, miou_frequent, miou_rare,
    aacc, score.  Each group mIoU averages the group's classes under the
    metrics' own convention (``Metrics.group_miou``).
    """
    # Duck-typed: this module is data the metrics layer reads (class names), so it cannot import Metrics.
    if not (hasattr(metrics, "group_miou") and hasattr(metrics, "num_classes")):
        raise TypeError(f"summary needs a Metrics (e.g. cm.compute()), got {type(metrics).__name__}")
    if metrics.num_classes != NUM_CLASSES:
        raise ValueError(f"ADE20K has {NUM_CLASSES} classes, these metrics have {metrics.num_classes}")
    groups = class_groups(n_frequent)
    out = {"convention": metrics.convention, "miou": metrics.miou}
    for name in ("stuff", "things", "frequent", "rare"):
        out[f"miou_{name}"] = metrics.group_miou(groups[name])
    out["aacc"] = metrics.aacc
    out["score"] = metrics.score
    return out
