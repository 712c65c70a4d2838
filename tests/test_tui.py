"""Pilot tests of the terminal UI: each screen's main flow, with the deterministic `hash` encoder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("textual")

from fake_plugins import make_registry  # noqa: E402
from tui_helpers import make_image, write_beir, write_corpus, write_recipe  # noqa: E402

import prismrag  # noqa: E402
from prismrag.registry import PluginLoadError  # noqa: E402
from prismrag.tui.app import PrismApp  # noqa: E402
from prismrag.tui.eval_screen import EvalScreen  # noqa: E402
from prismrag.tui.help_screen import HelpScreen  # noqa: E402
from prismrag.tui.ingest_screen import IngestScreen  # noqa: E402
from prismrag.tui.plugins_screen import PluginsScreen  # noqa: E402
from prismrag.tui.recipe_screen import RecipeScreen  # noqa: E402
from prismrag.tui.search_screen import SearchRequest, SearchScreen  # noqa: E402

SIZE = (120, 40)
pytestmark = pytest.mark.anyio



async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds (workers are threads)."""
    import time

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press({" ": "space", "/": "slash", ".": "full_stop", "=": "equals_sign"}.get(ch, ch))


@pytest.fixture
def animals(tmp_path: Path):
    """A corpus, a recipe over it (already ingested) and a registry with the hash encoder."""
    write_corpus(tmp_path)
    recipe = write_recipe(tmp_path)
    registry = make_registry()
    engine = prismrag.load_recipe(recipe, registry=registry)
    engine.ingest()
    engine.close()
    return recipe, registry


def text(widget) -> str:
    """The plain text a Static shows (Rich renderables rendered 200 columns wide)."""
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.file.getvalue()


def rows(table) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_search_as_you_type_shows_hits_and_why_they_ranked(animals):
    recipe, registry = animals
    app = PrismApp(recipe, registry=registry, recipes_dir=recipe.parent)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_ready and isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert app.focused.id == "query"
        await type_text(pilot, "loyal dog barks")
        await wait_for(pilot, lambda: screen._request is not None and screen._request.query == "loyal dog barks")
        table = screen.query_one("#hits")
        assert table.row_count == 5 and rows(table)[0][2] == "dogs.md#0"
        await wait_for(pilot, lambda: "why it ranked" in text(screen.query_one("#detail-body")))
        detail = text(screen.query_one("#detail-body"))
        assert "why it ranked" in detail and "rrf" in detail and "mmr" in detail
        assert "dense" in detail and "words" in detail and "fusion share" in detail

        # top-k and weights apply live
        screen.query_one("#top-k").value = "2"
        await wait_for(pilot, lambda: table.row_count == 2)
        screen.query_one("#w-words").value = "0"
        await wait_for(pilot, lambda: screen._request.weights == {"dense": 1.0, "words": 0.0})
        assert screen._hits[0].provenance.contributions["words"] == 0.0

        # a payload filter; a bad one is shown, not raised
        screen.query_one("#top-k").value = ""
        screen.query_one("#filter").value = "file=cats.md"
        await wait_for(pilot, lambda: screen._request.filter_text == "file=cats.md" and table.row_count == 1)
        assert rows(table)[0][2] == "cats.md#0"
        screen.query_one("#filter").value = "nosuchfield=1"
        await wait_for(pilot, lambda: "unknown field" in text(screen.query_one("#search-status")))
        assert table.row_count == 0

        # moving through the results updates the detail panel; Escape clears the query
        screen.query_one("#filter").value = ""
        await wait_for(pilot, lambda: table.row_count == 5 and not screen._request.filter_text)
        await pilot.press("ctrl+r", "down")
        await wait_for(pilot, lambda: screen._hits[1].id in text(screen.query_one("#detail-body")))
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: table.row_count == 0)


