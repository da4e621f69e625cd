"""Public path of the pure-NumPy reference (``ade20k_metrics.reference``); the code is core/reference.py."""
from .core.reference import *  # noqa: F401,F403
from .core.reference import __all__  # noqa: F401
