"""Images end to end: a tiny open_clip model built by the test, loaded through the same code path
users hit with a hub model (a local checkpoint as `pretrained`), the images loader, the engine."""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
from PIL import Image
from tiny_models import build_tiny_open_clip

import prismrag

pytestmark = pytest.mark.skipif(importlib.util.find_spec("open_clip") is None, reason="open-clip-torch not installed")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_open_clip(tmp_path_factory.mktemp("clip"))


def make_images(folder, n=6):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        arr[:, : 8 * (i + 1)] = [255 * (i % 2), 40 * i, 200]  # distinct pictures
        Image.fromarray(arr).save(folder / f"img{i}.{'png' if i % 2 else 'jpg'}")
    good = (folder / "img0.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(good[: len(good) // 3])  # truncated


def test_image_recipe_skips_a_corrupt_image_and_searches_by_image_and_text(tmp_path, tiny_clip):
    config, checkpoint = tiny_clip
    make_images(tmp_path / "photos")
    recipe = tmp_path / "images.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: pics
        store: {{use: qdrant-edge, path: store}}
        sources: [{{use: images, path: photos}}]
        retrievers:
          clip:
            encoder: {{use: open-clip, model_config: {config}, pretrained: {checkpoint}}}
        """))
    engine = prismrag.load_recipe(recipe)
    report = engine.ingest()
    assert report.added == 6
    assert len(report.errors) == 1 and "broken.jpg" in report.errors[0]
    assert engine.info()["retrievers"]["clip"]["dimension"] > 0

    hits = engine.search(tmp_path / "photos" / "img3.png")
    assert hits[0].id == "img3.png" and hits[0].modality.value == "image"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    text_hits = engine.search("a photo", top_k=3)
    assert len(text_hits) == 3 and all(h.modality.value == "image" for h in text_hits)
    engine.close()
