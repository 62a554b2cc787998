"""capjax: which candidate model ends up best, from a few early epochs, with honest uncertainty.

The public API is re-exported here; each name lives in the module named after its concept.
"""

from capjax.validation import CapjaxInputError

__version__ = "0.1.0"

__all__ = ["CapjaxInputError", "__version__"]
