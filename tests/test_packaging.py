"""The wheel maps core/, plugins/ and tui/ into one `prismrag` namespace, like the editable install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_one_namespace_and_imports_like_the_editable_install(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("prismrag-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"prismrag"}, f"the wheel must install nothing but prismrag, got {tops}"
    assert "prismrag/py.typed" in names and "prismrag/plugins/loaders.py" in names
    assert any(n.startswith("prismrag/tui/") and n.endswith(".tcss") for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import prismrag, prismrag.plugins.loaders, prismrag.tui, prismrag.cli;"
            "print(prismrag.__file__); print(prismrag.plugins.loaders.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(target), "PATH": ""},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in out), out
