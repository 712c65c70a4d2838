"""The FastAPI application: versioned routes over the served recipes, JSON errors only."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..engine import Engine
from ..errors import ItemError, MissingDependencyError, ModelNotAvailableError, PrismError
from ..filters import filter_from_dict, parse_filter_expressions
from ..ingest import IngestReport
from ..search import SearchResult
from ..types import Item, Media, Modality, Query
from . import compat, items
from .ingest_batching import IngestCoalescer
from .metrics import MetricsMiddleware
from .schemas import (
    ErrorBody,
    Health,
    IngestRequest,
    IngestResponse,
    RecipeSummary,
    SearchRequest,
    SearchResponse,
)
from .security import PUBLIC_PATHS, GuardMiddleware, ServerError, error_body
from .state import Served, ServerConfig, decode_base64

__all__ = ["ServerConfig", "create_app"]

log = logging.getLogger("prismrag.server")
T = TypeVar("T")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 503, 504)
}


class JSONText(JSONResponse):
    """JSON as the CLI writes it (values it cannot encode as their str())."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, ensure_ascii=False).encode("utf-8")


def status_of(exc: Exception) -> int:
    if isinstance(exc, ServerError):
        return exc.status
    if isinstance(exc, ItemError):
        return 422
    if isinstance(exc, ModelNotAvailableError | MissingDependencyError):
        return 503
    return 400


def error_response(status: int, kind: str, message: str) -> Response:
    return Response(error_body(status, kind, message), status, media_type="application/json")


