"""Markdown front matter: a YAML mapping between `---` lines at the top of a file, read into
metadata (dates as ISO strings, so `date>=2024-01-01` filters work) instead of indexed text."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from prismrag.contracts import RESERVED_PAYLOAD_KEYS

_OPEN = re.compile(r"---[ \t]*\r?\n")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.MULTILINE)


def _plain(value: Any) -> Any:
    """A YAML value as JSON payload: dates and times as ISO strings, other odd types as text."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def front_matter(text: str) -> tuple[int, dict[str, Any], list[str]]:
    """(where the body starts, the fields, reserved keys left out) of a Markdown text; (0, {}, [])
    when it has no front matter. A block that is not a YAML mapping raises ValueError."""
    opening = _OPEN.match(text)
    if opening is None:
        return 0, {}, []
    closing = _CLOSE.search(text, opening.end())
    if closing is None:
        return 0, {}, []  # a lone `---` line is a thematic break, not front matter
    import yaml

    block = text[opening.end() : closing.start()]
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"front matter is not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"front matter must be a YAML mapping of `key: value` lines, got a {type(data).__name__}")
    fields = {str(k): _plain(v) for k, v in data.items()}
    dropped = sorted(k for k in fields if k in RESERVED_PAYLOAD_KEYS)
    for k in dropped:
        del fields[k]
    return closing.end(), fields, dropped
