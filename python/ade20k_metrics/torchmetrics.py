"""Public path of the torchmetrics adapter (``ade20k_metrics.torchmetrics``); the code is integrations/torchmetrics.py.

Importing it imports torch and torchmetrics; ``import ade20k_metrics`` never does.
"""
from .integrations.torchmetrics import *  # noqa: F401,F403
from .integrations.torchmetrics import __all__  # noqa: F401
