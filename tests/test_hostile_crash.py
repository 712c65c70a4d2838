"""Hostile conditions, crashes (issue 17): SIGKILL at 20 random moments of an ingest of 300
documents, each followed by the next run; in the end every item is present exactly once, with all
its named vectors and the text of its source file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prismrag import Engine

TESTS = Path(__file__).parent
DRIVER = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {str(TESTS)!r})
    from fake_plugins import make_registry
    from prismrag import Engine
    with Engine.from_file(sys.argv[1], registry=make_registry()) as engine:
        engine.ingest()
""")


def write_doc(docs: Path, i: int, version: int) -> None:
    (docs / f"d{i:03d}.md").write_text(f"# Doc {i}\n\nversion {version} of document {i} about topic{i % 17} and w{i * 13 % 101}")


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path, registry):
    docs = tmp_path / "docs"
    docs.mkdir()
    versions = dict.fromkeys(range(300), 0)
    for i in versions:
        write_doc(docs, i, 0)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: r
        store: {use: qdrant-edge, path: store}
        sources: [{use: text-files, path: docs, chunk: null}]
        retrievers:
          dense: {encoder: {use: hash, dimension: 32, delay: 0.05}}
          words: {encoder: {use: bm25}}
        ingest: {batch_size: 16, cache: false}
        """))
    rng = random.Random(17)
    for _ in range(20):
        for i in rng.sample(range(300), 10):  # some documents change between runs
            versions[i] += 1
            write_doc(docs, i, versions[i])
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(recipe)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.8, 3.0))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err
    final = subprocess.run([sys.executable, "-c", DRIVER, str(recipe)], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    with Engine.from_file(recipe, registry=registry) as engine:
        engine.open()
        manifest = engine.store.manifest()
        ids = [f"d{i:03d}.md" for i in range(300)]
        assert sorted(manifest) == ids and engine.store.info().points == 300
        stored = engine.store.retrieve(ids, with_vectors=["dense", "words"])
        for i, item_id in enumerate(ids):
            point = stored[item_id]
            assert set(point.vectors) == {"dense", "words"}, item_id
            assert point.payload["text"] == (docs / item_id).read_text(), item_id
            assert f"version {versions[i]} " in point.payload["text"]