async def test_stale_results_are_dropped(animals):
    recipe, registry = animals
    app = PrismApp(recipe, registry=registry, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await type_text(pilot, "owls")
        await wait_for(pilot, lambda: screen.query_one("#hits").row_count > 0)
        shown = [h.id for h in screen._hits]
        old = SearchRequest(screen._seq - 1, "boats sea", None, "", None)
        stale = app.engine.search_detailed("boats sea")
        screen._show_results(old, stale, 0.0)
        assert [h.id for h in screen._hits] == shown


@asynccontextmanager
async def ingested_app(recipe: Path):
    """The app on `recipe` (hash encoders), its engine ready and its sources ingested."""
    app = PrismApp(recipe, registry=make_registry())
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        app.engine.ingest()
        yield app, pilot


async def test_brackets_in_ids_and_text_show_verbatim_not_as_markup(tmp_path: Path):
    from textual.widgets._data_table import default_cell_formatter

    write_corpus(tmp_path, {"[b]links.md": "See [docs/plugins.md](docs/plugins.md) for [red]plugins[/red]."})
    recipe = write_recipe(tmp_path, rerank=False)
    async with ingested_app(recipe) as (app, pilot):
        screen = app.screen
        screen.query_one("#query").value = "plugins"
        await wait_for(pilot, lambda: screen.query_one("#hits").row_count == 1)
        shown = [default_cell_formatter(c).plain for c in screen.query_one("#hits").get_row_at(0)]
        assert shown[2] == "[b]links.md#0"
        assert shown[4].startswith("See [docs/plugins.md](docs/")
        # the full view's title too (issue 17: ids were drawn raw)
        from prismrag.tui.dialogs import HitScreen

        await pilot.press("ctrl+r", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HitScreen))
        assert "[b]links.md#0" in str(app.screen.query_one("#hit-title").render())


async def test_terminal_escapes_in_ids_are_shown_not_sent(tmp_path: Path):
    """Issue 17: an id with an escape sequence is drawn as visible text in the results table."""
    from textual.widgets._data_table import default_cell_formatter

    write_corpus(tmp_path, {"evil\x1b[2Jname.md": "owls hunt at night"})
    recipe = write_recipe(tmp_path, rerank=False)
    async with ingested_app(recipe) as (app, pilot):
        screen = app.screen
        screen.query_one("#query").value = "owls"
        await wait_for(pilot, lambda: screen.query_one("#hits").row_count == 1)
        shown = default_cell_formatter(screen.query_one("#hits").get_row_at(0)[2]).plain
        assert "\x1b" not in shown and "evil" in shown


async def test_image_query_detects_modality_and_draws_the_image(tmp_path: Path):
    write_corpus(tmp_path)
    red, blue = make_image(tmp_path / "imgs" / "red.png"), make_image(tmp_path / "imgs" / "blue.png", (30, 30, 220))
    recipe = write_recipe(tmp_path, rerank=False)
    recipe.write_text(recipe.read_text().replace('glob: "*.md"}', 'glob: "*.md"}\n  - {use: images, path: ../imgs}'))
    async with ingested_app(recipe) as (app, pilot):
        screen = app.screen
        screen.query_one("#query").value = str(blue)
        await wait_for(pilot, lambda: screen._request is not None and screen._hits)
        assert screen._hits[0].payload["path"].endswith("blue.png")
        assert "image query" in text(screen.query_one("#search-status"))
        await wait_for(pilot, lambda: "▀" in text(screen.query_one("#detail-body")))
        assert "blue.png" in text(screen.query_one("#detail-body"))
        assert red.exists()


async def test_recipe_screen_lists_validates_and_loads(animals, tmp_path: Path):
    recipe, registry = animals
    bad = recipe.parent / "broken.yaml"
    bad.write_text(textwrap.dedent("""\
        name: broken
        retrievers:
          dense:
            encoder: {use: hash, dimension: -3}
            colour: blue
        """))
    app = PrismApp(registry=registry, recipes_dir=recipe.parent, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RecipeScreen)
        options = screen.query_one("#recipe-list")
        assert options.option_count == 2
        options.highlighted = 1  # broken.yaml sorts before animals.yaml? check by id
        await pilot.pause()
        ids = [options.get_option_at_index(i).id for i in range(2)]
        options.highlighted = ids.index(str(bad))
        await pilot.pause()
        errors = screen.query_one("#recipe-errors")
        assert errors.display and errors.row_count >= 1
        fields = [r[0] for r in rows(errors)]
        assert "retrievers.dense.colour" in fields
        await pilot.press("enter")  # refuses to load an invalid recipe
        assert app.engine is None

        options.highlighted = ids.index(str(recipe))
        await pilot.pause()
        assert not errors.display
        summary = text(screen.query_one("#recipe-summary"))
        assert "retrievers" in summary and "rrf" in summary and "mmr" in summary
        await pilot.press("enter")
        await pilot.pause()
        assert app.engine is not None and app.engine.name == "animals"
        assert isinstance(app.screen, SearchScreen)

        # a typed path that does not exist is reported, not loaded
        await pilot.press("f2")
        screen.query_one("#recipe-path").value = str(tmp_path / "nope.yaml")
        await pilot.pause()
        assert "no such recipe file" in str(screen.query_one("#recipe-errors").get_row_at(0)[1])


