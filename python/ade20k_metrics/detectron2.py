"""Public path of the detectron2 evaluator (``ade20k_metrics.detectron2.SemSegEvaluator``); the code is
integrations/detectron2.py.  Importing it imports neither detectron2 nor torch.
"""
from .integrations.detectron2 import *  # noqa: F401,F403
from .integrations.detectron2 import __all__  # noqa: F401
