"""3D shapes: the `shapes` loader on every format it reads, every bad input of issue 11, the
weight-free `shape-descriptor` (its invariances and its quality on ModelNet40), and a recipe end to
end on the real engine. Files are written by real libraries (numpy, trimesh) in each test."""

from __future__ import annotations

import csv
import textwrap

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA

import prismrag
from prismrag.contracts import Context, ItemError, Media, Modality
from prismrag.plugins import shape_descriptor, shape_loader
from prismrag.plugins._shapes import AXES, Shape, sample
from prismrag.plugins.shape_descriptor import ShapeDescriptorEncoder, ShapeDescriptorParams
from prismrag.plugins.shape_loader import ShapesLoader
from prismrag.testing import check_encoder, check_loader

trimesh = pytest.importorskip("trimesh")
MODELNET = SHARED_DATA / "modelnet40-sample"


def lshape() -> trimesh.Trimesh:
    """An asymmetric mesh (an L of two boxes and a small off-centre post): no rotation maps it to itself."""
    a = trimesh.creation.box(extents=(2.0, 0.4, 0.6))
    b = trimesh.creation.box(extents=(0.4, 1.6, 0.6))
    b.apply_translation((0.8, 1.0, 0.0))
    c = trimesh.creation.box(extents=(0.2, 0.2, 1.4))
    c.apply_translation((-0.7, 0.3, 0.5))
    return trimesh.util.concatenate([a, b, c])


def cloud(n: int = 3000, seed: int = 0) -> np.ndarray:
    """[n, 6] points with normals on the L shape's surface."""
    pts, idx = trimesh.sample.sample_surface(lshape(), n, seed=seed)
    return np.hstack([pts, lshape().face_normals[idx]]).astype(np.float32)


def write_good_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    mesh, pc = lshape(), cloud()
    np.save(folder / "cloud.npy", pc)
    np.save(folder / "xyz_only.npy", pc[:, :3])
    np.savez(folder / "cloud.npz", points=pc[:, :3], normals=pc[:, 3:])
    np.savetxt(folder / "cloud.xyz", pc[:, :3])
    (folder / "cloud.pts").write_text(f"{len(pc)}\n" + "\n".join(" ".join(f"{v:.5f}" for v in r) for r in pc))
    header = "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z normal_x normal_y normal_z\nSIZE 4 4 4 4 4 4\nTYPE F F F F F F\n"
    header += f"COUNT 1 1 1 1 1 1\nWIDTH {len(pc)}\nHEIGHT 1\nPOINTS {len(pc)}\n"
    (folder / "cloud_ascii.pcd").write_text(header + "DATA ascii\n" + "\n".join(" ".join(map(str, r)) for r in pc))
    (folder / "cloud_bin.pcd").write_bytes((header + "DATA binary\n").encode() + pc.astype("<f4").tobytes())
    trimesh.PointCloud(pc[:, :3]).export(folder / "points.ply")
    vertex_header = f"element vertex {len(pc)}\nproperty float x\nproperty float y\nproperty float z\n" \
                    "property float nx\nproperty float ny\nproperty float nz\nend_header\n"
    (folder / "normals_ascii.ply").write_text("ply\nformat ascii 1.0\n" + vertex_header
                                              + "\n".join(" ".join(map(str, r)) for r in pc) + "\n")
    (folder / "normals_bin.ply").write_bytes(("ply\nformat binary_little_endian 1.0\n" + vertex_header).encode()
                                             + pc.astype("<f4").tobytes())
    for ext in ("obj", "off", "stl", "ply", "glb"):
        mesh.export(folder / f"mesh.{ext}")
    (folder / "gltf").mkdir()
    mesh.export(folder / "gltf" / "mesh.gltf")  # with its buffers in .bin files beside it
    return sorted(p for p in folder.rglob("*") if p.suffix != ".bin" and p.is_file())


def load_all(folder, **params):
    loader = ShapesLoader(ShapesLoader.Params(path=str(folder), **params), Context(base_dir=folder))
    items, errors = [], []
    for entry in loader.load():
        (errors if isinstance(entry, ItemError) else items).append(entry)
    return {i.id: i for i in items}, errors


