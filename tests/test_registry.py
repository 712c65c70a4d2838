"""The registry: duplicate names refused naming both plugins, and no half-loaded registry."""

from __future__ import annotations

import textwrap

import pytest
from fake_plugins import HashEncoder, TestPlugin

import prismrag
from prismrag import RecipeError, Registry, hookimpl
from prismrag.errors import DuplicateComponentError, UnknownComponentError
from prismrag.registry import PluginLoadError


class OtherHash(HashEncoder):
    """Another class under the same registered name."""


class Clashing:
    @hookimpl
    def register_encoders(self, register):
        register(OtherHash)


def test_a_duplicate_name_names_both_plugins_and_every_later_lookup_says_so():
    registry = Registry()
    registry.add_plugin(TestPlugin(), name="tests")
    registry.add_plugin(Clashing(), name="clashing")
    for _ in range(2):  # the second lookup must not see a half-registered set as whole
        with pytest.raises(DuplicateComponentError) as info:
            registry.get("fusion", "rrf")
        assert "hash" in str(info.value) and "tests" in str(info.value) and "clashing" in str(info.value)


def test_a_taken_plugin_name_fails_every_lookup_not_only_the_first():
    registry = Registry()
    registry.add_plugin(TestPlugin(), name="loaders")  # the name of a built-in entry point
    for _ in range(2):
        with pytest.raises(prismrag.PrismError, match="loaders"):
            registry.components("fusion")


def test_unknown_component_names_plugins_that_failed_to_load(tmp_path):
    registry = Registry()
    registry.add_plugin(TestPlugin(), name="tests")
    registry.all_components()
    registry.load_errors.append(PluginLoadError("my-enc", "prismrag-my-enc", "ModuleNotFoundError: No module named 'torch'"))
    with pytest.raises(UnknownComponentError, match="failed to load: my-enc: ModuleNotFoundError"):
        registry.get("encoder", "my-enc")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: r
        retrievers:
          dense: {encoder: {use: my-enc}}
        """))
    with pytest.raises(RecipeError) as info:
        prismrag.load_recipe(recipe, registry=registry)
    msg = str(info.value)
    assert "retrievers.dense.encoder.use" in msg and "unknown encoder 'my-enc'" in msg
    assert "failed to load: my-enc: ModuleNotFoundError: No module named 'torch'" in msg
