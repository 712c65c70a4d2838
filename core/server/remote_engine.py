"""A recipe served by `prism serve`, behind the part of `Engine`'s API a search front end uses
(`search_detailed`, `retrievers_for`, `query_modalities`, `loading`, `info`), on httpx.

The TUI's `--server` mode runs on it: hits come back with their provenance and are rebuilt into
the same `Hit`/`Provenance`/`SearchResult` values a local engine returns, so they render alike.
Nothing here loads a plugin or a model. Every failure is a `PrismError` whose message says what
went wrong where (server down, key refused, the server's own error message), never a traceback.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..contracts import Filter
from ..errors import MissingDependencyError, PrismError, QueryError
from ..filters import parse_filter
from ..query import as_query
from ..search import SearchResult
from ..types import (
    Hit,
    Media,
    Modality,
    Provenance,
    RerankTrace,
    RetrieverTrace,
    StageTrace,
    modality_of_path,
)

if TYPE_CHECKING:
    import httpx

    from ..engine import Engine

KEY_HINT = "give the key in $PRISM_API_KEY or with --api-key"


class ServerUnavailable(PrismError):
    """The server could not be reached or did not answer in time."""


class ServerRefused(PrismError):
    """The server answered with an error; `status` is its HTTP status."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class RetrieverSettings:
    top_k: int
    query_modalities: frozenset[Modality]


@dataclass(frozen=True)
class SearchSettings:
    """What a search front end shows of a recipe: its default `top_k`, its retrievers and its
    fusion with the weights it starts from (`weights` None: no fusion, or one without weights)."""

    name: str
    top_k: int
    retrievers: dict[str, RetrieverSettings]
    fusion: str | None = None
    weights: dict[str, float] | None = None

    @staticmethod
    def of_engine(engine: Engine) -> SearchSettings:
        """A local engine's settings, read from its recipe."""
        recipe = engine.recipe
        fusion = recipe.fusion
        weights = None
        if fusion is not None and "weights" in type(fusion.params).model_fields:
            given = getattr(fusion.params, "weights", None) or {}
            weights = {name: float(given.get(name, 1.0)) for name in recipe.retrievers}
        return SearchSettings(
            engine.name, recipe.spec.search.top_k,
            {n: RetrieverSettings(r.top_k, frozenset(r.encoder.query_modalities)) for n, r in recipe.retrievers.items()},
            fusion.name if fusion else None, weights,
        )

    @staticmethod
    def of_summary(summary: Mapping[str, Any]) -> SearchSettings:
        """From a `GET /v1/recipes` entry."""
        fusion = summary.get("fusion") or {}
        return SearchSettings(
            str(summary["name"]), int(summary["top_k"]),
            {r["name"]: RetrieverSettings(int(r["top_k"]), frozenset(Modality(m) for m in r["query_modalities"]))
             for r in summary["retriever_details"]},
            fusion.get("name"), fusion.get("weights"),
        )


def search_settings(engine: Engine | RemoteEngine) -> SearchSettings:
    """The search settings of a local or a remote engine."""
    return engine.settings if isinstance(engine, RemoteEngine) else SearchSettings.of_engine(engine)