async def test_ingest_screen_progress_errors_cancel_and_resume(tmp_path: Path):
    docs = {f"note{i:02d}.md": f"# Note {i}\n\nThis is note number {i} about topic {i % 3}." for i in range(12)}
    write_corpus(tmp_path, docs)
    (tmp_path / "docs" / "empty.md").write_text("")
    recipe = write_recipe(tmp_path, rerank=False, extra="ingest: {batch_size: 2, cache: false}\n")
    recipe.write_text(recipe.read_text().replace('salt: "w"}', 'salt: "w", delay: 0.4}'))  # time to cancel on a busy machine
    registry = make_registry()
    app = PrismApp(recipe, registry=registry, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, IngestScreen)
        await pilot.press("i")
        await wait_for(pilot, lambda: "encode" in screen._rows and screen.tracker.stages["encode"].done >= 2)
        assert screen._ingesting and screen.query_one("#ingest-start").disabled
        await pilot.press("c")
        await wait_for(pilot, lambda: not screen._ingesting)
        assert "cancelled" in text(screen.query_one("#ingest-summary"))
        partial = app.engine.store.info().points
        assert 0 < partial < 12

        await pilot.press("i")  # resumes: only what is missing is encoded
        await wait_for(pilot, lambda: not screen._ingesting, timeout=20)
        summary = text(screen.query_one("#ingest-summary"))
        assert "done" in summary and f"{12 - partial} added" in summary and f"{partial} unchanged" in summary
        assert app.engine.store.info().points == 12
        errors = rows(screen.query_one("#ingest-errors"))
        assert errors == [["../docs/empty.md", "file is empty; skipped"]]
        assert screen.query_one("#ingest-errors").display
        assert "items/s" in text(screen._rows["encode"].query_one(".stage-count"))

        # a no-op ingest: no "0.0 items/s" (issue 14 item 6)
        (tmp_path / "docs" / "empty.md").unlink()
        await pilot.press("i")
        await wait_for(pilot, lambda: not screen._ingesting and "done" in text(screen.query_one("#ingest-summary")),
                       timeout=20)
        summary = text(screen.query_one("#ingest-summary"))
        assert "12 unchanged" in summary and "items/s" not in summary and "no errors" in summary
        assert not screen.query_one("#ingest-errors").display
        assert "nothing to do" in text(screen._rows["encode"].query_one(".stage-count"))


