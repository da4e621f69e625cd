"""Public path of the Dask evaluation (``ade20k_metrics.dask``); the code is integrations/dask.py.

Importing it imports dask; ``import ade20k_metrics`` never does.
"""
from .integrations.dask import *  # noqa: F401,F403
from .integrations.dask import __all__  # noqa: F401
