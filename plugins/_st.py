"""Loading a sentence-transformers model of any kind (SentenceTransformer, SparseEncoder,
MultiVectorEncoder) one way: resolve the id offline first, import lazily, turn a failed fetch
into a clear error, and check the prompts the recipe names against the model's."""

from __future__ import annotations

from typing import Any

from prismrag.contracts import Encoder, PrismError
from prismrag.support import (
    HF_MODEL_FILES,
    ensure_torchvision_ops,
    import_optional,
    is_local,
    model_errors,
    resolve_model_path,
    torch_device,
)


def import_sentence_transformers(component: str) -> Any:
    """The `sentence_transformers` module (a MissingDependencyError naming the extra if absent)."""
    ensure_torchvision_ops()
    return import_optional("sentence_transformers", component, "text", package="sentence-transformers")


def load_model(encoder: Encoder, class_name: str, since: str) -> Any:
    """`sentence_transformers.<class_name>` loaded from the encoder's `model`, `device` and
    `trust_remote_code` params; `since` is the first sentence-transformers version that has it."""
    p: Any = encoder.params
    where = encoder.context.where or encoder.name
    path = resolve_model_path(p.model, encoder.context, where, HF_MODEL_FILES)  # fails fast, before heavy imports
    st = import_sentence_transformers(where)
    cls = getattr(st, class_name, None)
    if cls is None:
        raise PrismError(f"{where}: the installed sentence-transformers has no {class_name}; "
                         f"install sentence-transformers>={since}")
    device = torch_device(p.device, where)
    with model_errors(p.model, where, remote=not is_local(path)):
        model = cls(path, device=device, trust_remote_code=p.trust_remote_code)
    check_prompt_names(model, p, where)
    pin_inference_device(model)
    hold_eval_mode(model)
    return model


def pin_inference_device(model: Any) -> None:
    """Resolve the model's device once instead of on every `encode` call.

    sentence-transformers 6 checks every parameter's and buffer's device on each call (0.33 ms
    for MiniLM on this machine, ~2% of a one-query encode); a model placed at load never moves here, so the
    first answer holds. Models placed by a device map or accelerate keep their own resolution."""
    resolve = getattr(model, "_resolve_inference_device", None)
    if resolve is None or getattr(model, "_placement_is_delegated", True):
        return
    resolved: dict[Any, Any] = {}

    def cached(device: Any) -> Any:
        key = str(device) if device is not None else None
        if key not in resolved:
            resolved[key] = resolve(device)
        return resolved[key]

    model._resolve_inference_device = cached


def hold_eval_mode(model: Any) -> None:
    """Put the model in eval mode once instead of on every `encode` call.

    sentence-transformers calls `model.eval()` at the start of each `encode`, which walks every
    submodule through torch's slow `__setattr__` (~0.7 ms for MiniLM on this machine, ~5% of a
    one-query encode). Here the model is put in eval mode at load and `train(False)` answers at
    once while it stays there; `train(True)` (a user fine-tuning the loaded model) works as before
    and the next `train(False)` walks the modules again."""
    train = getattr(model, "train", None)
    if train is None or not callable(train):
        return
    train(False)
    state = {"eval": True}

    def held(mode: bool = True) -> Any:
        if not mode and state["eval"]:
            return model
        result = train(mode)
        state["eval"] = not mode
        return result

    model.train = held


def one_prompt_per_role(params: Any) -> None:
    """A role's prompt is given as text or by name, not both (a Params validator's body)."""
    for role in ("query", "document"):
        if getattr(params, f"{role}_prompt") is not None and getattr(params, f"{role}_prompt_name") is not None:
            raise ValueError(f"give {role}_prompt or {role}_prompt_name, not both")


def check_prompt_names(model: Any, params: Any, where: str) -> None:
    """`query_prompt_name` and `document_prompt_name`, when given, must be prompts of the model."""
    prompts = dict(getattr(model, "prompts", None) or {})
    for role in ("query", "document"):
        wanted = getattr(params, f"{role}_prompt_name", None)
        if wanted is not None and wanted not in prompts:
            literal = f" Use {role}_prompt for a literal prefix." if hasattr(params, f"{role}_prompt") else ""
            raise PrismError(
                f"{where}: {role}_prompt_name {wanted!r} is not a prompt of model {params.model!r}; "
                f"its prompts: {', '.join(sorted(k for k in prompts if prompts[k])) or 'none'}.{literal}"
            )
