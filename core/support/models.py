"""Finding model files offline-first: a local path, a plugin that ships the model, the HF cache.

Encoders call `resolve_model_path` before loading a model and load whatever it returns inside
`model_errors`, so a model that cannot be had fails at once with `ModelNotAvailableError`, never
with a hang or a stack of hub exceptions.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..contracts import Context
from ..contracts.lazy import LoadOnce
from ..errors import MissingDependencyError, ModelNotAvailableError, PrismError

__all__ = [
    "HF_MODEL_FILES", "LoadOnce", "bound_hub_timeouts", "check_local_model", "import_optional", "is_local", "is_offline",
    "missing_dependency", "model_errors", "probe_hub", "resolve_model_path", "torch_device",
]

OFFLINE_ENVS = ("PRISMRAG_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Any of these set to a true value means: never reach a model hub."""

HUB_TIMEOUTS = {"HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "30"}
"""Seconds the hub client may wait, set when the user has not chosen values."""

PROBE_TIMEOUT_ENV = "PRISMRAG_HUB_PROBE_TIMEOUT"
PROBE_TIMEOUT = 5.0
"""Seconds one request asking the hub whether a model exists may take (before any download)."""

_TRUE = {"1", "true", "yes", "on"}

HF_MODEL_FILES = ("config.json", "modules.json")
"""A Hugging Face model folder holds one of these: `config.json` (transformers) or `modules.json`
(sentence-transformers)."""

T = TypeVar("T")



def is_offline() -> bool:
    """True when the environment forbids reaching a model hub."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in OFFLINE_ENVS)


def missing_dependency(component: str, module: str, extra: str) -> MissingDependencyError:
    """The error for an optional dependency that failed to import (raise it `from` the ImportError)."""
    return MissingDependencyError(component, module, extra)


def import_optional(module: str, component: str, extra: str, package: str | None = None) -> Any:
    """Import an optional dependency; a missing one (or a missing dependency of it) raises
    `MissingDependencyError` with the pip extra that brings it. Other import failures propagate."""
    if not _installed(module):
        raise missing_dependency(component, package or module, extra)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != module.split(".")[0] and not _installed(missing):
            raise missing_dependency(component, missing, extra) from exc
        raise


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def bound_hub_timeouts() -> None:
    """Make hub requests give up within seconds unless the user set their own timeouts."""
    constants = sys.modules.get("huggingface_hub.constants")
    for name, value in HUB_TIMEOUTS.items():
        if name in os.environ:
            continue
        os.environ[name] = value
        if constants is not None and hasattr(constants, name):  # already imported: env is read once
            setattr(constants, name, int(value))


def _from_hf_cache(model: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return str(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id: not ours to report here
        return None


def check_local_model(
    model: str, context: Context, where: str, markers: Sequence[str] = HF_MODEL_FILES, field: str = "model",
) -> None:
    """When `model` names an existing local path (relative to the recipe's folder), a `PrismError`
    unless it is a folder holding one of `markers`; a model id, or a path that does not exist, is
    left to `resolve_model_path`. Only looks at file names: cheap enough to run when a recipe
    is validated (components call it from `__init__`)."""
    if not model:
        return
    local = context.path(model)
    if not local.exists():
        return
    wanted = " or ".join(markers)
    if not local.is_dir():
        problem = f"{str(local)!r} is a file, not a model folder"
    elif any((local / name).is_file() for name in markers):
        return
    else:
        problem = f"{str(local)!r} is a folder but not a model folder: it holds no {wanted}"
    raise PrismError(
        f"{where}: {field} {model!r}: {problem}. Give the folder a model was saved to (one with {wanted}), "
        f"or a model id"
    )


def torch_device(device: str | None, where: str) -> str | None:
    """The torch device a recipe's `device` names, checked against this machine at load time
    (a clear error instead of torch's "invalid device ordinal" or "not compiled with CUDA").

    None stays None (the library chooses); `auto` becomes the first of cuda, mps, xpu that is
    there, else cpu. Imports torch: call it where the model loads, never during validation
    (the recipe check of the device's form needs no torch)."""
    if device is None:
        return None
    name = device.strip().lower()
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        xpu = getattr(torch, "xpu", None)
        return "xpu" if xpu is not None and xpu.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind not in ("cuda", "mps", "xpu"):  # cpu, or a backend torch only knows once its plugin is imported
        return name
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise PrismError(f"{where}: device {device!r} is not available here: no Apple MPS device; use cpu or leave device out")
        return name
    backend = getattr(torch, kind, None)
    available = backend is not None and hasattr(backend, "is_available") and backend.is_available()
    count = int(backend.device_count()) if available and hasattr(backend, "device_count") else 0
    if not available or count == 0:
        raise PrismError(f"{where}: device {device!r} is not available here: no {kind.upper()} device "
                         f"(torch {torch.__version__} sees none); use cpu or leave device out")
    if index and int(index) >= count:
        listed = ", ".join(f"{kind}:{i}" for i in range(count))
        raise PrismError(f"{where}: device {device!r} is not available here: {count} {kind.upper()} "
                         f"device{'s' if count != 1 else ''} ({listed}); use one of those, or cpu")
    return name


def resolve_model_path(
    model: str, context: Context, component: str, markers: Sequence[str] | None = None,
) -> str:
    """Where to load `model` from: a local path, or the model id for the caller to download.

    In order: an existing local path (relative to the recipe's folder; with `markers`, it must be
    a folder holding one of those files, see `check_local_model`); a plugin's
    `resolve_model` hook (packages that ship weights); the Hugging Face cache (a snapshot folder).
    None of these touches the network. Failing them, offline (HF_HUB_OFFLINE,
    TRANSFORMERS_OFFLINE or PRISMRAG_OFFLINE) raises `ModelNotAvailableError` at once; online, one
    quick request checks that the hub has the model (`probe_hub`) and the id is returned. Load the
    result inside `model_errors` so a failed download is reported the same way.
    """
    if not model:
        raise ModelNotAvailableError(model, component, "No model was given.")
    local = context.path(model)
    if local.exists():
        if markers:
            check_local_model(model, context, component, markers)
        return str(local)
    hooked = context.resolve_model(model)
    if hooked:
        return str(hooked)
    cached = _from_hf_cache(model)
    if cached:
        return cached
    if is_offline():
        offline = [n for n in OFFLINE_ENVS if os.environ.get(n, "").strip().lower() in _TRUE]
        raise ModelNotAvailableError(
            model, component, f"It is not a local path ({local}) nor in the cache, and {'/'.join(offline)} is set."
        )
    bound_hub_timeouts()
    probe_hub(model, component)
    return model


def probe_hub(repo_id: str, component: str, label: str | None = None) -> None:
    """Ask the hub, once and without retries, whether `repo_id` exists before downloading it.

    The hub client retries unreachable hosts with back-off for every file a loader asks for, so an
    unreachable hub or a misspelt id would take minutes to fail. This one request fails in
    seconds instead. Errors that say nothing about the model (a mirror without the API, a 5xx) are
    left to the download itself.
    """
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import (
            GatedRepoError,
            HFValidationError,
            RepositoryNotFoundError,
        )
    except ImportError:
        return
    timeout = float(os.environ.get(PROBE_TIMEOUT_ENV) or PROBE_TIMEOUT)
    name = label or repo_id
    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except GatedRepoError as exc:
        raise ModelNotAvailableError(
            name, component, "It is gated on the hub: accept its terms there and log in (`hf auth login`)."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotAvailableError(
            name, component, "The hub has no such model (check the spelling; private models need `hf auth login`)."
        ) from exc
    except HFValidationError as exc:
        raise ModelNotAvailableError(name, component, "It is neither an existing path nor a valid model id.") from exc
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("huggingface_hub",) and not _is_network_error(exc):
            return  # the hub answered, just not to this API call: let the download decide
        if not _is_fetch_error(exc):
            raise
        raise ModelNotAvailableError(
            name, component, f"The model hub could not be reached within {timeout:g} s ({type(exc).__name__}: {exc})."
        ) from exc


def _is_network_error(exc: BaseException) -> bool:
    return any(
        cls.__name__ in {"ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "NetworkError"}
        for cls in type(exc).__mro__
    )


def is_local(resolved: str) -> bool:
    """True when `resolved` (an answer of `resolve_model_path`) is a path, not a hub id."""
    return Path(resolved).exists()


_HUB_MODULES = ("huggingface_hub", "httpx", "httpx2", "httpcore", "requests", "urllib3")


def _is_fetch_error(exc: BaseException) -> bool:
    """An OSError or a hub/HTTP client error, itself or anywhere in its cause chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) or type(current).__module__.split(".")[0] in _HUB_MODULES:
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No "Loading weights" or download bars from transformers or huggingface_hub while a model
    loads (they would interleave with the CLI's and the Python API caller's output); the
    libraries' own settings come back afterwards. Only libraries already imported are touched."""
    restore: list[Callable[[], None]] = []
    tlog = sys.modules.get("transformers.utils.logging")
    if tlog is not None and tlog.is_progress_bar_enabled():
        tlog.disable_progress_bar()
        restore.append(tlog.enable_progress_bar)
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        restore.append(hub.enable_progress_bars)
    try:
        yield
    finally:
        for undo in restore:
            undo()


@contextmanager
def model_errors(model: str, component: str, *, remote: bool = True) -> Iterator[None]:
    """Turn a failed model download or lookup into `ModelNotAvailableError` (the cause chained),
    with the libraries' progress bars off while the model loads (`quiet_progress`).

    Pass `remote=False` when loading from a local path: errors there are the folder's own
    problem and pass through unchanged.
    """
    if not remote:
        with quiet_progress():
            yield
        return
    try:
        with quiet_progress():
            yield
    except (MissingDependencyError, ModelNotAvailableError):
        raise
    except Exception as exc:
        if not _is_fetch_error(exc):
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotAvailableError(
            model, component, f"Fetching it failed: {type(exc).__name__}: {first_line}"
        ) from exc
