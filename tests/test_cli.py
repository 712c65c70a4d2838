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


def test_query_that_names_a_file_explicit_modality_and_missing_media(tmp_path, capsys, monkeypatch):
    """Issue 15 item 10: an explicit text modality wins over a file of that name; a query read
    from a file says so; a media file name that does not exist is an error, not a text search."""
    recipe = bm25_recipe(tmp_path)
    assert main(["ingest", str(recipe), "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rivers").write_text("apples orchards")  # a file whose name is also a query word
    assert main(["search", str(recipe), "rivers", "--modality", "text", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["id"] == "b.md#0" and "read from the file" not in captured.err

    (tmp_path / "question.txt").write_text("apples orchards")
    assert main(["search", str(recipe), "question.txt", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["id"] == "a.md#0"
    assert "query: read from the file question.txt" in captured.err

    assert main(["search", str(recipe), "photo.jpg"]) == 2
    err = capsys.readouterr().err
    assert "no file named 'photo.jpg'" in err and "image" in err and "--modality text" in err
    assert main(["search", str(recipe), "photo.jpg", "--modality", "text", "--json"]) == 0  # the words, on request
    assert main(["search", str(recipe), "gone.wav", "--modality", "audio"]) == 2
    assert "audio queries need a file or bytes" in capsys.readouterr().err


def test_weights_option_and_argument_help(tmp_path, capsys):
    """Issue 15 item 13: `--weight` on the CLI; no positional argument or `--top-k` without help."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Apples\n\nApples grow on trees in orchards.")
    (docs / "b.md").write_text("# Rivers\n\nRivers flow into the sea through deltas.")
    recipe = tmp_path / "two.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: two
        store: {use: qdrant-edge, path: store}
        sources: [{use: text-files, path: docs}]
        retrievers:
          kw: {encoder: {use: bm25}}
          kw2: {encoder: {use: bm25}}
        fusion: {use: rrf}
        """))
    assert main(["ingest", str(recipe), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", str(recipe), "rivers", "--weight", "kw=0", "--weight", "kw2=2", "--json"]) == 0
    contributions = json.loads(capsys.readouterr().out)[0]["provenance"]["fusion"]["contributions"]
    assert contributions["kw"] == 0.0 and contributions["kw2"] > 0
    assert main(["search", str(recipe), "rivers", "--weight", "kw"]) == 2
    assert "expected RETRIEVER=NUMBER" in capsys.readouterr().err
    assert main(["search", str(recipe), "rivers", "--weight", "nope=1"]) == 2
    assert "nope" in capsys.readouterr().err

    from prismrag.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest in ("help",):
                continue
            if not action.option_strings or action.dest == "top_k":
                assert action.help, f"`prism {name}` argument {action.dest!r} has no help"


def test_a_closed_pipe_ends_quietly():
    """Issue 15 item 13: `prism plugins --json | head` ended in a BrokenPipeError traceback."""
    code = (
        "import os, sys\n"
        "r, w = os.pipe(); os.close(r)\n"  # a reader that is already gone
        "os.dup2(w, 1)\n"
        "from prismrag.cli import main\n"
        "sys.exit(main(['plugins', '--json']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


def test_shell_completion_script(capsys):
    """Issue 15 item 13: shell completion."""
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "_shtab_prism" in script and "search" in script and "--top-k" in script and "eval" in script
    proc = subprocess.run(["bash", "-c", f'eval "$({PRISM} completion bash)" && complete -p prism'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "_shtab_prism prism" in proc.stdout, proc.stderr
    assert main(["completion", "zsh"]) == 0 and "#compdef prism" in capsys.readouterr().out


def test_validate_models_reports_a_model_that_cannot_load(tmp_path, capsys):
    """Issue 15 item 9: a missing cross-encoder showed up only at search time."""
    recipe = bm25_recipe(tmp_path)
    recipe.write_text(recipe.read_text() + "rerank: [{use: cross-encoder, model: ./no-such-model}]\n")
    assert main(["validate", str(recipe)]) == 0  # the structure is fine; no model is loaded
    capsys.readouterr()
    assert main(["validate", str(recipe), "--models"]) == 2
    captured = capsys.readouterr()
    assert "rerank[0]" in captured.err and "no-such-model" in captured.err
    assert "1 cannot be loaded" in captured.out
    (tmp_path / "good").mkdir()
    good = bm25_recipe(tmp_path / "good")
    assert main(["validate", str(good), "--models"]) == 0 and "models: all load" in capsys.readouterr().out
