"""Files that change while they are being ingested (issue 17): rewritten, grown, truncated or
deleted between the listing, the reading, the hashing and the encoding. Each ingest stores what
it read, under the hash of exactly that, or reports the file as failed naming it; never a crash;
the next ingest picks up the new content and a third finds nothing to do."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from prismrag.engine import Engine
from prismrag.plugins.loaders import TextFilesLoader

TEXTS = {
    "a.md": "Apples grow on trees in orchards.",
    "b.md": "Rivers flow into the sea through deltas.",
    "c.md": "Comets trail ice and dust across the sky.",
    "d.md": "Deserts hold dunes of shifting sand.",
    "keep.md": "Kettles boil water for tea.",
}


def write_recipe(root: Path, source: str, dimension: int = 64) -> Path:
    path = root / "r.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: changing
        store: {{use: qdrant-edge, path: store}}
        sources: [{source}]
        retrievers:
          h: {{encoder: {{use: hash, dimension: {dimension}}}}}
        """))
    return path


def at_first_encode(action: Callable[[], None]) -> Callable[[str, int, int | None], None]:
    """A progress callback running `action` once, when encoding starts: after the sources were
    listed and read and the items hashed, before any vector is made."""
    done = []

    def progress(stage: str, n: int, total: int | None) -> None:
        if stage == "encode" and not done:
            done.append(True)
            action()

    return progress


def stored_texts(engine: Engine) -> dict[str, str | None]:
    return {item.id: item.text for item in engine.list_items()}


def test_text_files_changed_after_reading_store_what_was_read_and_the_next_ingest_catches_up(tmp_path, registry):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in TEXTS.items():
        (docs / name).write_text(text)
    recipe = write_recipe(tmp_path, "{use: text-files, path: docs}")

    def change() -> None:
        (docs / "a.md").write_text("Apricots ripen in the summer sun.")  # rewritten
        with open(docs / "b.md", "a") as fh:  # grown
            fh.write(" Estuaries mix fresh and salt water.")
        (docs / "c.md").write_text("")  # truncated
        (docs / "d.md").unlink()  # deleted

    with Engine.from_file(recipe, registry=registry) as engine:
        first = engine.ingest(progress=at_first_encode(change))
        assert (first.added, first.errors) == (5, [])
        assert stored_texts(engine) == {f"{name}#0": text for name, text in TEXTS.items()}  # what was read
        assert engine.search("orchards")[0].id == "a.md#0"

        second = engine.ingest()
        assert (second.updated, second.deleted, second.unchanged, second.added) == (2, 2, 1, 0)
        assert len(second.errors) == 1 and "c.md" in second.errors[0] and "empty" in second.errors[0]
        assert stored_texts(engine) == {
            "a.md#0": "Apricots ripen in the summer sun.",
            "b.md#0": TEXTS["b.md"] + " Estuaries mix fresh and salt water.",
            "keep.md#0": TEXTS["keep.md"],
        }
        assert engine.search("apricots summer")[0].id == "a.md#0"

        third = engine.ingest()  # the stored hashes are those of the files now
        assert (third.unchanged, third.added, third.updated, third.deleted) == (3, 0, 0, 0)


def test_text_files_deleted_or_emptied_between_listing_and_reading_are_reported_by_name(
    tmp_path, registry, monkeypatch,
):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in TEXTS.items():
        (docs / name).write_text(text)
    listed = TextFilesLoader.files

    def files_then_change(self: TextFilesLoader) -> tuple[Path, list[tuple[Path, str]]]:
        out = listed(self)
        (docs / "c.md").write_text("")
        (docs / "d.md").unlink()
        return out

    monkeypatch.setattr(TextFilesLoader, "files", files_then_change)
    with Engine.from_file(write_recipe(tmp_path, "{use: text-files, path: docs}"), registry=registry) as engine:
        report = engine.ingest()
        assert report.added == 3 and sorted(stored_texts(engine)) == ["a.md#0", "b.md#0", "keep.md#0"]
        assert len(report.errors) == 2, report.errors
        emptied, vanished = sorted(report.errors)
        assert "c.md" in emptied and "empty" in emptied
        assert "d.md" in vanished and "cannot be read" in vanished and "No such file" in vanished


