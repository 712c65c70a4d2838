"""Deprecated: moved to `prismrag.support.models` (this alias goes in prismrag 0.3)."""

from ._deprecated import moved
from .support.models import *  # noqa: F403
from .support.models import __all__  # noqa: F401

moved("prismrag.models", "prismrag.support.models")
