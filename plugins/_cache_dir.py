"""Private: the folder the plugins keep their caches in (ONNX exports, transcripts)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The embedding cache's folder: `$PRISMRAG_CACHE_DIR`, else `prismrag` under
    `$XDG_CACHE_HOME` or `~/.cache`."""
    if os.environ.get("PRISMRAG_CACHE_DIR"):
        return Path(os.environ["PRISMRAG_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prismrag"