class ServerConnection:
    """An HTTP client of one `prism serve` (thread-safe: one connection pool for every call)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        try:
            import httpx
        except ImportError:
            raise MissingDependencyError("a prism serve client (prism tui --server)", "httpx", "tui") from None
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise PrismError(f"server URL {url!r}: write it as http://HOST:PORT (or https://)")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        try:
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0))
        except (httpx.InvalidURL, ValueError) as exc:
            raise PrismError(f"server URL {url!r} is not valid: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls

    def call(self, method: str, path: str, *, answers: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """One request; its JSON answer, or a `PrismError` that says what went wrong. Error
        statuses in `answers` are answers too (`/readyz` is 503 while loading)."""
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServerUnavailable(f"prism serve at {self.url} did not answer {path} within {self.timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            reason = str(exc) or type(exc).__name__
            raise ServerUnavailable(f"cannot reach prism serve at {self.url}: {reason}") from None
        if response.status_code >= 400 and response.status_code not in answers:
            raise self._refused(response)
        try:
            return response.json()
        except ValueError:
            raise ServerRefused(response.status_code, f"{self.url}{path} did not answer with JSON; "
                                                      f"is {self.url} a prism serve?") from None

    def _refused(self, response: httpx.Response) -> ServerRefused:
        status = response.status_code
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {status} {response.reason_phrase}"
        if status == 401:
            return ServerRefused(status, f"prism serve at {self.url} refused the request: {message}; {KEY_HINT}")
        if status == 404 and message.startswith("HTTP "):  # not our error body: another service, an old server
            return ServerRefused(status, f"{self.url}{response.request.url.path}: {message}; is {self.url} a prism serve?")
        return ServerRefused(status, message)

    # ------------------------------------------------------------------ recipes

    def recipes(self) -> list[dict[str, Any]]:
        """The served recipes (`GET /v1/recipes`)."""
        return list(self.call("GET", "/v1/recipes"))

    def readiness(self) -> dict[str, str]:
        """Each served recipe's state: `ready`, `loading` or `failed: ...` (`GET /readyz`)."""
        return dict(self.call("GET", "/readyz", answers=(503,)).get("recipes", {}))

    def engine(self, recipe: str | None = None) -> RemoteEngine:
        """The served recipe named `recipe` (or the one loaded from that recipe file); None: the
        only one served, or the first."""
        served = self.recipes()
        if not served:
            raise PrismError(f"prism serve at {self.url} serves no recipe")
        names = ", ".join(f"{r['name']} ({r['source']})" for r in served)
        if recipe is None:
            return RemoteEngine(self, served[0])
        for summary in served:
            if summary["name"] == recipe:
                return RemoteEngine(self, summary)
        path = Path(recipe)
        if path.is_file():
            for summary in served:
                if Path(summary["source"]).resolve() == path.resolve():
                    return RemoteEngine(self, summary)
            raise PrismError(f"prism serve at {self.url} does not serve the recipe file {recipe}; it serves: {names}")
        raise PrismError(f"prism serve at {self.url} serves no recipe named {recipe!r}; it serves: {names}")


class RemoteEngine:
    """One served recipe, searched over HTTP. It does not own its connection (several recipes
    of one server share it): close the `ServerConnection`."""

    def __init__(self, connection: ServerConnection, summary: Mapping[str, Any]):
        self.connection = connection
        self.summary = dict(summary)
        self.settings = SearchSettings.of_summary(summary)
        self._extensions = {str(k): Modality(v) for k, v in (summary.get("extensions") or {}).items()}

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def url(self) -> str:
        return self.connection.url

    @property
    def source(self) -> str:
        """The recipe file, as the server loaded it (a path on the server's machine)."""
        return str(self.summary.get("source", ""))

    def __repr__(self) -> str:
        return f"RemoteEngine({self.name!r} at {self.url})"

    # ------------------------------------------------------------------ state

    def status(self) -> str:
        """`ready`, `loading` or `failed: ...`, as the server reports this recipe."""
        return self.connection.readiness().get(self.name, "not served")

    @property
    def path(self) -> str:
        """This recipe's routes: `/v1/recipes/NAME`."""
        return f"/v1/recipes/{quote(self.name, safe='')}"

    def info(self) -> dict[str, Any]:
        """The server's `prism info --json` of this recipe."""
        return dict(self.connection.call("GET", self.path))

    def loading(self) -> list[str]:
        """Retrievers still loading: none (the server answers searches only once ready)."""
        return []

    def close(self) -> None:
        """Nothing to release: the connection is shared."""

    # ------------------------------------------------------------------ routing

    def claimed_extensions(self) -> dict[str, Modality]:
        """Extensions the server's loaders claim beyond the built-in table."""
        return dict(self._extensions)

    def modality_of(self, path: str | Path) -> Modality | None:
        return modality_of_path(path, self._extensions)

    def query_modalities(self) -> set[Modality]:
        return {m for r in self.settings.retrievers.values() for m in r.query_modalities}

    def retrievers_for(self, modality: Modality | str) -> list[str]:
        m = Modality(modality)
        return [name for name, r in self.settings.retrievers.items() if m in r.query_modalities]

    # ------------------------------------------------------------------ search

    def search(self, query: Any, **options: Any) -> list[Hit]:
        return self.search_detailed(query, **options).hits

    def search_detailed(
        self, query: str | Path | bytes, *, top_k: int | None = None,
        filter: str | Sequence[str] | Mapping[str, Any] | Filter | None = None,
        weights: Mapping[str, float] | None = None, modality: Modality | str | None = None,
        exact: bool | None = None, retrievers: Sequence[str] | None = None,
    ) -> SearchResult:
        """Search on the server. The query is read here as the local engine reads it (text, or a
        file whose extension sets the modality: uploaded); the filter is checked here too."""
        if retrievers is not None:
            raise QueryError("a served recipe searches every retriever its query routes to; leave `retrievers` out")
        q = as_query(query, modality, self._extensions)
        expressions = filter_expressions(parse_filter(filter))
        path = f"{self.path}/search"
        if isinstance(q.content, str):
            body: dict[str, Any] = {"query": q.content, "top_k": top_k, "filters": expressions,
                                    "weights": dict(weights) if weights else None, "exact": exact}
            answer = self.connection.call("POST", path, json={k: v for k, v in body.items() if v is not None})
        else:
            if exact is not None:
                raise QueryError("`exact` is not available for uploaded queries")
            answer = self.connection.call("POST", path + "/upload", files={"file": _upload(q.content, q.modality)},
                                          data=_form(q.modality, top_k, expressions, weights))
        return self.result_of(answer)

    def result_of(self, answer: Mapping[str, Any]) -> SearchResult:
        """A search answer as a `SearchResult`."""
        try:
            routed = [str(r) for r in answer["retrievers"]]
            top_ks = {str(k): int(v) for k, v in (answer.get("top_ks") or {}).items()} or {
                r: self.settings.retrievers[r].top_k for r in routed if r in self.settings.retrievers}
            return SearchResult([hit_from_dict(h) for h in answer["hits"]],
                                {str(k): float(v) for k, v in answer.get("timings", {}).items()},
                                routed, top_ks, [str(n) for n in answer.get("notes") or []])
        except (KeyError, TypeError, ValueError) as exc:
            raise PrismError(f"prism serve at {self.url} answered a search in an unexpected shape "
                             f"({type(exc).__name__}: {exc}); is it the same prismrag version?") from None


