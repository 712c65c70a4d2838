"""Deprecated: moved to `prismrag.support.torch_compat` (this alias goes in prismrag 0.3)."""

from ._deprecated import moved
from .support.torch_compat import *  # noqa: F403
from .support.torch_compat import __all__  # noqa: F401

moved("prismrag._compat", "prismrag.support.torch_compat")
