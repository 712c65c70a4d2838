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


def test_every_builtin_plugin_module_is_an_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    targets = set(project["entry-points"]["prismrag"].values())
    modules = {f"prismrag.plugins.{p.stem}" for p in (ROOT / "plugins").glob("*.py") if p.stem != "__init__"}
    assert modules == targets


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