async def test_plugins_screen_lists_components_and_load_errors(tmp_path: Path):
    registry = make_registry()
    registry.all_components()
    registry.load_errors.append(PluginLoadError("broken", "prism-broken", "ImportError: No module named 'nothing'"))
    app = PrismApp(registry=registry, recipes_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        screen = app.screen
        assert isinstance(screen, PluginsScreen)
        table = screen.query_one("#plugins")
        names = {r[1]: r for r in rows(table)}
        assert names["hash"][:5] == ["encoder", "hash", "image, text", "dense", "64 (param)"]
        assert names["hash"][6] == "(tests)"
        assert names["bm25"][4] == "sparse" and names["rrf"][0] == "fusion"
        errors = screen.query_one("#plugin-errors")
        assert errors.display and rows(errors)[0][:2] == ["broken", "prism-broken"]
        assert "hashed bag of words" not in text(screen.query_one("#plugin-description"))
        hash_row = [r[1] for r in rows(table)].index("hash")
        table.move_cursor(row=hash_row)
        await pilot.pause()
        assert "hashed bag of words" in text(screen.query_one("#plugin-description"))


async def test_eval_screen_runs_compares_and_drills_down(tmp_path: Path):
    data = write_beir(tmp_path)
    a = write_recipe(tmp_path, "alpha", rerank=False)
    b = write_recipe(tmp_path, "beta", salt="b", rerank=False)
    app = PrismApp(a, registry=make_registry(), warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        screen = app.screen
        assert isinstance(screen, EvalScreen)
        screen.query_one("#eval-data").value = str(data)
        screen.query_one("#eval-other").value = str(b)
        await pilot.click("#eval-run")
        await wait_for(pilot, lambda: screen.outcome is not None, timeout=30)
        metrics = rows(screen.query_one("#eval-metrics"))
        assert [r[0] for r in metrics][:2] == ["nDCG@10", "Recall@10"] and len(metrics[0]) == 6
        queries = screen.query_one("#eval-queries")
        assert [r[0] for r in rows(queries)] == ["q1", "q2", "q3"]
        queries.focus()
        queries.move_cursor(row=2)
        await pilot.pause()
        detail = text(screen.query_one("#eval-detail-body"))
        assert "rails and stations" in detail and "trains" in detail and "✓" in detail
        assert "retrieved by A alpha" in detail and "retrieved by B beta" in detail

        screen.query_one("#eval-data").value = str(tmp_path / "missing")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: "does not exist" in text(screen.query_one("#eval-status")))

        # a lone "-" passes the integer input's check; it is reported, not a crash
        screen.query_one("#eval-data").value = str(data)
        screen.query_one("#eval-limit").value = "-"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: "max docs must be a positive" in text(screen.query_one("#eval-status")))
        assert app.is_running and screen.tracker is None


async def test_help_theme_palette_and_screen_keys(animals):
    recipe, registry = animals
    app = PrismApp(recipe, registry=registry, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, SearchScreen)
        dark = app.theme
        await pilot.press("ctrl+t")
        assert app.theme != dark and "light" in app.theme
        for key, cls in (("f2", RecipeScreen), ("f3", IngestScreen), ("f5", EvalScreen), ("f6", PluginsScreen),
                         ("f4", SearchScreen)):
            await pilot.press(key)
            assert isinstance(app.screen, cls)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Go to Search" in titles and f"Open recipe {recipe}" in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"


def test_tui_subcommand_is_registered_without_importing_textual():
    code = (
        "import sys; from prismrag.cli import build_parser; p = build_parser(); "
        "a = p.parse_args(['tui', 'r.yaml']); print(a.recipe, a.func.__name__, "
        "'textual' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["r.yaml", "cmd_tui", "False", "False"]


async def test_switching_recipes_with_the_same_retriever_names_rebuilds_the_weights(animals, tmp_path: Path):
    """Issue 15 item 14: F2 → another recipe crashed with DuplicateIds('w-dense')."""
    recipe, registry = animals
    other = write_recipe(tmp_path, "beasts", salt="b")
    app = PrismApp(recipe, registry=registry, recipes_dir=recipe.parent, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.query(".weight")) == 2)
        for path in (other, recipe, other):  # both directions, and back again at once
            app.open_recipe(path)
        await wait_for(pilot, lambda: app.engine.name == "beasts" and len(screen.query(".weight")) == 2)
        await pilot.pause(0.2)
        assert app.is_running and app.return_code is None
        assert sorted(w.id for w in screen.query(".weight")) == ["w-dense", "w-words"]
        screen.query_one("#w-words").value = "0.5"
        await type_text(pilot, "owls")
        await wait_for(pilot, lambda: screen._request is not None and screen._request.weights == {"dense": 1.0, "words": 0.5})


