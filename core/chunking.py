"""Deprecated: moved to `prismrag.support.chunking` (this alias goes in prismrag 0.3)."""

from ._deprecated import moved
from .support.chunking import *  # noqa: F403
from .support.chunking import __all__  # noqa: F401

moved("prismrag.chunking", "prismrag.support.chunking")
