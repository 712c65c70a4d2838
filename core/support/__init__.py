"""Helpers a plugin may use: offline-first model resolution and loading, the torch
compatibility step, text chunking. Like `prismrag.contracts`, this is public API."""

from __future__ import annotations

from .chunking import (
    ChunkParams,
    TokenStarts,
    chunk_text,
    heading_path,
    markdown_headings,
    tokenizer_starts,
)
from .locks import FolderLock, StoreBusyError
from .models import (
    HF_MODEL_FILES,
    LoadOnce,
    bound_hub_timeouts,
    check_local_model,
    import_optional,
    is_local,
    is_offline,
    missing_dependency,
    model_errors,
    probe_hub,
    resolve_model_path,
    torch_device,
)
from .torch_compat import ensure_torchvision_ops

__all__ = [
    "HF_MODEL_FILES", "check_local_model", "torch_device",
    "ChunkParams", "FolderLock", "TokenStarts", "LoadOnce", "StoreBusyError", "bound_hub_timeouts", "chunk_text", "ensure_torchvision_ops", "heading_path", "import_optional", "is_local",
    "is_offline", "markdown_headings", "missing_dependency", "model_errors", "probe_hub", "resolve_model_path", "tokenizer_starts",
]
