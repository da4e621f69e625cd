"""Public path of the drop-ins for other libraries' functions (``ade20k_metrics.compat``); code in integrations/.

``ade20k_metrics.compat.hf_mean_iou`` is HF evaluate's ``mean_iou``;
``ade20k_metrics.compat.mmseg`` holds mmseg 0.30's functional metrics API.
"""
from ..integrations.hf import *  # noqa: F401,F403
from ..integrations.hf import __all__  # noqa: F401
