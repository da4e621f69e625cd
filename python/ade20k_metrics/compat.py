"""Public path of the drop-ins for other libraries' functions (``ade20k_metrics.compat``); code in integrations/."""
from .integrations.hf import *  # noqa: F401,F403
from .integrations.hf import __all__  # noqa: F401
