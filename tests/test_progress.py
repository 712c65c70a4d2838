"""The terminal progress line: a bar with items per second on a terminal, nothing when piped."""

from __future__ import annotations

import io

from prismrag.progress import TerminalProgress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_shows_a_bar_and_a_rate_per_stage():
    out = FakeTerminal()
    progress = TerminalProgress(out)
    progress("load", 10, 10)
    progress("encode", 0, 4)
    progress("encode", 4, 4)  # a finished stage is always drawn, however soon
    progress.close()
    text = out.getvalue()
    lines = text.split("\n")
    assert lines[0].endswith("items/s") and "load" in lines[0] and "10 items" in lines[0]
    assert "encode [" + "#" * 30 + "] 4/4 items" in lines[1].split("\r")[-1]
    assert "items/s" in lines[1] and text.endswith("\n")


def test_piped_output_stays_silent():
    out = io.StringIO()  # isatty() is False, as for a pipe or a file
    progress = TerminalProgress(out)
    progress("encode", 1, 2)
    progress("encode", 2, 2)
    progress.close()
    assert out.getvalue() == ""


def test_a_stage_under_way_shows_the_time_left():
    import time

    out = FakeTerminal()
    progress = TerminalProgress(out)
    progress("encode", 0, 100)
    time.sleep(0.15)
    progress("encode", 25, 100)
    line = out.getvalue().split("\r")[-1]
    assert "25/100 items" in line and "ETA 0:0" in line  # 75 items at ~160/s: under ten seconds


def test_ingest_progress_advances_with_each_encoder_batch(tmp_path):
    """One 512-item ingest batch, an encoder batching 16 at a time, two retrievers: progress
    moves on after every encoder batch, never backwards, and ends at the total."""
    import textwrap

    from fake_plugins import make_registry

    import prismrag

    (tmp_path / "docs").mkdir()
    for i in range(40):
        (tmp_path / "docs" / f"d{i:02d}.txt").write_text(f"note number {i} " + "word " * (i % 7), encoding="utf-8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: progress
        store: {use: qdrant-edge, path: store}
        sources: [{use: text-files, path: docs}]
        retrievers:
          a: {encoder: {use: hash, dimension: 16}}
          b: {encoder: {use: bm25}}
        """), encoding="utf-8")
    seen: list[tuple[int, int | None]] = []
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine:
        engine.recipe.retrievers["a"].encoder.max_batch = 16  # the hash encoder has no batch_size param
        engine.ingest(progress=lambda stage, done, total: seen.append((done, total)) if stage == "encode" else None)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 40 and {t for _, t in seen} == {40}
    assert len(set(done)) >= 4  # 0, after each of a's three batches (16, 16, 8), then b and the end
