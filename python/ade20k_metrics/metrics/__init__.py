"""Metrics from a confusion matrix: pure NumPy arithmetic, the four conventions, ``explain``."""
from .compute import CONVENTIONS, Explanation, Metrics, check_convention, compute_metrics, explain

__all__ = ["CONVENTIONS", "Explanation", "Metrics", "check_convention", "compute_metrics", "explain"]
