"""Dependencies go one way: base types -> contracts -> support -> registry -> recipe -> engine ->
eval -> front ends; plugins use contracts and support only."""

from __future__ import annotations

from pathlib import Path

import pytest
from layering import LAYERS, layer_of, project_files, violations

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_keeps_its_layers():
    assert violations(project_files(ROOT), ROOT) == []


def test_every_core_module_has_a_layer():
    unknown = [p.name for p in (ROOT / "core").glob("*.py") if layer_of(f"prismrag.{p.stem}") is None]
    unknown += [p.name for p in (ROOT / "core").iterdir() if p.is_dir() and p.name != "__pycache__"
                and layer_of(f"prismrag.{p.name}") is None]
    assert unknown == []


@pytest.mark.parametrize(
    ("folder", "name", "code", "why"),
    [
        ("plugins", "bad_plugin.py", "from prismrag.engine import Engine\n", "plugins import only"),
        ("plugins", "bad_plugin.py", "def f():\n    from prismrag.types import Item\n", "plugins import only"),
        ("plugins", "bad_plugin.py", "from prismrag.plugins.loaders import TextFilesLoader\n", "plugins import only"),
        ("core", "bad_core.py", "", None),
        ("core/contracts", "bad.py", "from ..engine import Engine\n", "contracts may not depend on engine"),
        ("core/support", "bad.py", "from prismrag.recipe import RecipeSpec\n", "support may not depend on recipe"),
        ("core", "registry.py", "import prismrag.plugins.fusions\n", "nothing imports them"),
    ],
)
def test_a_deliberate_violation_is_caught(tmp_path, folder, name, code, why):
    target = tmp_path / folder / name
    target.parent.mkdir(parents=True)
    target.write_text(code)
    found = violations([target], tmp_path)
    if why is None:
        assert found == []
    else:
        assert len(found) == 1 and why in found[0], found


def test_plugins_may_use_the_public_surface_and_their_own_helpers(tmp_path):
    target = tmp_path / "plugins" / "good.py"
    target.parent.mkdir()
    target.write_text(
        "from prismrag import hookimpl\nfrom prismrag.contracts import Encoder\n"
        "from prismrag.support import LoadOnce\nfrom ._qdrant import chunks\n"
    )
    assert violations([target], tmp_path) == []


def test_layers_are_named_once():
    names = [n for _, group in LAYERS for n in group]
    assert len(names) == len(set(names))
