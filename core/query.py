"""Queries from what a user types or hands over: text, a file path, bytes with a modality."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import QueryError
from .types import Media, Modality, Query, extensions_of, modality_of_path

MAX_QUERY_FILE_BYTES = 10_000_000
"""A text query read from a file is read whole: a bound on its memory (searching is linear in it)."""


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
    if isinstance(value, str) and modality == Modality.TEXT:
        if not value.strip():
            raise QueryError("the query is empty")
        return Query(Modality.TEXT, value)  # an explicit text modality wins over a file of that name
    if isinstance(value, Path) or (isinstance(value, str) and _is_file(value)):
        path = Path(value)
        if not path.is_file():
            raise QueryError(f"query file {str(path)!r} does not exist")
        detected = modality or modality_of_path(path, claimed)
        if detected is None:
            raise QueryError(f"cannot tell the modality of {str(path)!r} from its extension; pass it explicitly")
        if detected == Modality.TEXT:
            if path.suffix.lower() not in extensions_of(Modality.TEXT):  # a document (.pdf, .docx): no query text
                raise QueryError(
                    f"{str(path)!r} is a {path.suffix} document, not a text query: search with words from it "
                    f"(--modality text searches the name {str(path)!r} itself)"
                )
            size = path.stat().st_size
            if size > MAX_QUERY_FILE_BYTES:
                raise QueryError(
                    f"query file {str(path)!r} holds {size / 1e6:,.1f} MB; a text query is read whole, so at most "
                    f"{MAX_QUERY_FILE_BYTES / 1e6:g} MB: search with a part of it"
                )
            try:
                return Query.text(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError as exc:
                raise QueryError(f"query file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        return Query(detected, Media(path=path.resolve()))
    if isinstance(value, str):
        if not value.strip():
            raise QueryError("the query is empty")
        if modality is not None:  # a file that is not there, not text to embed
            raise QueryError(f"query file {value!r} does not exist ({modality.value} queries need a file or bytes)")
        implied = _media_name(value, claimed)
        if implied is not None:
            raise QueryError(
                f"no file named {value!r} (its extension says {implied.value}); "
                "check the path, or search the words themselves with --modality text (modality='text' in Python)"
            )
        return Query(Modality.TEXT, value)
    raise QueryError(f"cannot search with a {type(value).__name__}; give text, a path, bytes or a Query")


def _media_name(text: str, claimed: Mapping[str, Modality] | None) -> Modality | None:
    """The media modality a one-word query's extension implies (`photo.jpg`), else None."""
    if len(text) > 4096 or any(c.isspace() for c in text.strip()):
        return None
    modality = modality_of_path(text.strip(), claimed)
    return modality if modality not in (None, Modality.TEXT) else None


def query_source(value: Any, modality: Modality | str | None = None) -> str | None:
    """The file a CLI query string will be read from, or None when it is searched as text."""
    if not isinstance(value, str) or (modality is not None and Modality(modality) == Modality.TEXT):
        return None
    return value if _is_file(value) else None


def _is_file(text: str) -> bool:
    if len(text) > 4096 or "\n" in text:
        return False
    try:
        return Path(text).expanduser().is_file()
    except OSError:
        return False