def test_loader_reads_every_format_with_metadata(tmp_path):
    files = write_good_files(tmp_path / "shapes")
    items, errors = load_all(tmp_path / "shapes")
    assert errors == []
    assert sorted(items) == sorted(p.relative_to(tmp_path / "shapes").as_posix() for p in files)
    npy = items["cloud.npy"].metadata
    assert npy["shape_kind"] == "points" and npy["points"] == 3000 and npy["faces"] == 0 and npy["has_normals"]
    assert not items["xyz_only.npy"].metadata["has_normals"]
    assert items["cloud.npz"].metadata["has_normals"] and items["cloud_bin.pcd"].metadata["has_normals"]
    assert items["points.ply"].metadata["shape_kind"] == "points"
    for name in ("mesh.obj", "mesh.off", "mesh.stl", "mesh.ply", "mesh.glb", "gltf/mesh.gltf"):
        meta = items[name].metadata
        assert meta["shape_kind"] == "mesh" and meta["faces"] == 36 and meta["has_normals"], name
        np.testing.assert_allclose(meta["bbox_min"], [-1.0, -0.2, -0.3], atol=1e-5)
        np.testing.assert_allclose(meta["bbox_max"], [1.0, 1.8, 1.2], atol=1e-5)
    # every point-cloud format gives the same bounding box as the .npy it was written from
    for name in ("cloud.npz", "cloud.xyz", "cloud.pts", "cloud_ascii.pcd", "cloud_bin.pcd", "points.ply",
                 "normals_ascii.ply", "normals_bin.ply"):
        np.testing.assert_allclose(items[name].metadata["bbox_min"], npy["bbox_min"], atol=1e-4)
    assert items["normals_ascii.ply"].metadata["has_normals"] and items["normals_bin.ply"].metadata["has_normals"]
    assert all(i.modality is Modality.SHAPE and isinstance(i.content, Media) for i in items.values())
    assert all(i.metadata["thumbnail"].startswith("data:image/png;base64,") for i in items.values())
    assert "thumbnail" not in load_all(tmp_path / "shapes", thumbnail=0)[0]["mesh.obj"].metadata


def test_loader_meets_the_contract(tmp_path):
    files = write_good_files(tmp_path / "shapes")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((10, 3), np.nan))
    check_loader(ShapesLoader, files[:4], bad)


