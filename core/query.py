"""Queries from what a user types or hands over: text, a file path, bytes with a modality."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import QueryError
from .types import Media, Modality, Query, modality_of_path


def as_query(value: Any, modality: Modality | str | None = None, claimed: Mapping[str, Modality] | None = None) -> Query:
    """A Query from text, a file path (modality from its extension, `claimed` first: the
    extensions installed loaders claim), or bytes with a modality."""
    if isinstance(value, Query):
        return value
    if modality is not None:
        modality = Modality(modality)
    if isinstance(value, bytes):
        if modality is None:
            raise QueryError("a query given as bytes needs its modality (image, audio, video, shape)")
        return Query(modality, Media(data=value))
    if isinstance(value, Path) or (isinstance(value, str) and _is_file(value)):
        path = Path(value)
        if not path.is_file():
            raise QueryError(f"query file {str(path)!r} does not exist")
        detected = modality or modality_of_path(path, claimed)
        if detected is None:
            raise QueryError(f"cannot tell the modality of {str(path)!r} from its extension; pass it explicitly")
        if detected == Modality.TEXT:
            return Query.text(path.read_text(encoding="utf-8"))
        return Query(detected, Media(path=path.resolve()))
    if isinstance(value, str):
        if not value.strip():
            raise QueryError("the query is empty")
        if modality not in (None, Modality.TEXT):  # a file that is not there, not text to embed
            raise QueryError(f"query file {value!r} does not exist (a {modality.value} query needs a file or bytes)")
        return Query(Modality.TEXT, value)
    raise QueryError(f"cannot search with a {type(value).__name__}; give text, a path, bytes or a Query")



def _is_file(text: str) -> bool:
    if len(text) > 4096 or "\n" in text:
        return False
    try:
        return Path(text).expanduser().is_file()
    except OSError:
        return False
