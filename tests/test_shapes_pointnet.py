"""The learned point-cloud encoder contract: a tiny PointNet built here, exported with
torch.export to a .pt2 file, and loaded by `point-cloud-model` through the code path a user's
exported OpenShape/Uni3D/ULIP point tower takes; text queries through an aligned text encoder
(the tiny open_clip model, whose width the PointNet matches)."""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
from tiny_models import TINY_CLIP_DIM, build_tiny_open_clip

import prismrag
from prismrag.contracts import Media, Modality, PrismError
from prismrag.plugins.pointcloud_encoder import PointCloudModelEncoder, to_model_axes
from prismrag.testing import check_encoder

trimesh = pytest.importorskip("trimesh")
needs_clip = pytest.mark.skipif(importlib.util.find_spec("open_clip") is None, reason="open-clip-torch not installed")


def build_tiny_pointnet(folder, dim=TINY_CLIP_DIM, channels=3, seed=0):
    """A PointNet (shared per-point MLP, max pool, linear head), exported to `folder/pointnet.pt2`."""
    from prismrag.support import ensure_torchvision_ops

    ensure_torchvision_ops()
    import torch

    class TinyPointNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.point_mlp = torch.nn.Sequential(torch.nn.Linear(channels, 32), torch.nn.ReLU(),
                                                 torch.nn.Linear(32, 64), torch.nn.ReLU())
            self.head = torch.nn.Linear(64, dim)

        def forward(self, points):  # [batch, n, channels] -> [batch, dim]
            return self.head(self.point_mlp(points).max(dim=1).values)

    torch.manual_seed(seed)
    model = TinyPointNet().eval()
    example = torch.rand(2, 256, channels)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = folder / "pointnet.pt2"
    torch.export.save(program, str(path))
    return path, model


@pytest.fixture(scope="module")
def pointnet(tmp_path_factory):
    return build_tiny_pointnet(tmp_path_factory.mktemp("pointnet"))


def write_shapes(folder):
    folder.mkdir(parents=True, exist_ok=True)
    trimesh.creation.box(extents=(1, 2, 1)).export(folder / "tall_box.obj")
    trimesh.creation.cylinder(radius=0.2, height=2.0).export(folder / "pole.stl")
    trimesh.creation.icosphere().export(folder / "ball.ply")
    np.save(folder / "flat.npy", np.random.default_rng(1).random((300, 3)) * [2, 0.05, 2])
    np.save(folder / "nan.npy", np.full((10, 3), np.nan))


def test_the_exported_pointnet_gives_the_vectors_of_the_model_it_was_built_from(tmp_path, pointnet):
    import torch

    path, model = pointnet
    write_shapes(tmp_path)
    enc = PointCloudModelEncoder(PointCloudModelEncoder.Params(checkpoint=str(path), points=256))
    assert enc.dimension() == TINY_CLIP_DIM
    files = [Media(path=tmp_path / n) for n in ("tall_box.obj", "pole.stl", "ball.ply", "flat.npy")]
    vecs = enc.encode_batch(files, Modality.SHAPE, "document")
    with torch.inference_mode():
        direct = model(torch.from_numpy(np.stack([enc.prepare(f)[:, :3] for f in files]).astype(np.float32))).numpy()
    direct /= np.linalg.norm(direct, axis=1, keepdims=True)
    np.testing.assert_allclose(vecs, direct, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[1], atol=1e-3)  # different shapes, different vectors
    with pytest.raises(prismrag.ItemError, match="nan.npy.*NaN") as info:
        enc.encode_batch([files[0], Media(path=tmp_path / "nan.npy")], Modality.SHAPE, "document")
    assert info.value.positions == (1,)
    with pytest.raises(prismrag.QueryError, match="text_encoder"):
        enc.encode_batch(["a pole"], Modality.TEXT, "query")


def test_axes_are_cycled_not_mirrored():
    pts = np.array([[1.0, 2.0, 3.0]])
    assert to_model_axes(pts, "z", "y")[0, 1] == 3.0 and to_model_axes(pts, "y", "y").tolist() == pts.tolist()
    turned = to_model_axes(np.eye(3), "z", "y")
    assert np.linalg.det(turned) == pytest.approx(1.0)


def test_a_file_that_is_not_an_exported_model_is_a_clear_error(tmp_path, pointnet):
    bad = tmp_path / "weights.pt2"
    bad.write_bytes(b"not a model")
    enc = PointCloudModelEncoder(PointCloudModelEncoder.Params(checkpoint=str(bad)))
    with pytest.raises(PrismError, match="weights.pt2 is not an exported model.*torch.export.save"):
        enc.dimension()
    path, _ = pointnet  # exported for 256 points of 3 channels
    for params in ({"points": 128}, {"points": 256, "normals": True}):
        wrong = PointCloudModelEncoder(PointCloudModelEncoder.Params(checkpoint=str(path), **params))
        with pytest.raises(PrismError, match=r"refused input of shape \[1, (128, 3|256, 6)\].*set `points`"):
            wrong.dimension()
    missing = PointCloudModelEncoder(PointCloudModelEncoder.Params(checkpoint=str(tmp_path / "nowhere.pt2")))
    with pytest.raises(PrismError, match="does not exist"):
        missing.dimension()


@pytest.mark.slow
@needs_clip
def test_pointnet_with_an_aligned_text_tower_in_a_recipe(tmp_path, pointnet):
    config, checkpoint = build_tiny_open_clip(tmp_path / "clip")
    path, _ = pointnet
    write_shapes(tmp_path / "shapes")
    text = {"use": "open-clip", "model_config": str(config), "pretrained": str(checkpoint)}
    enc = PointCloudModelEncoder(PointCloudModelEncoder.Params(checkpoint=str(path), points=256, text_encoder=text))
    check_encoder(enc, {Modality.SHAPE: [Media(path=tmp_path / "shapes" / "pole.stl"),
                                         Media(data=(tmp_path / "shapes" / "flat.npy").read_bytes())]})
    recipe = tmp_path / "pointnet.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: pointnet
        store: {{use: qdrant-edge, path: store}}
        sources: [{{use: shapes, path: shapes}}]
        retrievers:
          learned:
            encoder:
              use: point-cloud-model
              checkpoint: {path}
              points: 256
              text_encoder: {{use: open-clip, model_config: {config}, pretrained: {checkpoint}}}
        """))
    engine = prismrag.load_recipe(recipe)
    report = engine.ingest()
    assert report.added == 4 and len(report.errors) == 1 and "nan.npy" in report.errors[0]
    assert engine.search(tmp_path / "shapes" / "pole.stl")[0].id == "pole.stl"
    assert len(engine.search("a ball", top_k=4)) == 4
    engine.close()