def _inside(widget, screen) -> bool:
    """The widget is laid out wholly on screen (not pushed off the right or bottom edge)."""
    region, area = widget.region, screen.region
    return region.width > 0 and region.right <= area.right and region.bottom <= area.bottom


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_every_control_is_usable_at_80x24_and_120x40(animals, tmp_path: Path, size):
    """Issue 15 items 15 and 16: at 80x24 the keywords weight box and F5's Run button were off
    screen, snippets 8 characters wide, the F2 retriever table one letter per line; at 120x40 the
    max-docs box showed 50 after typing 150."""
    recipe, registry = animals
    app = PrismApp(recipe, registry=registry, recipes_dir=recipe.parent, warm_up=False)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.query(".weight")) == 2)
        await type_text(pilot, "owls")
        await wait_for(pilot, lambda: screen.query_one("#hits").row_count == 5)
        for widget in (*screen.query(".weight"), screen.query_one("#filter"), screen.query_one("#top-k"),
                       screen.query_one("#hits"), screen.query_one("#detail")):
            assert _inside(widget, screen), widget
        snippet_column = screen.query_one("#hits").ordered_columns[-1]
        assert snippet_column.get_render_width(screen.query_one("#hits")) >= 30

        await pilot.press("f2")
        summary = text(app.screen.query_one("#recipe-summary"))
        assert "dense  top k 20" in summary and "encoder hash  dimension=256" in summary

        await pilot.press("f5")
        ev = app.screen
        for widget in (ev.query_one("#eval-run"), ev.query_one("#eval-limit"), ev.query_one("#eval-other")):
            assert _inside(widget, ev), widget
        limit = ev.query_one("#eval-limit")
        limit.focus()
        await type_text(pilot, "150")
        assert limit.value == "150" and limit.content_region.width >= 7  # room for the digits and the cursor


async def test_enter_opens_a_hit_in_full_and_copies_its_id(animals):
    """Issue 15 item 17: Enter on a hit opens a full view (all text and payload, copy id or text)."""
    from prismrag.tui.dialogs import HitScreen

    recipe, registry = animals
    app = PrismApp(recipe, registry=registry, warm_up=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await type_text(pilot, "owls")
        await wait_for(pilot, lambda: screen.query_one("#hits").row_count == 5)
        await pilot.press("ctrl+r", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HitScreen))
        view = app.screen
        assert view.hit.id == screen._hits[0].id
        body = text(view.query_one("#hit-content"))
        assert "why it ranked" in body and "Owls hunt at night" in body and "file" in body
        assert view.copied("id") == view.hit.id and "Owls hunt at night" in view.copied("text")
        await pilot.press("i")
        assert app.clipboard == view.hit.id
        await pilot.press("escape")
        assert app.screen is screen


