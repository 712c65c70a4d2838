"""Deprecated: moved to `prismrag.contracts` (this alias goes in prismrag 0.3)."""

from ._deprecated import moved
from .contracts import *  # noqa: F403
from .contracts import __all__  # noqa: F401

moved("prismrag.components", "prismrag.contracts")
