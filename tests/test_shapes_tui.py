"""A 3D shape hit in the TUI: the detail panel shows the shape's counts, bounding box and the
thumbnail the `shapes` loader rendered (a PNG data URI in the payload), drawn in half blocks; a
pilot test and an SVG snapshot (update with `pytest tests/test_shapes_tui.py --snapshot-update`)."""

from __future__ import annotations

import base64
import io
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("textual")
trimesh = pytest.importorskip("trimesh")

from tui_helpers import first_hit_shown, plain, snapshot_first_hit  # noqa: E402

import prismrag  # noqa: E402
from prismrag.tui.render import metadata_table, thumbnail_blocks  # noqa: E402

pytestmark = pytest.mark.anyio



def shape_recipe(tmp_path: Path) -> Path:
    folder = tmp_path / "shapes"
    folder.mkdir()
    trimesh.creation.box(extents=(1.0, 2.0, 1.0)).export(folder / "tall_box.obj")
    trimesh.creation.icosphere(subdivisions=2).export(folder / "ball.stl")
    pole = trimesh.creation.cylinder(radius=0.2, height=2.0)  # along z: stood up along y, the default up
    pole.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    pole.export(folder / "pole.ply")
    recipe = tmp_path / "shapes.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: shapes-tui
        store: {use: qdrant-edge, path: store}
        sources: [{use: shapes, path: shapes, thumbnail: 32}]
        retrievers:
          shape: {encoder: {use: shape-descriptor, points: 512}}
        """))
    with prismrag.load_recipe(recipe) as engine:
        engine.ingest()
    return recipe


def test_the_loader_stores_a_thumbnail_and_the_detail_panel_draws_it(tmp_path):
    from PIL import Image

    recipe = shape_recipe(tmp_path)
    with prismrag.load_recipe(recipe) as engine:
        hit = engine.search(tmp_path / "shapes" / "tall_box.obj")[0]
    uri = hit.payload["thumbnail"]
    assert uri.startswith("data:image/png;base64,")
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert image.shape == (32, 32)
    rows, cols = np.nonzero(image)
    assert rows.max() - rows.min() > 1.5 * (cols.max() - cols.min())  # the box is twice as tall as wide
    shown = plain(metadata_table(hit.payload))
    assert "faces" in shown and "▀" in shown and "base64" not in shown
    assert "thumbnail unreadable" in plain(thumbnail_blocks("data:image/png;base64,AAAA"))


async def test_a_shape_query_shows_the_hit_with_its_thumbnail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = shape_recipe(tmp_path)
    async with first_hit_shown(recipe, "shapes/pole.ply", hits=3) as screen:
        assert screen._hits[0].id == "pole.ply" and "shape query" in plain(screen.query_one("#search-status").content)
        body = plain(screen.query_one("#detail-body").content)
        assert "bbox_max" in body and "faces" in body and "▀" in body


def test_snapshot_of_a_shape_hit(snap_compare, monkeypatch):
    pytest.importorskip("pytest_textual_snapshot")
    assert snapshot_first_hit(snap_compare, monkeypatch, "prism-shapes-tui-snapshot", "shape-loader,shape-descriptor",
                              shape_recipe, "shapes/pole.ply", hits=3)