def _upload(media: Any, modality: Modality) -> tuple[str, bytes, str]:
    assert isinstance(media, Media)
    name = media.path.name if media.path is not None else f"query.{modality.value}"
    return name, media.read(), mimetypes.guess_type(name)[0] or "application/octet-stream"


def _form(modality: Modality, top_k: int | None, expressions: list[str],
          weights: Mapping[str, float] | None) -> dict[str, Any]:
    form: dict[str, Any] = {"modality": modality.value, "filters": expressions}
    if top_k is not None:
        form["top_k"] = str(top_k)
    if weights:
        form["weights"] = json.dumps(dict(weights))
    return form


_WORD_OPS = {"in": "in", "not_in": "not in", "prefix": "prefix", "not_prefix": "not prefix",
             "contains": "contains", "not_contains": "not contains"}
_SYMBOL_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def filter_expressions(flt: Filter | None) -> list[str]:
    """A filter as the server's `filters` expressions (one per condition, values as JSON), which
    parse back into the same conditions."""
    out = []
    for c in flt.conditions if flt is not None else ():
        if c.op == "exists":
            out.append(f"{c.key} {'exists' if c.value else 'not exists'}")
        elif c.op in _SYMBOL_OPS:
            out.append(f"{c.key}{_SYMBOL_OPS[c.op]}{json.dumps(c.value)}")
        else:
            out.append(f"{c.key} {_WORD_OPS[c.op]} {json.dumps(c.value)}")
    return out


def hit_from_dict(data: Mapping[str, Any]) -> Hit:
    """A hit as `Hit.to_dict` (and `prism search --json`, and the server) writes it."""
    prov = data.get("provenance") or {}
    fusion = prov.get("fusion") or {}
    traces = {
        str(name): RetrieverTrace(
            int(t["rank"]), float(t["score"]),
            tuple(StageTrace(str(s["field"]), int(s["rank"]), float(s["score"]), int(s["limit"])) for s in t.get("stages", ())),
            t.get("best_part"), t.get("part_label"),
        )
        for name, t in (prov.get("retrievers") or {}).items()
    }
    provenance = Provenance(
        retrievers=traces,
        fusion=fusion.get("name"),
        contributions={str(k): float(v) for k, v in (fusion.get("contributions") or {}).items()},
        fused_score=None if fusion.get("score") is None else float(fusion["score"]),
        rerank=tuple(RerankTrace(str(r["stage"]), float(r["score"]), int(r["rank_before"]), int(r["rank_after"]))
                     for r in prov.get("rerank") or ()),
    )
    return Hit(str(data["id"]), float(data["score"]), int(data["rank"]), Modality(data["modality"]),
               dict(data.get("payload") or {}), provenance)
