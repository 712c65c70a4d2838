"""The headless multi-view renderer and the `shape-views` encoders, fed to the tiny open_clip
model the tests build (loaded through the same code path as a user's checkpoint)."""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
from tiny_models import build_tiny_open_clip

import prismrag
from prismrag.contracts import Media, Modality, MultiBatch
from prismrag.errors import RecipeError
from prismrag.plugins._shapes import Shape, sample
from prismrag.plugins.shape_views import ShapeViewsEncoder, ShapeViewsMultiEncoder, render_views
from prismrag.testing import check_encoder

trimesh = pytest.importorskip("trimesh")
needs_clip = pytest.mark.skipif(importlib.util.find_spec("open_clip") is None, reason="open-clip-torch not installed")


def box_points(extents, n=40_000):
    mesh = trimesh.creation.box(extents=extents)
    return sample(Shape(np.asarray(mesh.vertices, float), np.asarray(mesh.faces), None, "obj"), n)


def filled_box(image):
    rows, cols = np.nonzero(image)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_a_cubes_front_silhouette_is_a_square():
    points, normals = box_points((1, 1, 1))
    front = render_views(points, normals, views=4, size=64, elevation=0, mode="silhouette")[0]
    r0, r1, c0, c1 = filled_box(front)
    assert r1 - r0 == c1 - c0 and r1 - r0 > 30  # as tall as wide, and large
    assert abs((r0 + r1) / 2 - 31.5) <= 1 and abs((c0 + c1) / 2 - 31.5) <= 1  # centred
    assert (front[r0 : r1 + 1, c0 : c1 + 1] == 255).all() and (front > 0).sum() == (r1 - r0 + 1) * (c1 - c0 + 1)


def test_views_turn_about_the_vertical_axis_and_depth_shades_near_parts_brighter():
    points, normals = box_points((2.0, 1.0, 1.0))  # long along x; y is up
    views = render_views(points, normals, views=4, size=64, elevation=0, mode="silhouette", up="y")
    heights_widths = [(r1 - r0, c1 - c0) for r0, r1, c0, c1 in map(filled_box, views)]
    (h0, w0), (h1, w1) = heights_widths[0], heights_widths[1]
    assert h0 == w0 and h1 == h0 and w1 > 1.8 * w0  # front: 1 x 1; a quarter turn: 2 wide, 1 tall
    # a tall box seen with z up is tall; seen with y up it lies down
    tall = box_points((1.0, 1.0, 3.0))
    r0, r1, c0, c1 = filled_box(render_views(*tall, views=1, size=64, elevation=0, mode="silhouette", up="z")[0])
    assert r1 - r0 > 2.5 * (c1 - c0)
    # depth: seen from above, the top of a step is nearer (brighter) than the lower tread
    step = trimesh.util.concatenate([trimesh.creation.box(extents=(1, 0.2, 1)),
                                     trimesh.creation.box(extents=(0.5, 1.0, 1)).apply_translation((0.25, 0.4, 0))])
    pts, nrm = sample(Shape(np.asarray(step.vertices, float), np.asarray(step.faces), None, "obj"), 40_000)
    top = render_views(pts, nrm, views=1, size=64, elevation=90, mode="depth")[0]
    assert top.max() > 0 and top[top > 0].min() < top.max() - 40


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_open_clip(tmp_path_factory.mktemp("clip"))


def write_shapes(folder):
    folder.mkdir(parents=True, exist_ok=True)
    trimesh.creation.box(extents=(1, 1, 1)).export(folder / "cube.obj")
    trimesh.creation.cylinder(radius=0.3, height=2.0).export(folder / "pole.stl")
    trimesh.creation.icosphere().export(folder / "ball.ply")
    (folder / "broken.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n")


@needs_clip
@pytest.mark.parametrize("cls", [ShapeViewsEncoder, ShapeViewsMultiEncoder])
def test_shape_views_meet_the_encoder_contract(tmp_path, tiny_clip, cls):
    config, checkpoint = tiny_clip
    write_shapes(tmp_path)
    params = cls.Params(image_encoder={"use": "open-clip", "model_config": str(config), "pretrained": str(checkpoint)},
                        views=3, size=32, points=5000)
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "grey.png")
    check_encoder(cls(params), {Modality.SHAPE: [Media(path=tmp_path / "cube.obj"), Media(path=tmp_path / "ball.ply")],
                                Modality.IMAGE: [Media(path=tmp_path / "grey.png")]})
    vecs = cls(params).encode_batch([Media(path=tmp_path / "pole.stl")], Modality.SHAPE, "document")
    if cls is ShapeViewsMultiEncoder:
        assert isinstance(vecs, MultiBatch) and vecs.matrices[0].shape[0] == 3
    else:
        assert np.linalg.norm(vecs[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
@needs_clip
def test_shape_views_recipe_searches_shapes_by_text_and_by_shape(tmp_path, tiny_clip):
    config, checkpoint = tiny_clip
    write_shapes(tmp_path / "shapes")
    recipe = tmp_path / "views.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: views
        store: {{use: qdrant-edge, path: store}}
        sources: [{{use: shapes, path: shapes}}]
        retrievers:
          views:
            encoder:
              use: shape-views-multi
              image_encoder: {{use: open-clip, model_config: {config}, pretrained: {checkpoint}}}
              views: 4
              size: 32
              points: 5000
        """))
    engine = prismrag.load_recipe(recipe)
    report = engine.ingest()
    assert report.added == 3 and len(report.errors) == 1 and "broken.ply" in report.errors[0]
    hits = engine.search("a cube", top_k=3)
    assert {h.id for h in hits} == {"cube.obj", "pole.stl", "ball.ply"}
    assert engine.search(tmp_path / "shapes" / "pole.stl")[0].id == "pole.stl"
    engine.close()


def test_a_wrong_image_encoder_is_a_recipe_error(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: bad
        retrievers:
          views:
            encoder: {use: shape-views, image_encoder: {use: shape-descriptor}}
        """))
    with pytest.raises(RecipeError, match="does not embed images"):
        prismrag.load_recipe(recipe)
    recipe.write_text(textwrap.dedent("""\
        name: bad
        retrievers:
          views:
            encoder: {use: shape-views, image_encoder: {use: no-such-encoder}}
        """))
    with pytest.raises(RecipeError, match="image_encoder.*no-such-encoder"):
        prismrag.load_recipe(recipe)
