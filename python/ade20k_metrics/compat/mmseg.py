"""Public path of mmseg 0.30's functional metrics (``ade20k_metrics.compat.mmseg``); code in
integrations/mmseg_functional.py.  NumPy only: importing it imports neither mmseg nor torch.
"""
from ..integrations.mmseg_functional import *  # noqa: F401,F403
from ..integrations.mmseg_functional import __all__  # noqa: F401
