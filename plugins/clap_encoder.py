"""`clap`: audio and text in one space with a CLAP model (transformers' `ClapModel`).

Audio documents and audio or text queries: "a dog barking" finds the bark, a clip finds similar
sounds. `model` is a hub id (`laion/clap-htsat-unfused`) or a local folder holding a ClapModel,
its feature extractor and a tokenizer. Each clip is resampled to the feature extractor's rate and
cut to its `max_length_s` from the start (so the vector never depends on a random crop).

Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from prismrag import Encoder, Modality, Params, hookimpl
from prismrag.contracts import Content, Context, Role, as_text
from prismrag.support import (
    LoadOnce,
    check_local_model,
    ensure_torchvision_ops,
    import_optional,
    is_local,
    model_errors,
    resolve_model_path,
    torch_device,
)

from ._audio import AudioError, check_clips, decode

_MODEL_FILES = ("config.json",)
"""A transformers model folder holds its config.json."""


class ClapParams(Params):
    model: str = Field("laion/clap-htsat-unfused", description="A CLAP model: hub id or local folder.")
    normalize: bool = True
    batch_size: int = Field(16, gt=0)
    device: str = "cpu"


class ClapEncoder(Encoder):
    """CLAP audio-text embeddings (transformers), loaded lazily."""

    name = "clap"
    Params = ClapParams
    description = "Audio and text in one space with a CLAP model (laion/clap-htsat-unfused or a local folder)."
    extra = "audio"
    document_modalities = frozenset({Modality.AUDIO})
    query_modalities = frozenset({Modality.AUDIO, Modality.TEXT})
    metric = "cosine"
    max_batch = 256

    params: ClapParams

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        check_local_model(self.params.model, self.context, self.where, _MODEL_FILES)  # `prism validate` reports it
        self._loaded = LoadOnce(self._load)

    def _load(self) -> tuple[Any, Any, Any]:
        p = self.params
        where = self.where
        path = resolve_model_path(p.model, self.context, where, _MODEL_FILES)
        import_optional("torch", where, "audio")
        ensure_torchvision_ops()  # transformers imports torchvision when it is installed
        tf = import_optional("transformers", where, "audio")
        with model_errors(p.model, where, remote=not is_local(path)):
            model = tf.ClapModel.from_pretrained(path).to(torch_device(p.device, where)).eval()
            extractor = tf.ClapFeatureExtractor.from_pretrained(path)
            tokenizer = tf.AutoTokenizer.from_pretrained(path)
        return model, extractor, tokenizer

    def close(self) -> None:
        self._loaded = LoadOnce(self._load)

    def dimension(self) -> int:
        model, _, _ = self._loaded()
        return int(model.config.projection_dim)

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        import torch

        model, extractor, tokenizer = self._loaded()
        parts = []
        step = self.params.batch_size
        with torch.no_grad():
            for start in range(0, len(contents), step):
                chunk = contents[start : start + step]
                if modality == Modality.TEXT:
                    inputs = tokenizer([as_text(c) for c in chunk], return_tensors="pt", padding=True, truncation=True)
                    out = model.get_text_features(**inputs.to(model.device))
                else:
                    inputs = extractor(self._audio(chunk, extractor, role, start), return_tensors="pt",
                                       sampling_rate=extractor.sampling_rate)
                    out = model.get_audio_features(**inputs.to(model.device))
                tensor = out if isinstance(out, torch.Tensor) else out.pooler_output
                parts.append(tensor.float().cpu().numpy())
        vectors = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.dimension()), np.float32)
        if self.params.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _audio(self, chunk: Sequence[Content], extractor: Any, role: Role, offset: int) -> list[np.ndarray]:
        rate = int(extractor.sampling_rate)
        limit = int(extractor.nb_max_samples) if getattr(extractor, "nb_max_samples", None) else None
        out, bad = [], {}
        for i, content in enumerate(chunk):
            try:
                x = decode(content, rate)
            except AudioError as exc:
                bad[offset + i] = f"cannot decode audio: {exc}"
                continue
            if not len(x):
                bad[offset + i] = "no audio samples"
                continue
            out.append(x[:limit] if limit else x)
        check_clips(self.where, bad, role)
        return out


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(ClapEncoder)
