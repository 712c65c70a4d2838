"""A real `prism serve` in a subprocess for tests, with the hash test encoder installed the way
a third-party plugin is (a dist-info with an entry point on PYTHONPATH): no model, no torch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
PRISM = str(Path(sys.executable).parent / "prism")
DOCS = {
    "apples": "Apples grow on trees in orchards and ripen in autumn.",
    "rivers": "Rivers flow into the sea through wide deltas.",
    "stars": "Stars shine at night, far away across the galaxy.",
    "bread": "Bread is baked from flour, water, yeast and salt.",
    "trees": "Oak trees and apple trees grow slowly in orchards.",
}


def plugin_site(folder: Path) -> Path:
    """A folder that, on PYTHONPATH, makes the `hash` encoder an installed plugin."""
    site = folder / "site"
    info = site / "prism_test_hash-0.0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prism-test-hash\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[prismrag]\nhash-test = prism_test_hash\n")
    (site / "prism_test_hash.py").write_text(textwrap.dedent("""\
        from fake_plugins import HashEncoder
        from prismrag import hookimpl


        @hookimpl
        def register_encoders(register):
            register(HashEncoder)
        """))
    return site


def env_with_plugin(folder: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(plugin_site(folder)), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path.rstrip(os.pathsep), **extra)


def hash_recipe(folder: Path, name: str = "docs", encoder: str = "{use: hash, dimension: 64}", extra: str = "") -> Path:
    recipe = folder / f"{name}.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: {name}
        store: {{use: qdrant-edge, path: {name}-store}}
        retrievers:
          dense: {{encoder: {encoder}}}
        """) + extra)
    return recipe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: Any = None, *, key: str | None = None, method: str | None = None,
         data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any]:
    """(status, parsed JSON or text) of one request; errors are answers, not exceptions."""
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("content-type", "")
    return status, json.loads(raw) if "json" in ctype else raw.decode()


@contextmanager
def serve(recipes: list[Path], folder: Path, *args: str, env: dict[str, str] | None = None,
          ready_timeout: float = 60) -> Iterator[str]:
    """`prism serve RECIPES --port P ARGS` until the block ends; yields its base URL once ready."""
    port = free_port()
    log = (folder / f"serve-{port}.log").open("w")
    proc = subprocess.Popen([PRISM, "serve", *map(str, recipes), "--port", str(port), *args],
                            env=env or env_with_plugin(folder), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prism serve exited {proc.returncode}:\n{(folder / log.name).read_text()}")
            try:
                status, body = call(base + "/readyz", timeout=2)
                if status == 200:
                    break
                if body.get("status") == "failed":
                    raise AssertionError(f"prism serve failed to load: {body}")
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prism serve not ready after {ready_timeout} s:\n{Path(log.name).read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def ingest_docs(base: str, recipe: str = "docs", key: str | None = None) -> Any:
    items = [{"id": k, "text": v, "metadata": {"kind": "fruit" if k in ("apples", "trees") else "other"}}
             for k, v in DOCS.items()]
    status, body = call(f"{base}/v1/recipes/{recipe}/items", {"items": items}, key=key)
    assert status == 200, body
    return body
