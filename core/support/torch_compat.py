"""Compatibility steps run right before heavy imports (torch, sentence-transformers, open_clip).

A torchvision wheel built for another torch (for instance a CUDA torchvision next to a CPU torch)
cannot load its C++ operators, and its import then fails with ``RuntimeError: operator
torchvision::nms does not exist``. transformers imports torchvision whenever it is installed, so
sentence-transformers and open_clip fail the same way. Declaring the two operator schemas that
torchvision's import insists on lets it import: image transforms work, detection ops stay
unavailable. A matching torch/torchvision pair never takes this path.
"""

from __future__ import annotations

import importlib.util
import sys
import threading

__all__ = ["ensure_torchvision_ops"]

_lock = threading.Lock()
_done = False
_library: object | None = None  # the torch.library.Library holding the declared schemas
declared = False
"""True once this module had to declare the torchvision schemas (for diagnostics)."""

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a None entry in sys.modules, or a broken parent
        return False


def _missing_ops_error(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "torchvision::" in str(exc) and "does not exist" in str(exc)


def _declare_schemas() -> None:
    global _library, declared
    import torch

    lib = torch.library.Library("torchvision", "DEF")  # kept alive in _library: dropping it undoes the schemas
    for schema in _SCHEMAS:
        name = schema.split("(", 1)[0]
        try:
            getattr(torch.ops.torchvision, name)
        except (AttributeError, RuntimeError):
            lib.define(schema)
    _library, declared = lib, True


def ensure_torchvision_ops() -> None:
    """Make ``import torchvision`` (and what imports it) work; a no-op when it already does.

    Does nothing when torchvision is not installed. Otherwise imports torchvision; only when that
    fails because its operators are missing does it declare their schemas and import it again.
    Idempotent and thread-safe.
    """
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        if not _installed("torchvision"):
            _done = True
            return
        try:
            import torchvision  # noqa: F401
        except ImportError:
            return  # torch itself is missing: the caller's own import reports it
        except RuntimeError as exc:
            if not _missing_ops_error(exc):
                raise
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]  # the failed import left half-initialised modules behind
            _declare_schemas()
            import torchvision  # noqa: F401
        _done = True
