from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test touches the user's cache or reaches a model hub."""
    monkeypatch.setenv("PRISMRAG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def registry():
    from fake_plugins import HashEncoder, make_registry

    HashEncoder.calls.clear()
    return make_registry()


@pytest.fixture
def kw_recipe(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Makes `kw.yaml` in tmp_path: a bm25 recipe on the real qdrant-edge store over `docs/`,
    which holds the given files (name: text), ingested with `prism ingest`; returns its path."""

    def make(files: dict[str, str]) -> Path:
        from prismrag.cli import main

        docs = tmp_path / "docs"
        docs.mkdir()
        for name, text in files.items():
            (docs / name).write_text(text, encoding="utf-8")
        path = tmp_path / "kw.yaml"
        path.write_text(textwrap.dedent("""\
            name: kw
            store: {use: qdrant-edge, path: store}
            sources: [{use: text-files, path: docs}]
            retrievers:
              kw: {encoder: {use: bm25}}
            """))
        assert main(["ingest", str(path), "--quiet"]) == 0
        return path

    return make


@pytest.fixture
def anyio_backend() -> str:
    """The TUI's pilot tests run on asyncio (Textual's loop)."""
    return "asyncio"
