"""Meta-tests: hooks documented, built-ins declared as entry points, the reference up to date."""

from __future__ import annotations

import inspect
from pathlib import Path

import tomllib

from prismrag import hookspecs
from prismrag.reference import render_reference
from prismrag.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def _hooks():
    return [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "prismrag_spec")]


def test_every_hook_has_a_docstring_and_is_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    hooks = _hooks()
    assert {h.__name__ for h in hooks} >= set(hookspecs.REGISTRATION_HOOKS.values()) | {"resolve_model"}
    for hook in hooks:
        assert (hook.__doc__ or "").strip(), f"{hook.__name__} has no docstring"
        assert f"`{hook.__name__}(" in guide, f"{hook.__name__} is missing from docs/plugins.md"


FRONT_END_PLUGINS = {"prismrag.eval_cli", "prismrag.tune_cli", "prismrag.items_cli", "prismrag.init_cli", "prismrag.tui.command", "prismrag.server.command"}
"""Entry points that register `prism` subcommands rather than components."""


def test_every_builtin_plugin_module_is_an_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    targets = set(project["entry-points"]["prismrag"].values())
    # `_`-prefixed modules are private helpers of the plugins, not plugins
    modules = {f"prismrag.plugins.{p.stem}" for p in (ROOT / "plugins").glob("*.py") if not p.stem.startswith("_")}
    assert targets == modules | FRONT_END_PLUGINS


def test_no_module_in_core_or_plugins_is_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for folder in ("core", "plugins") for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_builtins_load_cleanly_and_describe_themselves():
    registry = Registry()
    assert registry.load_errors == []
    builtins = [i for i in registry.all_components() if i.distribution == "prismrag"]
    assert {i.kind for i in builtins} == set(hookspecs.REGISTRATION_HOOKS)
    for info in builtins:
        assert info.cls.description, f"{info.kind} {info.name} has no description"


def test_component_reference_is_up_to_date():
    expected = render_reference(Registry())
    current = (ROOT / "docs" / "components.md").read_text()
    assert current == expected, "run: python -m prismrag.reference > docs/components.md"
