"""Who owns an item (issue 15.5), and getting, listing, counting and deleting items by id or
filter from Python and the CLI (15.6), on the real embedded engine."""

from __future__ import annotations

import json
import textwrap

import pytest
from test_engine import write_docs, write_recipe

import prismrag
from prismrag import Item, Modality, QueryError
from prismrag.cli import main


@pytest.fixture
def engine(tmp_path, registry):
    write_docs(tmp_path)
    engine = prismrag.load_recipe(write_recipe(tmp_path), registry=registry)
    engine.ingest()
    yield engine
    engine.close()


DB = [Item("db/42", Modality.TEXT, "wolves howl at night", {"lang": "en"}),
      Item("db/43", Modality.TEXT, "owls hunt at dusk", {"lang": "de"})]


def test_items_added_from_python_survive_a_sources_ingest(engine):
    engine.ingest_items(DB)
    report = engine.ingest()
    assert report.deleted == 0 and report.kept == {"python": 2} and report.unchanged == report.loaded
    assert set(engine.get_items(["db/42", "db/43"])) == {"db/42", "db/43"}
    assert engine.search("wolves howl")[0].id == "db/42"
    # The sources' own items still follow the sources: a removed file is deleted, the others kept.
    (engine.recipe.base_dir / "docs" / "boats.md").unlink()
    report = engine.ingest()
    assert report.deleted == 1 and report.kept == {"python": 2}
    # A rebuild re-encodes them from their stored text, with their owner and metadata.
    report = engine.ingest(rebuild=True)
    assert report.kept == {"python": 2} and engine.get_items(["db/43"])["db/43"].metadata == {"lang": "de"}
    assert engine.count(owner="python") == 2 and engine.search("owls hunt")[0].id == "db/43"
    # A delete_missing run removes every other item, whoever added it (eval's "only the data set").
    report = engine.ingest_items(DB[:1], owner="server", delete_missing=True)
    assert engine.count() == 1 and engine.get_items(["db/42"])["db/42"].owner == "server"
    with pytest.raises(prismrag.IngestError, match="owner"):
        engine.ingest_items(DB, owner="a@b")


def test_get_list_count_delete_by_id_and_filter(engine):
    engine.ingest_items(DB)
    n = engine.count()
    assert n == engine.count(owner="sources") + 2 == len(engine.list_items(limit=None))
    got = engine.get_items(["db/42", "nope"])
    assert list(got) == ["db/42"] and got["db/42"].text == "wolves howl at night"
    assert got["db/42"].metadata == {"lang": "en"} and got["db/42"].owner == "python"
    assert [i.id for i in engine.list_items("file prefix sub/")] == ["sub/trains.md#0"]
    assert engine.count("lang exists") == 2 and engine.count({"lang": "de"}) == 1
    assert [i.id for i in engine.list_items(owner="python")] == ["db/42", "db/43"]
    assert [i.id for i in engine.list_items(limit=2, offset=1)] == [i.id for i in engine.list_items()][1:3]
    # the items a filter lists are the items a filtered search can return
    for flt in ("file prefix sub/", "title contains a", "lang not in [de]", "file not prefix sub/"):
        hits = {h.id for h in engine.search("trains dogs cats boats wolves owls", filter=flt, top_k=50)}
        assert hits == {i.id for i in engine.list_items(flt, limit=None)}, flt
    assert engine.delete(["db/43", "nope"]) == ["db/43"]
    assert engine.delete(filter="file prefix sub/") == ["sub/trains.md#0"]
    assert engine.count() == n - 2
    assert engine.delete(owner="python") == ["db/42"]
    with pytest.raises(QueryError, match="give item ids"):
        engine.delete()
    with pytest.raises(QueryError, match="unknown field"):
        engine.count("colour=red")


def test_a_filter_that_matches_nothing_says_which_values_the_field_holds(engine):
    result = engine.search_detailed("cats", filter="file=cats.md")
    assert result.hits and not result.notes
    result = engine.search_detailed("cats", filter="file=trains.md")
    assert not result.hits
    assert result.notes == ["file: no item holds 'trains.md'; did you mean 'sub/trains.md'?"]
    result = engine.search_detailed("cats", filter="file=zebras.md")
    assert "it holds e.g." in result.notes[0] and "'cats.md'" in result.notes[0]
    assert engine.search_detailed("cats", filter="file prefix trains").notes[0].startswith("file: no item holds")


def test_items_command(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Apples\n\nApples grow on trees in orchards.")
    (docs / "b.md").write_text("# Rivers\n\nRivers flow into the sea through deltas.")
    recipe = tmp_path / "kw.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: kw
        store: {use: qdrant-edge, path: store}
        sources: [{use: text-files, path: docs}]
        retrievers:
          keywords: {encoder: {use: bm25}}
        """))
    assert main(["ingest", str(recipe), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["items", "list", str(recipe)]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == ["a.md#0  [sources]  Apples", "b.md#0  [sources]  Rivers"]
    assert "2 items" in out.err
    assert main(["items", "count", str(recipe), "--filter", "title contains Riv"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert main(["items", "get", str(recipe), "a.md#0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"][0]["payload"]["file"] == "a.md"
    assert main(["items", "get", str(recipe), "zz"]) == 1
    assert "no stored item with id 'zz'" in capsys.readouterr().err
    assert main(["items", "delete", str(recipe), "--filter", "file=b.md"]) == 1
    assert "1 item match; add --yes" in capsys.readouterr().err
    assert main(["items", "delete", str(recipe), "--filter", "file=b.md", "--yes"]) == 0
    assert capsys.readouterr().out.strip() == "deleted 1 item"
    assert main(["search", str(recipe), "apples", "--filter", "file=a"]) == 0
    out = capsys.readouterr()
    assert "no results" in out.out and "file: no item holds 'a'; it holds e.g. 'a.md'" in out.err
