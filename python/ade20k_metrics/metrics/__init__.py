"""Metrics from a confusion matrix: pure NumPy arithmetic, the four conventions, ``explain``, label shifts."""
from .compute import (CONVENTIONS, Explanation, Metrics, check_convention, compute_metrics,
                      compute_metrics_from_areas, compute_metrics_from_counts, explain, normalize_matrix)
from .shift import LabelShiftWarning, label_shift

__all__ = ["CONVENTIONS", "Explanation", "LabelShiftWarning", "Metrics", "check_convention", "compute_metrics",
           "compute_metrics_from_areas", "compute_metrics_from_counts", "explain", "label_shift", "normalize_matrix"]
