"""The `prism` command, in-process and in subprocesses (imports, third-party plugins)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prismrag.cli import main

BIN = Path(sys.executable).parent
PRISM = str(BIN / "prism")
SAMPLE = Path(__file__).parent / "sample_plugin"


def bm25_recipe(tmp_path: Path) -> Path:
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
    return recipe


def test_validate_ingest_search_info(tmp_path, capsys):
    recipe = bm25_recipe(tmp_path)
    assert main(["validate", str(recipe)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["ingest", str(recipe), "--quiet"]) == 0
    assert "2 added" in capsys.readouterr().out
    assert main(["search", str(recipe), "where do rivers flow", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["id"] == "b.md#0"
    assert set(hits[0]) == {"id", "score", "rank", "modality", "payload", "provenance"}
    assert hits[0]["provenance"]["retrievers"]["keywords"]["rank"] == 1
    assert main(["search", str(recipe), "rivers", "--explain", "--filter", "file=b.md"]) == 0
    out = capsys.readouterr().out
    assert "keywords: rank 1" in out and "ms" in out
    assert main(["info", str(recipe), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["points"] == 2 and info["retrievers"]["keywords"]["kind"] == "sparse"


def test_errors_exit_2_with_message(tmp_path, capsys):
    recipe = bm25_recipe(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("bm25", "bm52"))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: retrievers.keywords.encoder.use: unknown encoder 'bm52'" in err
    assert main(["search", str(recipe), "x", "--filter", "year>=abc"]) == 2
    assert "needs a number" in capsys.readouterr().err


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"], ["validate", "recipes/quickstart.yaml"]])
def test_light_commands_do_not_import_torch(argv):
    root = Path(__file__).resolve().parents[1]
    code = textwrap.dedent(f"""
        import sys, os
        os.chdir({str(root)!r})
        from prismrag.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        """)
    loaded = _modules_after(code)
    heavy = {"torch", "sentence_transformers", "transformers", "open_clip"} & loaded
    assert not heavy, f"prism {' '.join(argv)} imported {heavy}"


def test_third_party_plugin_installed_with_pip_is_discovered_and_used(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(SAMPLE)],
        check=True, capture_output=True, text=True,
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([PRISM, "plugins", "--json"], env=env, capture_output=True, text=True, check=True)
    listed = {c["name"]: c for c in json.loads(out.stdout)["components"]}
    assert listed["char-ngrams"]["distribution"] == "prismrag-sample-plugin"
    assert listed["char-ngrams"]["version"] == "0.2.0"

    # The plugin's own contract tests pass where it is installed; pytest loads prismrag's kit
    # (prismrag.testing) through its pytest11 entry point, unasked.
    run_env = {k: v for k, v in env.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=SAMPLE,
                           env=dict(run_env, PYTHONDONTWRITEBYTECODE="1"), capture_output=True, text=True)
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout + tests.stderr

    recipe = bm25_recipe(tmp_path)
    recipe.write_text(recipe.read_text().replace("keywords: {encoder: {use: bm25}}", "grams: {encoder: {use: char-ngrams, dimension: 128}}"))
    subprocess.run([PRISM, "ingest", str(recipe), "--quiet"], env=env, check=True, capture_output=True)
    out = subprocess.run([PRISM, "search", str(recipe), "apple orchard", "--json"], env=env,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["id"] == "a.md#0"
