"""Metrics from a confusion matrix."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

CONVENTIONS = ("mmseg",)


@dataclass(frozen=True)
class Metrics:
    """Dataset-level metrics; fractions in [0, 1], NaN where undefined under the convention."""

    convention: str
    iou: np.ndarray = field(repr=False)
    acc: np.ndarray = field(repr=False)
    miou: float
    macc: float
    aacc: float

    def to_dict(self) -> dict:
        return {
            "convention": self.convention,
            "miou": self.miou,
            "macc": self.macc,
            "aacc": self.aacc,
            "iou": self.iou.tolist(),
            "acc": self.acc.tolist(),
        }


def _nanmean(x: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(x)) if x.size else float("nan")


def compute_metrics(matrix, *, convention: str = "mmseg", beta: float = 1.0) -> Metrics:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got shape {m.shape}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose from {CONVENTIONS}")
    m = m.astype(np.float64)
    tp = np.diag(m)
    gt = m.sum(axis=1)
    pr = m.sum(axis=0)
    union = gt + pr - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    total = gt.sum()
    aacc = float(tp.sum() / total) if total > 0 else float("nan")
    return Metrics(convention=convention, iou=iou, acc=acc, miou=_nanmean(iou), macc=_nanmean(acc), aacc=aacc)
