"""The `open-clip` encoder: CLIP-style models that embed images and text into one space.

Images and texts can be documents and queries alike, so a text query finds images and an image
query finds images or captions. The model loads on first use; importing this module imports
neither torch nor open_clip.

Where the weights come from:
- `model: ViT-B-32, pretrained: laion2b_s34b_b79k`: a pretrained tag, taken from the Hugging Face
  cache when it is there (offline included), downloaded otherwise;
- `pretrained: path/to/checkpoint.pt` (or .safetensors): a local checkpoint;
- `model_config: path/to/my-arch.json`: an architecture of your own (open_clip's JSON model
  config; the file name is the architecture name unless `model` says otherwise);
- `model: hf-hub:org/repo` or `model: local-dir:path`: open_clip's own schemas.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from prismrag import Encoder, Modality, Params, hookimpl
from prismrag.contracts import (
    Content,
    Context,
    ItemError,
    Media,
    ModelNotAvailableError,
    PrismError,
    Role,
    as_text,
)
from prismrag.support import (
    LoadOnce,
    bound_hub_timeouts,
    check_local_model,
    import_optional,
    is_offline,
    model_errors,
    probe_hub,
    resolve_model_path,
    torch_device,
)

_OPEN_CLIP_LOCK = threading.Lock()
"""open_clip keeps its model-config registry in a module global."""

_HF_HUB, _LOCAL_DIR = "hf-hub:", "local-dir:"
_MODEL_FILES = ("open_clip_config.json",)
"""What an open_clip model folder (`local-dir:`, or an `hf-hub:` repo saved locally) holds."""


class OpenClipParams(Params):
    model: str | None = None
    """An open_clip architecture ("ViT-B-32"), "hf-hub:org/repo" or "local-dir:path"."""
    pretrained: str | None = None
    """A pretrained tag of the architecture ("openai", "laion2b_s34b_b79k") or a checkpoint path."""
    model_config_path: str | None = Field(default=None, alias="model_config")
    """A JSON model config (open_clip format) for an architecture of your own."""
    batch_size: int = Field(default=32, gt=0)
    device: str | None = None
    """"cpu", "cuda", "cuda:1"…; None takes a GPU when there is one."""
    normalize: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())

    @model_validator(mode="after")
    def _check(self) -> OpenClipParams:
        if self.model is None and self.model_config_path is None:
            raise ValueError("give model (an open_clip architecture such as ViT-B-32) or model_config")
        schema = (self.model or "").startswith((_HF_HUB, _LOCAL_DIR))
        if schema and (self.pretrained or self.model_config_path):
            raise ValueError("an hf-hub: or local-dir: model brings its own weights and config")
        if not schema and self.pretrained is None:
            raise ValueError(
                "pretrained is required: a tag such as 'openai' or a checkpoint path "
                "(without it the model would have random weights)"
            )
        return self


class OpenClipEncoder(Encoder):
    """Images and text into one vector space with an open_clip model."""

    name = "open-clip"
    Params = OpenClipParams
    description = "CLIP-style image and text embeddings in one space (open_clip: OpenAI CLIP, LAION, SigLIP…)."
    extra = "image"
    output = "dense"
    document_modalities = frozenset({Modality.IMAGE, Modality.TEXT})
    query_modalities = frozenset({Modality.TEXT, Modality.IMAGE})
    metric = "cosine"
    max_batch = 256

    params: OpenClipParams

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        model = self.params.model or ""
        if model.startswith(_LOCAL_DIR):  # `prism validate` reports a folder that is missing or no model
            self._local_dir(model)
        elif model.startswith(_HF_HUB):
            check_local_model(model[len(_HF_HUB) :], self.context, self._where, _MODEL_FILES)
        self._load = LoadOnce(self._load_model)  # model, preprocess, tokenizer, device
        self._dim: int | None = None

    # ------------------------------------------------------------------ model

    @property
    def _where(self) -> str:
        return self.context.where or self.name

    def _open_clip(self) -> Any:
        from prismrag.support import ensure_torchvision_ops

        ensure_torchvision_ops()
        return import_optional("open_clip", self._where, "image", package="open-clip-torch")

    def _architecture(self, open_clip: Any) -> str:
        """The architecture name, registering `model_config` with open_clip first."""
        p = self.params
        if p.model_config_path is None:
            return p.model  # type: ignore[return-value]
        path = self.context.path(p.model_config_path)
        if not path.is_file():
            raise PrismError(f"{self._where}: model_config {str(path)!r} does not exist")
        cfg = json.loads(path.read_text())
        if not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
            raise PrismError(f"{self._where}: {path} is not an open_clip model config (embed_dim, vision_cfg, text_cfg)")
        if p.model is not None and p.model != path.stem:
            raise PrismError(
                f"{self._where}: model {p.model!r} differs from the config's name {path.stem!r}: "
                "open_clip names an architecture after its config file; leave model out or rename the file"
            )
        if open_clip.get_model_config(path.stem) != cfg:
            open_clip.add_model_config(path)
        return path.stem

    def _local_dir(self, model: str) -> Path:
        """The folder of a `local-dir:` model, which must exist and hold an open_clip config."""
        folder = self.context.path(model[len(_LOCAL_DIR) :])
        if not folder.is_dir():
            raise PrismError(f"{self._where}: model {model!r}: there is no folder {str(folder)!r}")
        check_local_model(str(folder), self.context, self._where, _MODEL_FILES)
        return folder

    def _weights(self, open_clip: Any, arch: str) -> tuple[str, str | None, bool, dict[str, Any]]:
        """How to call open_clip: (model name, pretrained, whether anything may come from a hub,
        preprocessing overrides)."""
        p = self.params
        model = p.model or arch
        if model.startswith(_LOCAL_DIR):
            return _LOCAL_DIR + str(self._local_dir(model)), None, False, {}
        if model.startswith(_HF_HUB):
            found = resolve_model_path(model[len(_HF_HUB) :], self.context, self._where, _MODEL_FILES)
            return (_LOCAL_DIR + found, None, True, {}) if Path(found).is_dir() else (model, None, True, {})
        tag = p.pretrained or ""
        local = self.context.path(tag)
        if local.is_file():
            return arch, str(local), False, {}
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        if not cfg:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            raise ModelNotAvailableError(
                f"{arch}/{tag}", self._where,
                f"{tag!r} is neither a checkpoint file ({local}) nor a pretrained tag of {arch} "
                f"(tags: {', '.join(tags) or 'none'}).",
            )
        # a tag's weights taken from a file lose the tag's preprocessing: pass it along
        preprocessing = {
            "image_mean": cfg.get("mean"), "image_std": cfg.get("std"),
            "image_interpolation": cfg.get("interpolation"), "image_resize_mode": cfg.get("resize_mode"),
        }
        cached = cfg.get("file") or _cached_hub_weights(cfg.get("hf_hub", ""))
        if cached:
            return arch, cached, True, preprocessing  # True: a hub tokenizer may still be fetched
        if is_offline():
            raise ModelNotAvailableError(
                f"{arch}/{tag}", self._where, f"Its weights ({cfg.get('hf_hub') or cfg.get('url')}) are not in the cache."
            )
        bound_hub_timeouts()
        if cfg.get("hf_hub"):
            probe_hub(os.path.split(cfg["hf_hub"])[0], self._where, label=f"{arch}/{tag}")
        return arch, tag, True, {}

    def _load_model(self) -> tuple[Any, Any, Any, str]:
        open_clip = self._open_clip()
        import torch

        device = torch_device(self.params.device, self._where) or ("cuda" if torch.cuda.is_available() else "cpu")
        label = self.params.model or self.params.model_config_path or ""
        with _OPEN_CLIP_LOCK:
            arch = self._architecture(open_clip)
            name, pretrained, remote, preprocessing = self._weights(open_clip, arch)
            with model_errors(f"{label}/{self.params.pretrained or ''}".rstrip("/"), self._where, remote=remote):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=pretrained, device=device, **preprocessing
                )
                tokenizer = open_clip.get_tokenizer(name)
        model.eval()
        cfg = open_clip.get_model_config(name) or {}
        self._dim = cfg.get("embed_dim")
        return model, preprocess, tokenizer, device

    def dimension(self) -> int:
        if self._dim is None:
            self._load()
        if self._dim is None:  # a config without embed_dim: embed one string
            self._dim = int(self.encode(["dimension probe"], Modality.TEXT, "query").shape[1])
        return self._dim

    # ----------------------------------------------------------------- encode

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        model, preprocess, tokenizer, device = self._load()
        import torch

        bs = self.params.batch_size
        parts: list[np.ndarray] = []
        with torch.inference_mode():
            if modality == Modality.IMAGE:
                pixels = self._decode_images(contents, preprocess)
                for i in range(0, len(pixels), bs):
                    batch = torch.stack(pixels[i : i + bs]).to(device)
                    parts.append(model.encode_image(batch).float().cpu().numpy())
            else:
                texts = [as_text(c) for c in contents]
                for i in range(0, len(texts), bs):
                    tokens = tokenizer(texts[i : i + bs]).to(device)
                    parts.append(model.encode_text(tokens).float().cpu().numpy())
        if not parts:
            return np.zeros((0, self._dim or 0), np.float32)
        out = np.concatenate(parts).astype(np.float32, copy=False)
        if self.params.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _decode_images(self, contents: Sequence[Content], preprocess: Any) -> list[Any]:
        """Decode and preprocess every image (in threads); ItemError naming each one that fails.

        The error carries `positions` (the failing indexes in `contents`) for callers that can
        drop them and re-encode the rest in one batch.
        """
        workers = min(8, os.cpu_count() or 1, max(1, len(contents) // 4))
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(lambda c: _load_image(c, preprocess), contents))
        else:
            results = [_load_image(c, preprocess) for c in contents]
        bad = [(i, r) for i, r in enumerate(results) if isinstance(r, str)]
        if bad:
            listing = "; ".join(msg for _, msg in bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ItemError(self._where, f"cannot read image: {listing}", tuple(i for i, _ in bad))
        return results


def _label(content: Content) -> str:
    if isinstance(content, Media):
        return str(content.path) if content.path is not None else f"<{len(content.data or b'')} bytes>"
    return "<text>"


def _load_image(content: Content, preprocess: Any) -> Any:
    """A preprocessed image tensor, or a message naming the input and what is wrong with it."""
    from PIL import Image, ImageOps

    if not isinstance(content, Media):
        return f"{_label(content)}: expected an image, got text"
    try:
        with Image.open(io.BytesIO(content.read())) as img:
            img.load()  # decode now: a truncated file fails here, not later
            image = ImageOps.exif_transpose(img).convert("RGB")
        return preprocess(image)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError…
        return f"{_label(content)}: {type(exc).__name__}: {exc}"


def _cached_hub_weights(hf_hub: str) -> str | None:
    """The cached weights of an open_clip pretrained entry ('org/repo/' or 'org/repo/file.bin')."""
    if not hf_hub:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id, filename = os.path.split(hf_hub)
    filename = filename or "open_clip_pytorch_model.bin"
    safe = "open_clip_model.safetensors" if filename == "open_clip_pytorch_model.bin" else Path(filename).stem + ".safetensors"
    for name in (safe, filename):  # open_clip prefers the safetensors file, as here
        try:
            found = try_to_load_from_cache(repo_id, name)
        except Exception:  # an id the hub client rejects: nothing cached
            continue
        if isinstance(found, str):
            return found
    return None


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(OpenClipEncoder)
