"""Hostile input, plugins (issue 17): installed plugins that exit or raise at import, implement an
unknown hook, raise inside a hook, register junk or shadow a built-in are reported by name and never
take the CLI down. Each is a real distribution on the path of a `prism` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PRISM = str(Path(sys.executable).parent / "prism")

PLUGINS = {
    "exits": "import sys\nsys.exit(3)\n",
    "raises": "raise RuntimeError('broken at import')\n",
    "typo": "from prismrag import hookimpl\n\n@hookimpl\ndef register_encoderz(register):\n    pass\n",
    "hookfails": "from prismrag import hookimpl\n\n@hookimpl\ndef register_fusions(register):\n    raise ValueError('boom in hook')\n",
    "junk": "from prismrag import hookimpl\n\n@hookimpl\ndef register_encoders(register):\n    register('not a class')\n",
    "cmdfails": "from prismrag import hookimpl\n\n@hookimpl\ndef register_commands(subparsers):\n    raise KeyError('cmd')\n",
    "shadow": textwrap.dedent("""\
        from prismrag import hookimpl
        from prismrag.plugins.bm25_encoder import BM25Encoder

        class Fake(BM25Encoder):
            description = "an impostor"

        @hookimpl
        def register_encoders(register):
            register(Fake)
        """),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """One distribution `hostile-plugins` whose entry points are the modules above, plus one whose
    entry point takes the built-in name `bm25`."""
    root = tmp_path_factory.mktemp("site")
    for name, code in PLUGINS.items():
        (root / f"hostile_{name}.py").write_text(code)
    info = root / "hostile_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-plugins\nVersion: 1.0\n")
    eps = "\n".join(f"{name} = hostile_{name}" for name in PLUGINS) + "\nbm25 = hostile_shadow\n"
    (info / "entry_points.txt").write_text("[prismrag]\n" + eps)
    return root


def prism(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([PRISM, *args], capture_output=True, text=True, env=env, timeout=120)


def test_prism_plugins_reports_every_misbehaving_plugin_by_name(site):
    proc = prism(site, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    errors = {e["plugin"]: e["error"] for e in data["load_errors"]}
    assert "sys.exit(3)" in errors["exits"]
    assert "broken at import" in errors["raises"]
    assert "unknown hook(s) register_encoderz" in errors["typo"]
    assert "boom in hook" in errors["hookfails"]
    assert "'not a class'" in errors["junk"] and "not a subclass" in errors["junk"]
    assert "cmd" in errors.get("cmdfails", "cmd")  # only `add_commands` runs that hook: checked below
    assert "already registered" in errors["shadow"] and "'bm25'" in errors["shadow"]
    assert "already taken" in errors["bm25"]  # the entry point named like the built-in
    bm25 = next(c for c in data["components"] if c["kind"] == "encoder" and c["name"] == "bm25")
    assert bm25["distribution"] == "prismrag"  # the built-in stays


def test_other_commands_still_work_and_warn_by_name(site, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("apples and pears")
    recipe = tmp_path / "kw.yaml"
    recipe.write_text("name: kw\nsources: [{use: text-files, path: docs}]\nretrievers:\n  kw: {encoder: {use: bm25}}\n")
    proc = prism(site, "validate", str(recipe))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("exits", "raises", "typo", "hookfails", "junk", "cmdfails", "shadow"):
        assert f"plugin {name!r}" in proc.stderr, name
    assert "register_commands raised KeyError" in proc.stderr
    assert prism(site, "--help").returncode == 0
