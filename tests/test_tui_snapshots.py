"""SVG snapshots (pytest-textual-snapshot) of the search, recipe, eval and plugins screens at 80x24
(the default terminal) and 120x40.

Deterministic: the hash test encoder, fixed corpus and file names, timings and versions hidden.
Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("pytest_textual_snapshot")

from fake_plugins import TestPlugin, make_registry  # noqa: E402
from tui_helpers import write_beir, write_corpus, write_recipe  # noqa: E402

import prismrag  # noqa: E402
from prismrag import Registry  # noqa: E402
from prismrag.registry import PluginLoadError  # noqa: E402
from prismrag.tui.app import PrismApp  # noqa: E402
from prismrag.tui.eval_screen import EvalScreen  # noqa: E402
from prismrag.tui.search_screen import SearchScreen  # noqa: E402

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


@pytest.fixture(autouse=True)
def _no_timings(monkeypatch):
    monkeypatch.setattr(SearchScreen, "SHOW_TIMINGS", False)
    monkeypatch.setattr(EvalScreen, "SHOW_TIMINGS", False)


async def _until(pilot, condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        await pilot.pause(0.02)


@SIZES
def test_search_screen_with_results_and_detail(snap_compare, tmp_path: Path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path)
    recipe = write_recipe(tmp_path)
    registry = make_registry()
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        engine.ingest()
    app = PrismApp(recipe, registry=registry, recipes_dir=recipe.parent)

    async def run_before(pilot) -> None:
        # the switch to the search screen and the warm-up thread race: wait for both
        await _until(pilot, lambda: app.engine_ready and isinstance(app.screen, SearchScreen))
        screen = app.screen
        await _until(pilot, lambda: len(screen.query(".weight")) == 2)  # weight inputs mount late
        screen.query_one("#query").value = "which animals hunt mice at night"
        await _until(pilot, lambda: screen._request is not None and len(screen._hits) == 5)
        await pilot.press("ctrl+r", "down")
        await _until(pilot, lambda: screen._pending_detail is None)
        # the detail panel draws a frame after the table; give a loaded machine time to settle
        await pilot.pause(0.5)
        await _until(pilot, lambda: app.screen is screen and len(app.screen.query(".weight")) == 2)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_eval_screen_comparing_two_recipes(snap_compare, tmp_path: Path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    data = write_beir(tmp_path)
    a = write_recipe(tmp_path, "alpha", rerank=False)
    b = write_recipe(tmp_path, "beta", salt="b", rerank=False)
    app = PrismApp(a, registry=make_registry(), warm_up=False)

    async def run_before(pilot) -> None:
        await pilot.press("f5")
        screen = app.screen
        screen.query_one("#eval-data").value = "toy"
        screen.query_one("#eval-other").value = "recipes/beta.yaml"
        screen.action_run()
        await _until(pilot, lambda: screen.outcome is not None, timeout=30)
        screen.query_one("#eval-queries").focus()
        await pilot.pause(0.1)

    assert data.exists() and b.exists()
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_plugins_screen_with_a_broken_plugin(snap_compare, tmp_path: Path, size):
    from prismrag.plugins import (
        bm25_encoder,
        fusions,
        indexes,
        loaders,
        qdrant_edge_store,
        rerankers,
    )

    registry = Registry(entry_points=False)  # no installed versions in the picture
    for module in (bm25_encoder, indexes, fusions, rerankers, loaders, qdrant_edge_store):
        registry.add_plugin(module, name=module.__name__.rsplit(".", 1)[-1])
    registry.add_plugin(TestPlugin(), name="tests")
    registry.all_components()
    registry.load_errors.append(
        PluginLoadError("prism-audio", "prism-audio", "ModuleNotFoundError: No module named 'torchaudio'")
    )
    app = PrismApp(registry=registry, recipes_dir=tmp_path)
    assert snap_compare(app, terminal_size=size, press=["f6"])


@SIZES
def test_recipe_screen_summary(snap_compare, tmp_path: Path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path)
    recipe = write_recipe(tmp_path)
    write_recipe(tmp_path, "beta", salt="b", rerank=False)
    app = PrismApp(recipe, registry=make_registry(), recipes_dir=recipe.parent, warm_up=False)

    async def run_before(pilot) -> None:
        await _until(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press("f2")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_items_screen(snap_compare, tmp_path: Path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path)
    recipe = write_recipe(tmp_path)
    registry = make_registry()
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        engine.ingest()
    app = PrismApp(recipe, registry=registry, recipes_dir=recipe.parent)

    async def run_before(pilot) -> None:
        await _until(pilot, lambda: app.engine_ready)
        await pilot.press("f7")
        await _until(pilot, lambda: app.screen.query("#items") and app.screen.query_one("#items").row_count == 6)
        await pilot.press("ctrl+r", "down")
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