def create_app(config: ServerConfig, served: Served | None = None) -> FastAPI:
    """The app over `config.recipes` (built now: a bad recipe fails here, before serving)."""
    served = served or Served(config)
    holder: dict[str, anyio.CapacityLimiter] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder["limiter"] = anyio.CapacityLimiter(config.threads)
        threading.Thread(target=served.warm, name="prism-warm", daemon=True).start()
        yield
        await anyio.to_thread.run_sync(served.close)

    app = FastAPI(title="prismrag", version="0.1.0", lifespan=lifespan,
                  description="Multimodal retrieval over prismrag recipes; OpenAI-compatible embeddings, "
                              "Cohere/TEI-shaped rerank. Errors are `{error: {status, type, message}}`.")
    app.state.server = served

    async def run(fn: Callable[[], T], timeout: float) -> T:
        """Run engine work on a worker thread; past `timeout` the client gets a 504."""
        return await _within(anyio.to_thread.run_sync(fn, limiter=holder["limiter"], abandon_on_cancel=True), timeout)

    async def searched(engine: Engine, query: Query, **options: Any) -> SearchResult:
        """A search through the engine's batcher (checked first: a bad request fails before it
        queues), or on a worker thread when micro-batching is off."""
        batcher = served.batchers.get(engine.name)
        if batcher is None:
            return await run(lambda: engine.search_detailed(query, **options), config.timeout)
        return await _within(batcher.asubmit(engine.prepare_search(query, **options)), config.timeout)

    # ------------------------------------------------------------------ errors

    @app.exception_handler(PrismError)
    async def prism_error(request: Request, exc: PrismError) -> Response:
        status = status_of(exc)
        served.metrics.errors.labels(type(exc).__name__).inc()
        return error_response(status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
        served.metrics.errors.labels("RequestValidationError").inc()
        return error_response(422, "RequestValidationError", f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("prism serve: %s %s failed", request.method, request.url.path)
        served.metrics.errors.labels(type(exc).__name__).inc()
        return error_response(500, "InternalError", f"internal error ({type(exc).__name__}); see the server log")

    # ------------------------------------------------------------------ health

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    async def readyz() -> Response:
        body = {"status": "ready" if served.ready() else "loading", "recipes": served.status}
        if any(s.startswith("failed") for s in served.status.values()):
            body["status"] = "failed"
        return JSONResponse(body, 200 if served.ready() else 503)

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        data, content_type = served.metrics.render()
        return Response(data, media_type=content_type)

    # ------------------------------------------------------------------ recipes

    @app.get("/v1/recipes", response_model=list[RecipeSummary], responses=ERRORS)
    async def recipes() -> list[dict[str, Any]]:
        return [served.summary(e) for e in served.engines.values()]

    @app.get("/v1/recipes/{recipe}", response_model=dict[str, Any], responses=ERRORS)
    async def info(recipe: str) -> Response:
        engine = served.engine(recipe)
        return JSONText(await run(engine.info, config.timeout))

    # ------------------------------------------------------------------ search

    @app.post("/v1/recipes/{recipe}/search", response_model=SearchResponse, responses=ERRORS)
    async def search(recipe: str, body: SearchRequest) -> Response:
        engine = served.engine(recipe)
        if body.filter is not None and body.filters:
            raise ServerError(422, "give `filter` (a dict) or `filters` (expressions), not both")
        query = served.query(engine, body.query, body.media_base64, body.media_path, body.modality)
        flt = filter_from_dict(body.filter) if body.filter is not None else parse_filter_expressions(body.filters)
        result = await searched(engine, query, top_k=body.top_k, filter=flt, weights=body.weights, exact=body.exact)
        return JSONText(served.search_body(engine, result, body.explain))

    @app.post("/v1/recipes/{recipe}/search/upload", response_model=SearchResponse, responses=ERRORS)
    async def search_upload(
        recipe: str,
        file: Annotated[UploadFile, File(description="the query file (its extension sets the modality)")],
        modality: Annotated[str | None, Form()] = None,
        top_k: Annotated[int | None, Form(ge=1, le=10_000)] = None,
        filters: Annotated[list[str] | None, Form()] = None,
        weights: Annotated[str | None, Form(description="fusion weights as a JSON object")] = None,
        explain: Annotated[bool, Form()] = False,
    ) -> Response:
        engine = served.engine(recipe)
        kind = _modality(modality) or engine.modality_of(file.filename or "")
        if kind is None:
            raise ServerError(422, f"cannot tell the modality of {file.filename!r} from its extension; "
                                   f"send `modality`")
        query = served.media_query(await file.read(), kind)
        flt = parse_filter_expressions(filters or [])
        fusion_weights = _weights(weights)
        result = await searched(engine, query, top_k=top_k, filter=flt, weights=fusion_weights)
        return JSONText(served.search_body(engine, result, explain))

    # ------------------------------------------------------------------ ingest

    coalescers: dict[str, IngestCoalescer] = {}

    async def ingest_items(recipe: str, items_: list[Item], owner: str) -> IngestReport:
        """Concurrent ingests share engine runs (micro-batching on), else one run per request."""
        engine = served.engine(recipe)
        if config.batch_wait <= 0:
            return await run(lambda: engine.ingest_items(items_, owner=owner), config.ingest_timeout)
        if recipe not in coalescers:
            coalescers[recipe] = IngestCoalescer(
                engine, lambda fn: run(fn, config.ingest_timeout), config.batch_wait,
                observe=served.metrics.ingest_batch.labels(recipe).observe)
        return await coalescers[recipe].ingest(items_, owner)

    @app.post("/v1/recipes/{recipe}/items", response_model=IngestResponse, responses=ERRORS)
    async def ingest(recipe: str, body: IngestRequest) -> Response:
        engine = served.engine(recipe)
        items_ = [_item(i) for i in body.items]
        if body.delete_missing:
            report = await run(lambda: engine.ingest_items(items_, owner=body.owner, delete_missing=True),
                               config.ingest_timeout)
        else:
            report = await ingest_items(recipe, items_, body.owner)
        return JSONText(report.to_dict())

    @app.post("/v1/recipes/{recipe}/items/upload", response_model=IngestResponse, responses=ERRORS)
    async def ingest_upload(
        recipe: str,
        files: Annotated[list[UploadFile], File(description="files to index; each file's name is its item id")],
        metadata: Annotated[str, Form(description="a JSON object stored with every file")] = "{}",
        owner: Annotated[str, Form(description="who owns these items (see `prism` item owners)")] = "api",
    ) -> Response:
        engine = served.engine(recipe)
        try:
            meta = json.loads(metadata)
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise ServerError(422, "`metadata` must be a JSON object")
        uploads = []
        for f in files:
            name = f.filename or ""
            kind = engine.modality_of(name)
            if not name or kind is None:
                raise ServerError(422, f"cannot tell the modality of upload {name!r} from its extension")
            data = await f.read()
            content = data.decode("utf-8", "replace") if kind == Modality.TEXT else Media(data=data)
            uploads.append(Item(name, kind, content, dict(meta), source=name))
        report = await ingest_items(recipe, uploads, owner)
        return JSONText(report.to_dict())

    compat.add_routes(app, served, run, config, ERRORS)
    items.add_routes(app, served, run, config, ERRORS)
    if config.api_key:
        _document_key(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    app.add_middleware(GuardMiddleware, api_key=config.api_key, max_body=config.max_body)
    app.add_middleware(MetricsMiddleware, metrics=served.metrics)
    return app


async def _within(work: Awaitable[T], timeout: float) -> T:
    """`work`'s outcome; past `timeout` the client gets a 504."""
    try:
        return await asyncio.wait_for(work, timeout)
    except TimeoutError:
        raise ServerError(504, f"the request took over {timeout:g} s (prism serve --timeout)") from None


def _document_key(app: FastAPI) -> None:
    """Say in the OpenAPI schema that every route but health needs the bearer key."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            for path in PUBLIC_PATHS:
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _modality(name: str | None) -> Modality | None:
    if name is None:
        return None
    try:
        return Modality(name)
    except ValueError:
        raise ServerError(422, f"unknown modality {name!r}; one of: {', '.join(m.value for m in Modality)}") from None


def _weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError):
        pass
    raise ServerError(422, "`weights` must be a JSON object of retriever names to numbers")


def _item(spec: Any) -> Item:
    if (spec.text is None) == (spec.content_base64 is None):
        raise ServerError(422, f"item {spec.id!r}: give exactly one of `text` and `content_base64`")
    modality = Modality(spec.modality)
    if spec.text is not None:
        if modality != Modality.TEXT:
            raise ServerError(422, f"item {spec.id!r}: a {modality.value} item needs `content_base64`")
        content: Any = spec.text
    else:
        content = Media(data=decode_base64(spec.content_base64, f"items[{spec.id}].content_base64"))
    return Item(spec.id, modality, content, spec.metadata, spec.parent_id, source=spec.source)