def bad_inputs(folder):
    """Each bad input of issue 11, with the words its error must contain (None: documented handling, loads)."""
    folder.mkdir(parents=True, exist_ok=True)
    pts = cloud(500)[:, :3]
    nan = pts.copy()
    nan[7, 1] = np.nan
    np.save(folder / "nan.npy", nan)
    inf = pts.copy()
    inf[3, 0] = np.inf
    np.savetxt(folder / "inf.xyz", inf)
    np.save(folder / "single.npy", np.ones((1, 3)))
    np.save(folder / "identical.npy", np.tile([[0.5, 1.0, -2.0]], (200, 1)))
    np.save(folder / "flat_vector.npy", np.arange(30.0))
    (folder / "empty.obj").write_text("")
    (folder / "vertices_only.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n")
    (folder / "zero_area.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    (folder / "missing_material.obj").write_text(
        "mtllib nowhere.mtl\nusemtl wood\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    # non-manifold: three triangles share the edge 1-2; self-intersecting: two crossing triangles
    (folder / "non_manifold.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 -1 0\nv 0 0 1\nv 0.5 0.2 -1\nv 0.5 0.2 1\nv 0.2 0.8 0\n"
        "f 1 2 3\nf 1 2 4\nf 1 2 5\nf 6 7 8\n")
    ply = trimesh.exchange.ply.export_ply(lshape(), encoding="binary")
    (folder / "truncated.ply").write_bytes(ply[: len(ply) - 100])
    header = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 500\nHEIGHT 1\nPOINTS 500\nDATA binary\n"
    (folder / "truncated.pcd").write_bytes(header.encode() + pts.astype("<f4").tobytes()[:-40])
    (folder / "garbage.stl").write_bytes(b"\x00\x01 not an stl at all")
    return {
        "nan.npy": "NaN or infinite", "inf.xyz": "NaN or infinite", "single.npy": "only one point",
        "identical.npy": "identical", "flat_vector.npy": "expected [points, 3]", "empty.obj": "empty",
        "zero_area.obj": "zero area", "truncated.ply": "not a readable .ply", "truncated.pcd": "cut off",
        "garbage.stl": "not a readable .stl", "vertices_only.obj": None, "missing_material.obj": None,
        "non_manifold.obj": None,
    }


def test_every_bad_input_is_a_clear_item_error_or_documented_handling(tmp_path):
    expected = bad_inputs(tmp_path / "bad")
    items, errors = load_all(tmp_path / "bad")
    by_file = {e.where.rsplit("/", 1)[-1]: e.message for e in errors}
    for name, words in expected.items():
        if words is None:
            assert name in items, f"{name}: {by_file.get(name)}"
        else:
            assert name not in items and words in by_file[name], (name, by_file.get(name))
    assert len(errors) == sum(w is not None for w in expected.values())
    # documented handling: a mesh without faces is the point cloud of its vertices
    assert items["vertices_only.obj"].metadata["shape_kind"] == "points"
    assert items["missing_material.obj"].metadata["faces"] == 4
    # the encoder describes what the loader accepts, and names the file of what it refuses
    enc = ShapeDescriptorEncoder()
    vectors = enc.encode_batch([items[n].content for n in ("vertices_only.obj", "missing_material.obj", "non_manifold.obj")],
                               Modality.SHAPE, "document")
    assert vectors.shape == (3, enc.dimension()) and np.isfinite(vectors).all()
    with pytest.raises(ItemError, match="truncated.ply.*not a readable .ply") as info:
        enc.encode_batch([items["non_manifold.obj"].content, Media(path=tmp_path / "bad" / "truncated.ply")],
                         Modality.SHAPE, "query")
    assert info.value.positions == (1,)


def test_txt_is_text_unless_the_shape_loader_is_told(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    np.savetxt(folder / "scan.txt", cloud(300), delimiter=",")  # ModelNet's own CSV text layout
    np.save(folder / "a.npy", cloud(300))
    assert sorted(load_all(folder)[0]) == ["a.npy"]
    items, errors = load_all(folder, text_points=True)
    assert sorted(items) == ["a.npy", "scan.txt"] and errors == []
    assert items["scan.txt"].metadata["has_normals"]


def test_huge_meshes_are_bounded_by_max_faces(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20,480 faces
    sphere.export(tmp_path / "sphere.stl")
    items, errors = load_all(tmp_path, max_faces=10_000)
    assert items == {} and "20,480 faces is over the limit of 10,000" in errors[0].message
    assert "sphere.stl" in load_all(tmp_path)[0]


# -------------------------------------------------------------------------------- descriptor


def rotate(points: np.ndarray, axis: str, angle: float) -> np.ndarray:
    i = AXES[axis]
    a, b = (i + 1) % 3, (i + 2) % 3
    out = points.copy()
    c, s = np.cos(angle), np.sin(angle)
    out[:, a], out[:, b] = c * points[:, a] - s * points[:, b], s * points[:, a] + c * points[:, b]
    return out


@pytest.mark.parametrize("up", ["y", "z"])
def test_descriptor_is_invariant_to_scale_translation_and_rotation_about_up(tmp_path, up):
    enc = ShapeDescriptorEncoder(ShapeDescriptorParams(up=up))
    mesh = lshape()
    mesh.export(tmp_path / "orig.obj")
    copies = []
    rng = np.random.default_rng(3)
    for k in range(4):
        m = mesh.copy()
        m.vertices = rotate(np.asarray(m.vertices), up, rng.uniform(0, 2 * np.pi)) * rng.uniform(0.1, 30) + rng.normal(0, 50, 3)
        m.export(tmp_path / f"copy{k}.obj")
        copies.append(Media(path=tmp_path / f"copy{k}.obj"))
    tilted = mesh.copy()
    tilted.vertices = rotate(np.asarray(tilted.vertices), "x" if up != "x" else "y", np.pi / 2)
    tilted.export(tmp_path / "tilted.obj")
    vecs = enc.encode_batch([Media(path=tmp_path / "orig.obj"), *copies, Media(path=tmp_path / "tilted.obj")],
                            Modality.SHAPE, "document")
    sims = vecs[1:] @ vecs[0]
    assert (sims[:4] > 0.985).all(), sims
    assert sims[4] < 0.95, "tipping the shape over must change its vector (up is not arbitrary)"

    # a point cloud with normals: the same points moved give the same vector up to the panorama bins
    pc = cloud(4000)
    moved = np.hstack([rotate(pc[:, :3], up, 1.234) * 7.5 + 3.0, rotate(pc[:, 3:], up, 1.234)])
    a = enc.describe_points(pc[:, :3], pc[:, 3:])
    b = enc.describe_points(moved[:, :3], moved[:, 3:])
    assert a @ b > 0.995


def test_descriptor_meets_the_encoder_contract(tmp_path):
    files = write_good_files(tmp_path / "shapes")
    samples = {Modality.SHAPE: [Media(path=files[0]), Media(data=files[1].read_bytes())]}
    check_encoder(ShapeDescriptorEncoder, samples)


def test_descriptor_params_are_checked():
    with pytest.raises(ValueError, match="unknown blocks colour"):
        ShapeDescriptorParams(weights={"colour": 1.0})
    with pytest.raises(ValueError, match="at least one above 0"):
        ShapeDescriptorParams(weights={"cylinder": 0.0})


def modelnet():
    rows = list(csv.DictReader((MODELNET / "labels.csv").open()))
    return [np.load(MODELNET / "points" / f"{r['shape_id']}.npy") for r in rows], np.array([r["label"] for r in rows])


def loo_map(queries: np.ndarray, docs: np.ndarray, labels: np.ndarray) -> float:
    sims = queries @ docs.T
    aps = []
    for i in range(len(queries)):
        order = np.argsort(-sims[i], kind="stable")
        rel = labels[order[order != i]] == labels[i]
        if rel.any():
            aps.append((np.cumsum(rel) / np.arange(1, len(rel) + 1) * rel).sum() / rel.sum())
    return float(np.mean(aps))


@pytest.mark.slow
@pytest.mark.skipif(not (MODELNET / "labels.csv").is_file(), reason="ModelNet40 sample absent")
def test_modelnet_leave_one_out_map_and_random_rotations_about_up():
    clouds, labels = modelnet()
    enc = ShapeDescriptorEncoder()
    assert enc.params.up == "y"  # ModelNet's vertical axis

    def describe(c):
        s = Shape(c[:, :3].astype(np.float64), None, c[:, 3:6].astype(np.float64), "npy")
        return enc.describe_points(*sample(s, enc.params.points, enc.params.seed))

    docs = np.stack([describe(c) for c in clouds])
    angles = np.random.default_rng(7).uniform(0, 2 * np.pi, len(clouds))
    rotated = [np.hstack([rotate(c[:, :3], "y", a), rotate(c[:, 3:6], "y", a)]) for c, a in zip(clouds, angles, strict=True)]
    queries = np.stack([describe(c) for c in rotated])
    plain, turned = loo_map(docs, docs, labels), loo_map(queries, docs, labels)
    assert plain >= 0.45, plain
    assert plain - turned < 0.05, (plain, turned)


# ------------------------------------------------------------------------------- end to end


def test_shape_recipe_ingests_and_searches_by_shape(tmp_path):
    write_good_files(tmp_path / "data")
    bad_inputs(tmp_path / "data" / "bad")
    recipe = tmp_path / "shapes.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: shapes-test
        store: {use: qdrant-edge, path: store}
        sources: [{use: files, path: data}]
        retrievers:
          shape:
            encoder: {use: shape-descriptor, points: 1024, up: y}
        """))
    engine = prismrag.load_recipe(recipe)
    report = engine.ingest()
    assert report.added == 16 + 3  # the good files and the three documented odd ones
    shape_errors = [e for e in report.errors if "not a usable shape" in e]
    assert len(shape_errors) == 10 and any("nan.npy" in e and "NaN" in e for e in shape_errors)
    assert [e for e in report.errors if e not in shape_errors] == [
        "data: 2 files skipped: no loader for extensions .bin. Narrow `glob`, add them to `exclude`, "
        "or install a plugin that loads them."]  # the .gltf's buffers, read through the .gltf
    hits = engine.search(tmp_path / "data" / "mesh.stl", top_k=20)
    # the one mesh in six formats: the same surface samples, the same vector, ahead of everything else
    assert {h.id for h in hits[:6]} == {"mesh.obj", "mesh.off", "mesh.stl", "mesh.ply", "mesh.glb", "gltf/mesh.gltf"}
    assert all(h.modality is Modality.SHAPE and h.score > 0.999 for h in hits[:6]) and hits[6].score < 0.999
    top = hits[0].payload
    assert top["faces"] == 36 and top["bbox_max"] == pytest.approx([1.0, 1.8, 1.2]) and "path" in top
    engine.close()


def test_shipped_recipe_builds():
    from prismrag.recipe import build_recipe, load_recipe_spec

    built = build_recipe(*load_recipe_spec(ROOT / "recipes" / "shapes.yaml"), prismrag.Registry())
    assert built.retrievers["shape"].encoder.name == "shape-descriptor"


def test_plugins_register(prism_registry):
    registry = prism_registry(shape_loader, shape_descriptor)
    assert registry.get("loader", "shapes") is ShapesLoader
    assert registry.get("encoder", "shape-descriptor") is ShapeDescriptorEncoder


def test_importing_the_shape_plugins_imports_neither_trimesh_nor_torch():
    import subprocess
    import sys

    code = ("import sys; import prismrag.plugins.shape_loader, prismrag.plugins.shape_descriptor, "
            "prismrag.plugins.shape_views, prismrag.plugins.pointcloud_encoder; "
            "print(sorted(m for m in ('trimesh', 'torch', 'PIL', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.skipif(not (MODELNET / "labels.csv").is_file(), reason="ModelNet40 sample absent")
def test_prism_eval_on_the_official_modelnet_split(tmp_path, capsys):
    """`prism eval recipes/shapes.yaml --queries example`: the test shapes query the training shapes."""
    import json

    from prismrag.cli import main

    code = main(["eval", str(ROOT / "recipes" / "shapes.yaml"), "--data", str(MODELNET), "--queries", "example",
                 "--json", "--quiet", "--no-ann-check"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["queries"] == 26  # 29 test shapes, 3 of a class without training shapes
    assert report["MAP@100"] > 0.45 and report["MRR@10"] > 0.6
