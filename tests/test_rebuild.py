"""`--rebuild` builds the new index beside the old one and swaps it in only when complete: the
old index answers searches meanwhile and survives a failed rebuild (issue 15 item 7)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from fake_plugins import HashEncoder, TestPlugin

import prismrag
from prismrag import Registry

DOCS = {f"doc{i}.md": f"# Doc {i}\n\nanimal number {i} runs and {'barks' if i % 2 else 'purrs'}" for i in range(12)}


class Exploding(HashEncoder):
    """The hash encoder that breaks (a crash, not a bad item) on a document naming `boom`."""

    name = "exploding-hash"

    def encode(self, contents, modality, role):
        if any(isinstance(c, str) and "boom" in c for c in contents):
            raise RuntimeError("the model crashed")
        return super().encode(contents, modality, role)


class Plugin:
    from prismrag import hookimpl

    @hookimpl
    def register_encoders(self, register):
        register(Exploding)


def registry() -> Registry:
    reg = Registry()
    reg.add_plugin(TestPlugin(), name="tests")
    reg.add_plugin(Plugin(), name="exploding")
    return reg


def write(root: Path, dim: int = 32, encoder: str = "hash") -> Path:
    (root / "docs").mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    recipe = root / "r.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: rebuild
        store: {{use: qdrant-edge, path: store}}
        sources: [{{use: text-files, path: docs, glob: "*.md"}}]
        retrievers:
          dense: {{encoder: {{use: {encoder}, dimension: {dim}}}}}
        ingest: {{batch_size: 4}}
        """), encoding="utf-8")
    return recipe


def test_the_old_index_answers_while_the_new_one_is_built_then_the_new_one_does(tmp_path):
    recipe = write(tmp_path)
    with prismrag.load_recipe(recipe, registry=registry()) as engine:
        engine.ingest()
        engine.ingest_items([prismrag.Item("note", prismrag.Modality.TEXT, "a note about owls")], owner="python")
        before = [h.id for h in engine.search("animal barks", top_k=5)]
        seen: list[int] = []

        def during(stage: str, done: int, total: int | None) -> None:
            if stage == "encode" and done:  # in the middle of the rebuild: the old index, whole
                assert engine.count() == 13 and [h.id for h in engine.search("animal barks", top_k=5)] == before
                assert (tmp_path / "store" / "rebuild").is_dir()
                seen.append(done)

        report = engine.ingest(rebuild=True, progress=during)
        assert seen and report.added == 12 and report.kept == {"python": 1}, report
        assert not (tmp_path / "store" / "rebuild").exists() and not (tmp_path / "store" / "shard.old").exists()
        assert engine.count() == 13 and engine.search("owls")[0].id == "note"
        assert [h.id for h in engine.search("animal barks", top_k=5)] == before

    recipe.write_text(recipe.read_text().replace("dimension: 32", "dimension: 48"))  # a new layout
    with prismrag.load_recipe(recipe, registry=registry()) as engine:
        report = engine.ingest(rebuild=True)
        assert report.added == 12 and engine.info()["retrievers"]["dense"]["dimension"] == 48
        assert engine.count() == 12  # the note could not be read with the new layout: the report said so
        assert any("added with ingest_items" in e for e in report.errors)


def test_a_failed_rebuild_leaves_the_old_index_as_it_was(tmp_path):
    recipe = write(tmp_path, encoder="exploding-hash")
    with prismrag.load_recipe(recipe, registry=registry()) as engine:
        engine.ingest()
        before = [h.id for h in engine.search("animal barks", top_k=5)]
    (tmp_path / "docs" / "doc7.md").write_text("# Doc 7\n\nboom", encoding="utf-8")
    recipe.write_text(recipe.read_text().replace("dimension: 32", "dimension: 40"))
    with prismrag.load_recipe(recipe, registry=registry()) as engine, pytest.raises(RuntimeError, match="crashed"):
        engine.ingest(rebuild=True)
    assert not (tmp_path / "store" / "rebuild").exists()
    recipe.write_text(recipe.read_text().replace("dimension: 40", "dimension: 32"))
    (tmp_path / "docs" / "doc7.md").write_text(DOCS["doc7.md"], encoding="utf-8")
    with prismrag.load_recipe(recipe, registry=registry()) as engine:
        assert engine.count() == 12 and [h.id for h in engine.search("animal barks", top_k=5)] == before
        assert engine.ingest().unchanged == 12


def test_a_swap_interrupted_after_its_first_rename_restores_the_old_index(tmp_path):
    recipe = write(tmp_path)
    with prismrag.load_recipe(recipe, registry=registry()) as engine:
        engine.ingest()
    (tmp_path / "store" / "shard").rename(tmp_path / "store" / "shard.old")  # the crash's state
    with prismrag.load_recipe(recipe, registry=registry()) as engine:
        assert engine.count() == 12 and engine.ingest().unchanged == 12


def test_a_copied_recipe_that_kept_its_name_is_told_it_shares_the_data_folder(tmp_path, caplog):
    recipe = write(tmp_path)
    recipe.write_text(recipe.read_text().replace("path: store", "path: ../shared-store"))
    copy = tmp_path / "copy.yaml"
    copy.write_text(recipe.read_text(), encoding="utf-8")
    with prismrag.load_recipe(recipe, registry=registry()) as engine:
        engine.ingest()
    assert "shares its data folder" not in caplog.text
    with caplog.at_level("WARNING", logger="prismrag.collection"), \
            prismrag.load_recipe(copy, registry=registry()) as engine:
        engine.search("animal")
    assert "shares its data folder" in caplog.text and str(recipe.resolve()) in caplog.text
    caplog.clear()
    copy.unlink()  # the index was last opened through the copy, which is gone now: nothing to say
    with caplog.at_level("WARNING", logger="prismrag.collection"), \
            prismrag.load_recipe(recipe, registry=registry()) as engine:
        engine.search("animal")
    assert "shares its data folder" not in caplog.text