async def test_recipe_screen_marks_and_highlights_the_loaded_recipe(animals, tmp_path: Path):
    """Issue 15 item 17: F2 highlights the loaded recipe, also after another one was loaded."""
    recipe, registry = animals
    other = write_recipe(tmp_path, "beasts", salt="b")
    app = PrismApp(recipe, registry=registry, recipes_dir=recipe.parent, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        app.open_recipe(other)
        await pilot.press("f2")
        options = app.screen.query_one("#recipe-list")
        highlighted = options.get_option_at_index(options.highlighted)
        assert Path(highlighted.id).resolve() == other.resolve()
        assert str(highlighted.prompt).startswith("● ")
        marked = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert sum(m.startswith("● ") for m in marked) == 1


async def test_eval_checks_the_second_recipe_and_asks_before_a_whole_large_corpus(tmp_path: Path):
    """Issue 15 item 17: a mistyped "vs recipe" is reported before recipe A runs; a corpus over
    ASK_ABOVE documents without max docs asks first."""
    from prismrag.tui.dialogs import ConfirmScreen

    data = write_beir(tmp_path)
    a = write_recipe(tmp_path, "alpha", rerank=False)
    app = PrismApp(a, registry=make_registry(), warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        screen = app.screen
        screen.query_one("#eval-data").value = str(data)
        screen.query_one("#eval-other").value = str(tmp_path / "recipes" / "betta.yaml")
        await pilot.press("ctrl+g")
        assert screen.tracker is None and "vs recipe: no such file" in text(screen.query_one("#eval-status"))
        broken = tmp_path / "recipes" / "broken.yaml"
        broken.write_text("name: broken\nretrievers: {x: {encoder: {use: nosuch}}}\n")
        screen.query_one("#eval-other").value = str(broken)
        await pilot.press("ctrl+g")
        assert screen.tracker is None and "nosuch" in text(screen.query_one("#eval-status"))

        screen.query_one("#eval-other").value = ""
        screen.ASK_ABOVE = 3  # the toy corpus has 6 documents
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "has 6 documents" in str(app.screen.question)
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and screen.tracker is None and screen.outcome is None
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.outcome is not None, timeout=30)
        screen.query_one("#eval-limit").value = "2"  # a limit never asks
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_keyword_results_come_at_once_and_dense_ones_join_when_the_model_has_loaded(tmp_path: Path):
    from fake_plugins import GatedHashEncoder

    write_corpus(tmp_path)
    recipe = write_recipe(tmp_path, rerank=False)
    recipe.write_text(recipe.read_text().replace("{use: hash, dimension: 64", "{use: gated-hash, dimension: 64"))
    registry = make_registry()
    GatedHashEncoder.gate.set()
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        engine.ingest()
    GatedHashEncoder.gate.clear()  # the dense "model" now loads only when the test says so
    try:
        app = PrismApp(recipe, registry=registry)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen) and app.engine is not None)
            screen = app.screen
            await wait_for(pilot, lambda: "loading dense" in text(screen.query_one("#search-status")))
            assert "words ready" in text(screen.query_one("#search-status"))
            await type_text(pilot, "loyal dog")
            await wait_for(pilot, lambda: screen.query_one("#hits").row_count > 0)
            status = text(screen.query_one("#search-status"))
            assert "retrievers: words" in status and "dense loading, added when ready" in status
            assert all(set(h.provenance.retrievers) <= {"words"} for h in screen._hits)

            GatedHashEncoder.gate.set()
            await wait_for(pilot, lambda: screen._routed == ["dense", "words"])
            assert "loading" not in text(screen.query_one("#search-status"))
            assert any("dense" in h.provenance.retrievers for h in screen._hits)
    finally:
        GatedHashEncoder.gate.set()


async def test_items_screen_counts_filters_and_deletes_after_asking(animals):
    from prismrag.tui.dialogs import ConfirmScreen
    from prismrag.tui.items_screen import ItemsScreen

    recipe, registry = animals
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        engine.ingest_items([prismrag.Item("note/1", prismrag.Modality.TEXT, "a note about herons")], owner="python")
    app = PrismApp(recipe, registry=registry, recipes_dir=recipe.parent)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(app.screen, ItemsScreen))
        screen = app.screen
        table = screen.query_one("#items")
        await wait_for(pilot, lambda: table.row_count == 7)
        assert "7 items match no filter" in text(screen.query_one("#items-status"))

        screen.query_one("#items-owner").value = "python"
        await wait_for(pilot, lambda: table.row_count == 1)
        assert rows(table)[0][0] == "note/1" and "herons" in text(screen.query_one("#item-detail"))

        screen.query_one("#items-owner").value = ""
        screen.query_one("#items-filter").value = "file prefix c"
        await wait_for(pilot, lambda: table.row_count == 1 and rows(table)[0][0] == "cats.md#0")
        screen.query_one("#items-filter").value = "nosuchfield=1"
        await wait_for(pilot, lambda: "unknown field" in text(screen.query_one("#items-status")))

        # Delete: one item, after a question answered no, then yes
        screen.query_one("#items-filter").value = ""
        await wait_for(pilot, lambda: table.row_count == 7)
        table.focus()
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen)
        assert table.row_count == 7
        first = rows(table)[0][0]
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: table.row_count == 6 and first not in [r[0] for r in rows(table)])

        # Ctrl+D deletes every match, and refuses without a filter or an owner
        await pilot.press("ctrl+d")
        await pilot.pause(0.1)
        assert app.screen is screen and table.row_count == 6
        screen.query_one("#items-filter").value = "file=dogs.md"
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Delete all 1 items" in text(app.screen.query_one("#confirm-question"))
        await pilot.press("y")
        await wait_for(pilot, lambda: table.row_count == 0 and "0 items match" in text(screen.query_one("#items-status")))
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        assert engine.count() == 5
