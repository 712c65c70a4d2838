"""Reading recipe files safely: YAML or TOML into plain data, bounded in size and depth, with
duplicate keys refused and `{"$env": NAME}` values resolved. Every problem names the file and line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomllib

from .errors import RecipeError

MAX_VALUES = 100_000
"""Most values a recipe may hold once YAML aliases are expanded (a "billion laughs" file is refused)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a recipe may have."""


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or TOML file into a dict; syntax errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(str(path), [("", "no such recipe file")])
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(str(path), [("", (
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the recipe as UTF-8"
        ))]) from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise RecipeError(str(path), [("", f"invalid TOML: {exc}")]) from exc
        else:
            data = _load_yaml(text, str(path))
    except RecursionError:
        raise RecipeError(str(path), [("", f"nested too deeply (more than {MAX_DEPTH} levels)")]) from None
    problem = _size_problem(data)
    if problem:
        raise RecipeError(str(path), [("", problem)])
    if not isinstance(data, dict):
        raise RecipeError(str(path), [("", "a recipe must be a mapping with at least `name` and `retrievers`")])
    return data


def _load_yaml(text: str, source: str) -> Any:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """Safe YAML that refuses a key given twice in one mapping."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[tuple[str, str], Any] = {}
            for key_node, _ in node.value:  # the node's own keys; `<<` merges may be overridden
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r} (first at line {seen[key].line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise RecipeError(source, [("", f"invalid YAML: {_yaml_message(exc)}")]) from exc
    except yaml.YAMLError as exc:
        raise RecipeError(source, [("", f"invalid YAML: {exc}")]) from exc


def _size_problem(data: Any) -> str | None:
    """Why the parsed recipe is too big or too deep once aliases are expanded (None if it is not).
    Shared nodes are measured once, so this is linear in the file, not in the expansion."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if depth > MAX_DEPTH:
            raise _TooBig(f"nested too deeply (more than {MAX_DEPTH} levels)")
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _TooBig("a YAML alias refers to a node that contains it (a loop)")
        active.add(key)
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        total = 1 + sum(size(v, depth + 1) for _, v in children)
        active.discard(key)
        if total > MAX_VALUES:
            raise _TooBig(f"expands to more than {MAX_VALUES:,} values (YAML aliases repeated inside each other?)")
        sizes[key] = total
        return total

    try:
        size(data, 0)
    except _TooBig as exc:
        return str(exc)
    return None


class _TooBig(Exception):
    pass


def _yaml_message(exc: Any) -> str:
    def at(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    msg = f"{at(exc.problem_mark)}: {exc.problem}" if exc.problem_mark else str(exc.problem or exc)
    if exc.context and exc.context_mark:
        msg += f" ({exc.context} at {at(exc.context_mark)})"
    return msg


def resolve_env(data: Any, path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """Replace every `{"$env": "NAME"}` with that environment variable's value."""
    problems: list[tuple[str, str]] = []

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            if set(node) == {"$env"}:
                var = node["$env"]
                if not isinstance(var, str) or var not in os.environ:
                    problems.append((where, f"environment variable {var!r} is not set (export {var}=...)"))
                    return None
                return os.environ[var]
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        return node

    return walk(data, path), problems