def png(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def best_score(engine: Engine, path: Path, item_id: str) -> float:
    hits = engine.search(path, top_k=3)
    assert hits[0].id == item_id, [(h.id, h.score) for h in hits]
    return hits[0].score


def test_an_image_rewritten_between_hashing_and_encoding_is_never_stored_under_the_old_hash(tmp_path, registry):
    """Images are read twice: hashed once loaded, decoded again by the encoder. A file rewritten
    in between must not leave the new picture's vectors under the old picture's hash (nor in the
    embedding cache under it): rewritten back, the old picture would then count as unchanged and
    keep the wrong vectors for good."""
    pytest.importorskip("PIL")
    pics = tmp_path / "pics"
    pics.mkdir()
    old, new = png(1), png(2)
    (pics / "a.png").write_bytes(old)
    (pics / "b.png").write_bytes(png(3))
    recipe = write_recipe(tmp_path, "{use: images, path: pics}", dimension=1024)
    query = tmp_path / "query.png"

    with Engine.from_file(recipe, registry=registry) as engine:
        first = engine.ingest(progress=at_first_encode(lambda: (pics / "a.png").write_bytes(new)))
        assert first.added + len(first.errors) == 2 and "b.png" in engine.get_items(["b.png"])
        if first.errors:  # refused, naming the file; the rest stored
            assert first.added == 1 and "a.png" in first.errors[0] and "changed" in first.errors[0], first.errors
            assert engine.get_items(["a.png"]) == {}
        else:  # stored what it hashed: the old picture
            query.write_bytes(old)
            assert best_score(engine, query, "a.png") == pytest.approx(1.0, abs=1e-4)

        (pics / "a.png").write_bytes(old)  # rewritten back
        engine.ingest()
        query.write_bytes(old)
        assert best_score(engine, query, "a.png") == pytest.approx(1.0, abs=1e-4)

        (pics / "a.png").write_bytes(new)
        second = engine.ingest()
        assert (second.updated, second.unchanged, second.errors) == (1, 1, [])
        query.write_bytes(new)
        assert best_score(engine, query, "a.png") == pytest.approx(1.0, abs=1e-4)
        third = engine.ingest()
        assert (third.unchanged, third.added, third.updated) == (2, 0, 0)


def test_an_image_deleted_after_hashing_fails_by_name_and_the_next_ingest_drops_it(tmp_path, registry):
    """With the real image encoder (open-clip, a tiny model): the file it cannot read any more is
    reported by name, its stored version stays until the next ingest deletes it, the rest is
    stored; no traceback."""
    from tiny_models import build_tiny_open_clip

    config, checkpoint = build_tiny_open_clip(tmp_path / "clip")
    pics = tmp_path / "pics"
    pics.mkdir()
    (pics / "a.png").write_bytes(png(1))
    (pics / "b.png").write_bytes(png(3))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: changing
        store: {{use: qdrant-edge, path: store}}
        sources: [{{use: images, path: pics}}]
        retrievers:
          clip: {{encoder: {{use: open-clip, model_config: {str(config)!r}, pretrained: {str(checkpoint)!r}}}}}
        """))

    with Engine.from_file(recipe, registry=registry) as engine:
        assert engine.ingest().added == 2
        (pics / "a.png").write_bytes(png(2))
        (pics / "b.png").write_bytes(png(4))
        first = engine.ingest(progress=at_first_encode((pics / "a.png").unlink))
        assert (first.updated, first.added) == (1, 0)
        assert len(first.errors) == 1 and "a.png" in first.errors[0] and "No such file" in first.errors[0], first.errors
        assert sorted(engine.get_items(["a.png", "b.png"])) == ["a.png", "b.png"]  # a.png: as last stored
        second = engine.ingest()
        assert (second.deleted, second.unchanged, second.errors) == (1, 1, [])
        assert [i.id for i in engine.list_items()] == ["b.png"]
