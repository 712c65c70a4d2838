"""The layering rule of prismrag's modules, checked from their import statements (ast).

import-linter does the same for ordinary packages, but builds its graph by walking the package's
folder, and ours maps `prismrag.plugins` and `prismrag.tui` from folders outside `core/`; reading
the imports ourselves is fifty lines and sees every file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

LAYERS: list[tuple[str, set[str]]] = [
    ("base types", {"types", "errors", "_deprecated"}),
    ("contracts", {"contracts", "hookspecs"}),
    ("support", {"support", "components", "models", "_compat", "chunking"}),
    ("registry", {"registry"}),
    ("recipe", {"recipe", "recipe_files", "filters"}),
    ("engine", {"engine", "collection", "concurrency", "ingest", "items", "search", "query", "explain", "cache", "progress"}),
    ("eval", {"evaluation", "metrics", "datasets", "labelled_sets", "compare", "plan_recall", "tune", "tune_space", "tune_fast", "tune_report", "recipe_writer"}),
    ("front ends", {"cli", "eval_cli", "tune_cli", "items_cli", "init_cli", "reference", "tui", "server", "testing", "__init__"}),
]
PLUGIN_ALLOWED = {"prismrag", "prismrag.contracts", "prismrag.support"}
"""What a built-in plugin may import from prismrag (besides `prismrag.plugins._*` helpers)."""


def layer_of(module: str) -> int | None:
    """The layer index of a `prismrag.X...` module (None for plugins and unknown modules)."""
    parts = module.split(".")
    if parts[0] != "prismrag":
        return None
    top = parts[1] if len(parts) > 1 else "__init__"
    if top == "plugins":
        return None
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    return None


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of a file under the repository root (core/ is `prismrag`)."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    head = {"core": ["prismrag"], "plugins": ["prismrag", "plugins"], "tui": ["prismrag", "tui"]}[parts[0]]
    return ".".join(head + parts[1:])


def imports_of(source: str, module: str, is_package: bool) -> Iterable[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module:
                yield node.lineno, target
            else:  # `from . import x`: x is a module of the package
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"


def violations(files: Iterable[Path], root: Path) -> list[str]:
    """`file:line: module imports target (why)` for every import that breaks the layering."""
    out = []
    for path in sorted(files):
        module = module_name(path, root)
        own = layer_of(module)
        is_plugin = module.startswith("prismrag.plugins")
        for line, target in imports_of(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            if not target.startswith("prismrag"):
                continue
            where = f"{path.relative_to(root)}:{line}: {module} imports {target}"
            if is_plugin:
                helper = target.startswith("prismrag.plugins._") or target == "prismrag.plugins"
                if not helper and not any(target == a or target.startswith(a + ".") and a != "prismrag" for a in PLUGIN_ALLOWED):
                    out.append(f"{where} (plugins import only prismrag, prismrag.contracts and prismrag.support)")
                continue
            theirs = layer_of(target)
            if target.startswith("prismrag.plugins"):
                out.append(f"{where} (plugins come through entry points; nothing imports them)")
            elif own is not None and theirs is not None and theirs > own:
                out.append(f"{where} ({LAYERS[own][0]} may not depend on {LAYERS[theirs][0]})")
    return out


def project_files(root: Path) -> list[Path]:
    return [p for folder in ("core", "plugins", "tui") for p in (root / folder).rglob("*.py")]
