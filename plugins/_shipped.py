"""Private: models that pip packages ship, for the plugins' `resolve_model` hooks."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Collection


def shipped_model(name: str, ids: Collection[str], package: str) -> str | None:
    """The model folder that `package` ships (its `get_model_path()`) when `name` is one of the
    model ids it serves and the package is installed; None otherwise."""
    if name not in ids or importlib.util.find_spec(package) is None:
        return None
    path = importlib.import_module(package).get_model_path()
    return str(path) if path.exists() else None
