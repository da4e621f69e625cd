"""Public path of the mmseg 1.x evaluator (``ade20k_metrics.mmseg.IoUMetric``); the code is integrations/mmseg.py.

Importing it imports mmengine (and torch) and registers "ADE20KIoUMetric" in
mmseg's METRICS registry; ``import ade20k_metrics`` never does.
"""
from .integrations.mmseg import *  # noqa: F401,F403
from .integrations.mmseg import __all__  # noqa: F401
