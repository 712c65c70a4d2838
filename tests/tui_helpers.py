"""A small deterministic corpus and recipes for the TUI tests (hash encoder, no models), and the
pilot steps and snapshot setup the media hit tests share (textual imported on use)."""

from __future__ import annotations

import io
import shutil
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

DOCS = {
    "cats.md": "# Cats\n\nCats are small carnivorous mammals. A cat purrs, sleeps all day and hunts mice at night.",
    "dogs.md": "# Dogs\n\nDogs are loyal companions. A dog barks at strangers and fetches sticks in the park.",
    "boats.md": "# Boats\n\nA sailing boat uses the wind on its sails to cross the sea between harbours.",
    "trains.md": "# Trains\n\nTrains run on rails between stations, pulled by a locomotive or an electric unit.",
    "mice.md": "# Mice\n\nField mice hide from cats and owls; a mouse eats seeds and grain in the barn.",
    "owls.md": "# Owls\n\nOwls hunt at night. An owl can turn its head and hears mice moving under snow.",
}


def write_corpus(root: Path, docs: dict[str, str] = DOCS) -> Path:
    folder = root / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def write_recipe(root: Path, name: str = "animals", *, salt: str = "", rerank: bool = True, extra: str = "") -> Path:
    """Two hash retrievers fused with RRF, optionally an MMR rerank stage."""
    mmr = "rerank: [{use: mmr, retriever: dense, lambda: 0.7, top_n: 10}]\n" if rerank else ""
    text = textwrap.dedent(f"""\
        name: {name}
        description: test recipe over a few animal and transport notes
        store: {{use: qdrant-edge, path: ../store-{name}}}
        sources:
          - {{use: text-files, path: ../docs, glob: "*.md"}}
        retrievers:
          dense:
            encoder: {{use: hash, dimension: 64, salt: "{salt}"}}
            top_k: 20
          words:
            encoder: {{use: hash, dimension: 256, salt: "w{salt}"}}
            top_k: 20
        fusion: {{use: rrf, k: 60, weights: {{dense: 1.0, words: 1.0}}}}
        search: {{top_k: 5}}
        """) + mmr + extra
    path = root / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_beir(root: Path) -> Path:
    """A toy BEIR-layout data set over DOCS with three judged queries."""
    import json

    folder = root / "toy"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for name, text in DOCS.items():
            title, _, body = text.partition("\n\n")
            fh.write(json.dumps({"_id": name.split(".")[0], "title": title.lstrip("# "), "text": body}) + "\n")
    queries = {"q1": "which animal hunts mice", "q2": "crossing the sea with wind", "q3": "rails and stations"}
    with (folder / "queries.jsonl").open("w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    rows = [("q1", "cats", 2), ("q1", "owls", 1), ("q2", "boats", 1), ("q3", "trains", 1)]
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows)
    )
    return folder


def make_image(path: Path, color: tuple[int, int, int] = (200, 40, 40)) -> Path:
    """A small PNG: a coloured square on white, with a stripe (so half-blocks show two colours)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (32, 24), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((4, 4, 20, 18), fill=color)
    draw.rectangle((0, 20, 31, 23), fill=(20, 60, 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def plain(renderable: Any) -> str:
    """A rich renderable as plain text, 200 columns wide."""
    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()


async def until(pilot: Any, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        await pilot.pause(0.02)


def show_first_hit(app: Any, query: str, hits: int) -> Callable[[Any], Any]:
    """Pilot steps: search `query`, wait for `hits` hits, focus them and wait for the first hit's
    thumbnail in the detail panel (a blinking cursor in the query box would differ per frame)."""
    from prismrag.tui.search_screen import SearchScreen

    async def run_before(pilot: Any) -> None:
        await until(pilot, lambda: app.engine_ready and isinstance(app.screen, SearchScreen))
        screen = app.screen
        screen.query_one("#query").value = query
        await until(pilot, lambda: screen._request is not None and len(screen._hits) == hits)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "▀" in plain(screen.query_one("#detail-body").content))
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()

    return run_before


def app_for(recipe: Path) -> Any:
    """The TUI on `recipe`, with the installed plugins."""
    import prismrag
    from prismrag.tui.app import PrismApp

    return PrismApp(recipe, registry=prismrag.Registry(), recipes_dir=recipe.parent)


@asynccontextmanager
async def first_hit_shown(recipe: Path, query: str, hits: int) -> AsyncIterator[Any]:
    """The search screen of a 120x40 pilot run of the TUI on `recipe`, showing `query`'s first hit."""
    app = app_for(recipe)
    async with app.run_test(size=(120, 40)) as pilot:
        await show_first_hit(app, query, hits)(pilot)
        yield app.screen


def snapshot_first_hit(snap_compare: Any, monkeypatch: Any, folder_name: str, plugins: str,
                       make_recipe: Callable[[Path], Path], query: str, hits: int) -> bool:
    """`snap_compare` of the search screen at 120x40 showing `query`'s first hit, the recipe made
    in a fixed folder under the temp dir (the payload shows absolute paths), timings hidden and
    only `plugins` loaded."""
    from prismrag.tui.search_screen import SearchScreen

    folder = Path(tempfile.gettempdir()) / folder_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(SearchScreen, "SHOW_TIMINGS", False)
    monkeypatch.setenv("PRISMRAG_PLUGINS", plugins)
    app = app_for(make_recipe(folder))
    try:
        return snap_compare(app, terminal_size=(120, 40), run_before=show_first_hit(app, query, hits))
    finally:
        monkeypatch.chdir(Path(tempfile.gettempdir()))
        shutil.rmtree(folder, ignore_errors=True)
