"""ade20k_metrics: fast, exact semantic-segmentation metrics for ADE20K and any label-map benchmark.

    >>> import ade20k_metrics as am
    >>> cm = am.ConfusionMatrix(150, reduce_zero_label=True)
    >>> cm.update(pred, target)          # doctest: +SKIP
    >>> cm.compute().miou                # doctest: +SKIP
"""
from __future__ import annotations

from . import _core, reference
from ._threads import default_threads
from .confusion import ConfusionMatrix, confusion_matrix
from .metrics import CONVENTIONS, Metrics, compute_metrics, explain
from . import compat, stats
from .stats import ImageStats

__version__ = "0.1.0"

__all__ = [
    "CONVENTIONS",
    "ConfusionMatrix",
    "ImageStats",
    "Metrics",
    "compat",
    "compute_metrics",
    "confusion_matrix",
    "default_threads",
    "explain",
    "openmp_enabled",
    "reference",
    "simd",
    "stats",
]


def openmp_enabled() -> bool:
    """Whether the installed kernel was built with OpenMP (else it runs on one thread)."""
    return bool(_core.openmp_enabled())


def simd() -> str:
    """The vector instruction set the kernel picked on this CPU ("avx512bw", "avx2", "neon" or "portable")."""
    return str(_core.simd())
