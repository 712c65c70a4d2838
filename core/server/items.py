"""Stored items over HTTP: get by id, list and count by filter, delete by id or filter (the
engine's item API; ingest is in `app`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query

from ..filters import parse_filter
from .schemas import CountResponse, DeleteRequest, DeleteResponse, ItemList, StoredItemOut
from .security import ServerError
from .state import Served


def add_routes(app: FastAPI, served: Served, run: Any, config: Any, errors: dict[int | str, dict[str, Any]]) -> None:
    @app.get("/v1/recipes/{recipe}/count", response_model=CountResponse, responses=errors)
    async def count(
        recipe: str,
        filter: Annotated[list[str], Query(description="KEY=VALUE expressions, as `prism search --filter`")] = [],  # noqa: B006
        owner: str | None = None,
    ) -> dict[str, Any]:
        engine = served.engine(recipe)
        flt = parse_filter(filter or None)
        return {"recipe": recipe, "count": await run(lambda: engine.count(flt, owner=owner), config.timeout)}

    @app.get("/v1/recipes/{recipe}/items", response_model=ItemList, responses=errors)
    async def list_items(
        recipe: str,
        filter: Annotated[list[str], Query(description="KEY=VALUE expressions, as `prism search --filter`")] = [],  # noqa: B006
        owner: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        engine = served.engine(recipe)
        flt = parse_filter(filter or None)
        found = await run(lambda: engine.list_items(flt, owner=owner, limit=limit, offset=offset), config.timeout)
        return {"items": [i.to_dict() for i in found]}

    @app.get("/v1/recipes/{recipe}/items/{item_id}", response_model=StoredItemOut, responses=errors)
    async def get_item(recipe: str, item_id: str) -> dict[str, Any]:
        engine = served.engine(recipe)
        found = await run(lambda: engine.get_items([item_id]), config.timeout)
        if item_id not in found:
            raise ServerError(404, f"recipe {recipe!r} has no item {item_id!r}")
        return found[item_id].to_dict()

    @app.post("/v1/recipes/{recipe}/items/delete", response_model=DeleteResponse, responses=errors)
    async def delete(recipe: str, body: DeleteRequest) -> dict[str, Any]:
        engine = served.engine(recipe)
        if body.filter is not None and body.filters:
            raise ServerError(422, "give `filter` (a dict) or `filters` (expressions), not both")
        flt = parse_filter(body.filter if body.filter is not None else (body.filters or None))
        deleted = await run(lambda: engine.delete(body.ids, filter=flt, owner=body.owner), config.ingest_timeout)
        return {"deleted": deleted}
