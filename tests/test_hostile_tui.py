"""Hostile use of the terminal UI (issue 17): cancelling an ingest takes effect at the next
encoder batch, and a run that finished before the cancel could stop it says it completed
(it used to wait for the whole ingest batch, then call a finished ingest "cancelled")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from fake_plugins import HashEncoder, make_registry  # noqa: E402
from tui_helpers import until, write_corpus, write_recipe  # noqa: E402

from prismrag.tui.app import PrismApp  # noqa: E402
from prismrag.tui.ingest_screen import IngestScreen, ProgressTracker  # noqa: E402

SIZE = (120, 40)
pytestmark = pytest.mark.anyio




def summary(screen: IngestScreen) -> str:
    import io

    from rich.console import Console

    console = Console(width=300, file=io.StringIO(), color_system=None)
    console.print(screen.query_one("#ingest-summary").render())
    return console.file.getvalue()  # type: ignore[attr-defined]


def slow_recipe(tmp_path: Path, docs: int, delay: float) -> Path:
    write_corpus(tmp_path, {f"note{i:03d}.md": f"# Note {i}\n\nNote {i} about topic {i % 7}." for i in range(docs)})
    recipe = write_recipe(tmp_path, rerank=False, extra="ingest: {cache: false}\n")  # one ingest batch of 512
    recipe.write_text(recipe.read_text().replace('salt: "w"}', f'salt: "w", delay: {delay}}}'))
    return recipe


async def ingested(app: PrismApp, pilot) -> IngestScreen:
    """Open the ingest screen, run one ingest to its end; the screen."""
    await pilot.press("f3")
    screen = app.screen
    await pilot.press("i")
    await until(pilot, lambda: not screen._ingesting)
    return screen


async def test_cancel_stops_at_the_next_encoder_batch_not_the_end_of_the_ingest_batch(tmp_path):
    # 200 items in one ingest batch; the slow retriever encodes them in 4 encoder batches of 64
    # (0.5 s each). Cancelled during the second, the run stops when it returns.
    recipe = slow_recipe(tmp_path, 200, 0.5)
    app = PrismApp(recipe, registry=make_registry(), warm_up=False)
    HashEncoder.calls.clear()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, IngestScreen)
        await pilot.press("i")
        await until(pilot, lambda: len(HashEncoder.calls) >= 6)  # the fast retriever's 4, the slow one's 2nd
        pressed = time.monotonic()
        await pilot.press("c")
        await until(pilot, lambda: not screen._ingesting)
        stopped = time.monotonic() - pressed
        assert "cancelled" in summary(screen) and "batches written so far are kept" in summary(screen)
        assert len(HashEncoder.calls) <= 7, HashEncoder.calls  # the 4th (and usually the 3rd) never ran
        assert stopped < 1.5, stopped  # within one encoder batch, not the 2 s of the whole ingest batch
        assert app.engine.store.info().points == 0  # the ingest batch is one write: none of it stored


async def test_a_cancel_that_comes_after_the_last_batch_is_stored_reports_a_completed_run(tmp_path):
    recipe = slow_recipe(tmp_path, 12, 0.0)
    registry = make_registry()
    app = PrismApp(recipe, registry=registry, warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ingested(app, pilot)
        assert app.engine.store.info().points == 12
        (tmp_path / "docs" / "note000.md").unlink()
        (tmp_path / "docs" / "note001.md").write_text("# Note 1\n\nRewritten about boats.")

        store = app.engine.store
        upsert = store.upsert

        def upsert_then_cancel(batch):  # the user presses cancel the moment the last batch is stored
            upsert(batch)
            app.call_from_thread(screen.action_cancel)

        store.upsert = upsert_then_cancel
        await pilot.press("i")
        await until(pilot, lambda: not screen._ingesting)
        text = summary(screen)
        assert "done" in text and "completed before the cancel took effect" in text and "cancelled:" not in text
        assert "1 updated" in text and "1 deleted" in text  # the run's end (deleting what left) ran too
        assert app.engine.store.info().points == 11


async def test_a_cancelled_rebuild_says_the_index_is_as_it_was_and_it_is(tmp_path):
    recipe = slow_recipe(tmp_path, 200, 0.3)
    app = PrismApp(recipe, registry=make_registry(), warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ingested(app, pilot)
        assert app.engine.store.info().points == 200
        HashEncoder.calls.clear()
        await pilot.press("r")
        await until(pilot, lambda: len(HashEncoder.calls) >= 6)
        await pilot.press("c")
        await until(pilot, lambda: not screen._ingesting)
        assert "cancelled: the rebuild was discarded; the index is as it was" in summary(screen)
        assert app.engine.store.info().points == 200 and app.engine.search("Note 17 topic")  # still answers


def test_the_tracker_cancels_only_a_stage_with_work_left():
    tracker = ProgressTracker()
    tracker("encode", 3, 10)
    tracker.cancel.set()
    tracker("encode", 10, 10)  # complete: nothing left to stop
    tracker("load", 0, 0)
    with pytest.raises(Exception, match="cancelled by the user"):
        tracker("encode", 4, 10)
    with pytest.raises(Exception, match="cancelled by the user"):
        tracker("load", 256, None)
