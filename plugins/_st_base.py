"""Private: what the sentence-transformers encoders (`sentence-transformers`, `sparse-encoder`,
`multi-vector`) share: their params (the model, a prompt per role, batching, the device) and a
text encoder that checks a local model folder when built (so `prism validate` reports it) and
loads the model once, on first use."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from pydantic import Field, model_validator

from prismrag.contracts import Context, Encoder, Modality, Params
from prismrag.support import LoadOnce, check_local_model

from ._st import one_prompt_per_role


class STParams(Params):
    model: str
    """A model id (Hugging Face hub) or a path to a sentence-transformers model folder."""
    query_prompt: str | None = None
    """A prefix for queries, e.g. "query: "."""
    document_prompt: str | None = None
    """A prefix for documents, e.g. "passage: "."""
    query_prompt_name: str | None = None
    """The name of a prompt stored in the model's configuration, used for queries."""
    document_prompt_name: str | None = None
    """The name of a prompt stored in the model's configuration, used for documents."""
    batch_size: int = Field(default=32, gt=0)
    device: str | None = None
    """"cpu", "cuda", "cuda:1", "mps"…; None lets sentence-transformers choose."""
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _one_prompt_per_role(self) -> STParams:
        one_prompt_per_role(self)
        return self


class STEncoder(Encoder):
    """Text in; the model (`_load`) loaded on first use, once even from several threads. A local
    `model` path that is not a model folder is refused when the encoder is built, without torch."""

    extra = "text"
    document_modalities = frozenset({Modality.TEXT})
    query_modalities = frozenset({Modality.TEXT})
    fingerprint_excludes = Encoder.fingerprint_excludes | {"trust_remote_code"}

    params: STParams

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        check_local_model(self.params.model, self.context, self.where)  # `prism validate` reports it
        self._model = LoadOnce(self._load)

    @property
    def model(self) -> Any:
        """The loaded model."""
        return self._model()

    @abstractmethod
    def _load(self) -> Any:
        """Load the model (`load_model` of `_st`)."""
