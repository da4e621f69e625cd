"""ade20k_metrics: fast, exact semantic-segmentation metrics for ADE20K and any label-map benchmark.

    >>> import ade20k_metrics as am
    >>> cm = am.ConfusionMatrix(150, reduce_zero_label=True)
    >>> cm.update(pred, target)          # doctest: +SKIP
    >>> cm.compute().miou                # doctest: +SKIP

This file only gathers the public names; docs/architecture.md says which
subpackage holds what.
"""
from __future__ import annotations

from ._version import __version__
from .core import _core, reference
from .core.confusion import ConfusionMatrix, confusion_matrix
from .core.boundary import boundary_iou
from .core.kernel import openmp_enabled, simd
from .core.threads import default_threads
from .metrics.compute import CONVENTIONS, Metrics, compute_metrics, explain
from .analysis import stats
from .analysis.stats import ImageStats
from .datasets import ade20k
from . import compat, datasets

__all__ = [
    "CONVENTIONS",
    "ConfusionMatrix",
    "ImageStats",
    "Metrics",
    "ade20k",
    "boundary_iou",
    "compat",
    "compute_metrics",
    "confusion_matrix",
    "datasets",
    "default_threads",
    "explain",
    "openmp_enabled",
    "reference",
    "simd",
    "stats",
]
