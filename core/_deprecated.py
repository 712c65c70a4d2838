"""Old import paths kept for one release: each module re-exports its new home and warns once."""

from __future__ import annotations

import warnings


def moved(old: str, new: str) -> None:
    """Warn that module `old` moved to `new` (called at the old module's import)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in prismrag 0.3; import from {new} instead",
        DeprecationWarning,
        stacklevel=3,
    )
