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
from .metrics.compute import (CONVENTIONS, Metrics, compute_metrics, compute_metrics_from_areas,
                              compute_metrics_from_counts, explain, normalize_matrix)
from .metrics.shift import LabelShiftWarning
from .analysis import stats
from .analysis.stats import ImageStats
from .datasets import ade20k
from . import compat, datasets
from .datasets import registry as _registry
from .io.dataset_eval import DatasetConfusionMatrix as _DatasetConfusionMatrix

# The one arrow that runs up the layers, drawn here and nowhere else: the datasets' descriptions (the
# bottom layer) build their accumulator, which counts with core (docs/architecture.md, "The face").
_registry.bind_accumulator(_DatasetConfusionMatrix)

__all__ = [
    "CONVENTIONS",
    "ConfusionMatrix",
    "ImageStats",
    "LabelShiftWarning",
    "Metrics",
    "ade20k",
    "boundary_iou",
    "compat",
    "compute_metrics",
    "compute_metrics_from_areas",
    "compute_metrics_from_counts",
    "confusion_matrix",
    "datasets",
    "default_threads",
    "explain",
    "normalize_matrix",
    "openmp_enabled",
    "reference",
    "simd",
    "stats",
]
