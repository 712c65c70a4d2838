from __future__ import annotations

import sys
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
def anyio_backend() -> str:
    """The TUI's pilot tests run on asyncio (Textual's loop)."""
    return "asyncio"
