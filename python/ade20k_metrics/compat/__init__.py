"""Public path of the drop-ins for other libraries' functions (``ade20k_metrics.compat``); code in integrations/.

``hf_mean_iou`` is HF evaluate's ``mean_iou``; ``hf_compute_metrics`` a
``compute_metrics`` for HF transformers' Trainer (low-resolution logits in,
the same dict out); ``ade20k_metrics.compat.mmseg`` holds mmseg 0.30's
functional metrics API.
"""
from ..integrations.hf import *  # noqa: F401,F403
from ..integrations.hf import __all__ as _hf_all
from ..integrations.hf_trainer import HFSegmentationMetrics, hf_compute_metrics  # noqa: F401

__all__ = [*_hf_all, "HFSegmentationMetrics", "hf_compute_metrics"]
