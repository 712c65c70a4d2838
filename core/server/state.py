"""The served recipes: one engine each, their micro-batchers, and readiness."""

from __future__ import annotations

import base64
import binascii
import gc
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import Engine
from ..errors import PrismError, QueryError
from ..explain import explain, explanation_lines
from ..search import SearchResult
from ..types import Media, Modality, Query
from .batching import SearchBatcher
from .metrics import ServerMetrics
from .remote_engine import SearchSettings
from .security import ServerError, media_path

log = logging.getLogger("prismrag.server")


@dataclass
class ServerConfig:
    recipes: list[str]
    api_key: str | None = None
    max_body: int = 32 * 1024 * 1024
    timeout: float = 30.0
    ingest_timeout: float = 600.0
    media_roots: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    batch_wait: float = 0.002
    """Seconds a query encode waits for company; <= 0 turns micro-batching off."""
    max_batch: int = 64
    threads: int = 64


class Served:
    """What the endpoints share. Recipes are built (validated) at once; models load in `warm`."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.engines: dict[str, Engine] = {}
        for path in config.recipes:
            engine = Engine.from_file(path)
            if engine.name in self.engines:
                raise PrismError(f"{path}: recipe name {engine.name!r} is also the name of "
                                 f"{self.engines[engine.name].recipe.source}; serve recipes with distinct names")
            self.engines[engine.name] = engine
        self.status: dict[str, str] = dict.fromkeys(self.engines, "loading")
        self.metrics = ServerMetrics()
        self.batchers: dict[str, SearchBatcher] = {}
        self.media_roots = [Path(r).expanduser().resolve() for r in config.media_roots]
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.engines)

    def ready(self) -> bool:
        return all(s == "ready" for s in self.status.values())

    # ------------------------------------------------------------------ lifecycle

    def warm(self) -> None:
        """Open each store and load each query encoder (a first encode), then batch concurrent
        searches (`SearchBatcher`) unless micro-batching is off."""
        for name, engine in self.engines.items():
            try:
                engine.open()
                engine.fields()
                for retriever in engine.recipe.retrievers.values():
                    if retriever.encoder.accepts(Modality.TEXT, "query"):
                        retriever.encoder.encode_query(Query.text("warm up"))
                if self.config.batch_wait > 0:
                    batcher = SearchBatcher(engine, self.config.batch_wait, self.config.max_batch, name,
                                            self.metrics.search_batch.labels(name).observe)
                    self.batchers[name] = batcher
                    self.metrics.watch_queue(name, batcher.depth)
                self.status[name] = "ready"
            except Exception as exc:  # reported by /readyz and the log; the server stays up
                self.status[name] = f"failed: {type(exc).__name__}: {exc}"
                log.error("prism serve: recipe %s failed to load: %s", name, exc)
        # The models and stores just loaded are ~500k objects that live as long as the server; left
        # to the cyclic GC, every full collection walks them all (~0.3 s with the GIL held, ~15%
        # of a loaded server's time). Frozen, collections walk only what requests allocate.
        gc.freeze()

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
        for engine in self.engines.values():
            try:
                engine.close()
            except PrismError as exc:
                log.error("%s", exc)

    # ------------------------------------------------------------------ lookups

    def engine(self, name: str) -> Engine:
        if name not in self.engines:
            raise ServerError(404, f"no recipe named {name!r} is served here; recipes: {', '.join(self.engines)}")
        status = self.status[name]
        if status != "ready":
            raise ServerError(503, f"recipe {name!r} is not ready ({status})")
        return self.engines[name]

    def retriever(self, model: str) -> tuple[Engine, Any]:
        """`recipe/retriever` -> (engine, encoder)."""
        recipe, _, retriever = model.partition("/")
        if recipe not in self.engines or retriever not in self.engines[recipe].recipe.retrievers:
            raise ServerError(404, f"no model {model!r}; models: {', '.join(self.models())}")
        engine = self.engine(recipe)
        return engine, engine.recipe.retrievers[retriever].encoder

    @staticmethod
    def summary(engine: Engine) -> dict[str, Any]:
        """A recipe as `GET /v1/recipes` lists it: what a search front end shows (the TUI's
        `--server` mode builds its search screen from it)."""
        settings = SearchSettings.of_engine(engine)
        recipe = engine.recipe
        return {
            "name": engine.name, "source": str(Path(recipe.source).resolve()), "retrievers": list(recipe.retrievers),
            "rerankers": [r.name for r in recipe.rerankers],
            "query_modalities": sorted(m.value for m in engine.query_modalities()),
            "top_k": settings.top_k,
            "fusion": {"name": settings.fusion, "weights": settings.weights} if settings.fusion else None,
            "retriever_details": [
                {"name": n, "encoder": recipe.retrievers[n].encoder.name, "top_k": r.top_k,
                 "query_modalities": sorted(m.value for m in r.query_modalities)}
                for n, r in settings.retrievers.items()
            ],
            "extensions": {ext: m.value for ext, m in sorted(engine.registry.claimed_extensions().items())},
        }

    def models(self) -> list[str]:
        return [f"{n}/{r}" for n, e in self.engines.items() for r in e.recipe.retrievers]

    def reranker(self, model: str | None) -> tuple[Engine, Any, str]:
        """`recipe/stage` (index or name), or None when exactly one reranker is served."""
        stages = {f"{n}/{i}": (n, r) for n, e in self.engines.items() for i, r in enumerate(e.recipe.rerankers)}
        stages.update({f"{n}/{r.name}": (n, r) for n, e in self.engines.items() for r in e.recipe.rerankers})
        listing = ", ".join(f"{n}/{i}" for n, e in self.engines.items() for i in range(len(e.recipe.rerankers)))
        if model is None:
            distinct = {id(r): k for k, (_, r) in stages.items()}
            if len(distinct) != 1:
                raise ServerError(400, f"name the reranker as `model`; rerankers: {listing or 'none'}")
            model = next(iter(distinct.values()))
        if model not in stages:
            raise ServerError(404, f"no reranker {model!r}; rerankers: {listing or 'none'}")
        name, reranker = stages[model]
        return self.engine(name), reranker, model

    # ------------------------------------------------------------------ queries and results

    def query(self, engine: Engine, text: str | None, media_b64: str | None, path: str | None,
              modality: str | None) -> Query:
        """A Query from what a request gave: text is always text (never a server path)."""
        given = [v for v in (text, media_b64, path) if v is not None]
        if len(given) != 1:
            raise ServerError(422, "give exactly one of `query`, `media_base64` and `media_path`")
        if text is not None:
            if not text.strip():
                raise QueryError("the query is empty")
            if modality not in (None, "text"):
                raise QueryError(f"a {modality} query needs `media_base64`, `media_path` or an upload")
            return Query.text(text)
        if media_b64 is not None:
            if modality is None:
                raise QueryError("a query given as bytes needs its modality (image, audio, video, shape)")
            return self.media_query(decode_base64(media_b64, "media_base64"), Modality(modality))
        file = media_path(path or "", self.media_roots)
        detected = Modality(modality) if modality else engine.modality_of(file)
        if detected is None:
            raise QueryError(f"cannot tell the modality of {path!r} from its extension; pass it explicitly")
        if detected == Modality.TEXT:
            return Query.text(file.read_text(encoding="utf-8", errors="replace"))
        return Query(detected, Media(path=file))

    @staticmethod
    def media_query(data: bytes, modality: Modality) -> Query:
        if not data:
            raise QueryError("the uploaded query is empty")
        if modality == Modality.TEXT:
            return Query.text(data.decode("utf-8", "replace"))
        return Query(modality, Media(data=data))

    def search_body(self, engine: Engine, result: SearchResult, with_explain: bool) -> dict[str, Any]:
        """The search response: hits exactly as `prism search --json` prints them."""
        self.metrics.observe_stages(engine.name, result.timings)
        body: dict[str, Any] = {
            "recipe": engine.name,
            "hits": [h.to_dict() for h in result.hits],
            "retrievers": result.retrievers,
            "timings": result.timings,
            "top_ks": result.top_ks,
            "notes": result.notes,
        }
        if with_explain:
            body["explanations"] = [explanation_lines(explain(h, result.retrievers, result.top_ks)) for h in result.hits]
        return body


def decode_base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServerError(422, f"`{what}` is not valid base64") from None
