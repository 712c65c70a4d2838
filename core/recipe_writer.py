"""Write a recipe with tuned settings: the original file with `fusion` and each retriever's
`top_k` replaced, its comments and layout kept (ruamel.yaml's round trip), under a header comment.

A TOML recipe is written as YAML (its comments are not carried; the header says so). Relative
`path` values of the store and the sources are rewritten when the output lies in another folder,
so they still name the same places (absolute when the two folders share only the root). The file written is validated as a recipe before returning.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError, PrismError
from .recipe import build_recipe, load_recipe_spec, read_recipe_file
from .registry import Registry


def _yaml() -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError as exc:
        raise MissingDependencyError("writing a tuned recipe (with its comments kept)", "ruamel.yaml", "tune") from exc
    yaml = YAML()  # round trip: comments, key order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 120
    return yaml


def _flow(mapping: Mapping[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    out = CommentedMap()
    for key, value in mapping.items():
        out[key] = _flow(value) if isinstance(value, Mapping) else value
    out.fa.set_flow_style()
    return out


def _move_path(value: Any, source_dir: Path, out_dir: Path) -> Any:
    if not isinstance(value, str) or Path(value).expanduser().is_absolute() or source_dir == out_dir:
        return value
    target = os.path.normpath(source_dir / value)
    if os.path.commonpath([target, out_dir]) == out_dir.anchor:  # only the root in common: absolute
        return target
    return os.path.relpath(target, out_dir)


def tuned_recipe_text(
    source: str | Path, out: str | Path, fusion: Mapping[str, Any], depths: Mapping[str, int],
    header: Sequence[str],
) -> str:
    """The text of the tuned recipe (see the module docstring)."""
    source, out = Path(source), Path(out)
    yaml = _yaml()
    if source.suffix.lower() == ".toml":
        data = yaml.load(io.StringIO(_plain_yaml(read_recipe_file(source))))
        header = [*header, f"converted from {source.name} (TOML): its comments are not carried"]
    else:
        data = yaml.load(source.read_text(encoding="utf-8"))
    data["fusion"] = _flow(fusion)
    for name, depth in depths.items():
        data["retrievers"][name]["top_k"] = int(depth)
    src_dir, out_dir = source.resolve().parent, out.resolve().parent
    for component in [data.get("store") or {}, *(data.get("sources") or [])]:
        if isinstance(component, dict) and "path" in component:
            component["path"] = _move_path(component["path"], src_dir, out_dir)
    buf = io.StringIO()
    yaml.dump(data, buf)
    lines = [f"# {line}".rstrip() for text in header for line in text.splitlines()]
    return "\n".join(lines) + "\n" + buf.getvalue()


def _plain_yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False)


def write_tuned_recipe(
    source: str | Path, out: str | Path, fusion: Mapping[str, Any], depths: Mapping[str, int],
    header: Sequence[str], registry: Registry | None = None,
) -> Path:
    """Write the tuned recipe to `out` and check that it validates; returns the path."""
    out = Path(out)
    text = tuned_recipe_text(source, out, fusion, depths, header)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    try:
        build_recipe(*load_recipe_spec(out), registry or Registry())
    except PrismError as exc:
        raise PrismError(f"{out}: the tuned recipe does not validate (a bug in prism tune, please report it): {exc}") from exc
    return out
