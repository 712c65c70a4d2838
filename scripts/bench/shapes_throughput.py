"""Ingest throughput of 3D shapes through the real engine (loader, `shape-descriptor`, qdrant-edge):
the 156 ModelNet40 point clouds (.npy, 10,000 points with normals), and generated meshes of
about 100k faces (.ply binary and .obj); then the time and peak memory of reading and sampling
one mesh of about 2M faces in a fresh process (its peak memory).

    .venv/bin/python scripts/bench/shapes_throughput.py [--meshes 12] [--big-faces 2000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

import prismrag

_BIG = """
import json, time, tracemalloc
from pathlib import Path
from prismrag.plugins._shapes import read_shape, sample
start = time.perf_counter()
shape = read_shape(Path({path!r}), max_faces=20_000_000)
read_s = time.perf_counter() - start
sample(shape, 2048)
seconds = time.perf_counter() - start
del shape
tracemalloc.start()  # a second, traced run: the peak of the arrays it allocates
sample(read_shape(Path({path!r}), max_faces=20_000_000), 2048)
print(json.dumps({{"read_s": round(read_s, 2), "read_and_sample_s": round(seconds, 2),
                  "peak_allocated_mb": round(tracemalloc.get_traced_memory()[1] / 1e6)}}))
"""
"""Reads and samples the big mesh in a fresh process: once timed, once with tracemalloc for its peak."""


def noisy_sphere(faces: int, seed: int) -> object:
    """A bumpy UV sphere with about `faces` triangles."""
    import trimesh

    n = int(np.sqrt(faces / 4))  # a UV sphere of count [n, n] has about 4 n² faces
    mesh = trimesh.creation.uv_sphere(radius=1.0, count=[n, n])
    rng = np.random.default_rng(seed)
    mesh.vertices *= 1 + 0.05 * rng.standard_normal((len(mesh.vertices), 1))
    mesh.vertices *= rng.uniform(0.5, 2.0, 3)
    return mesh


def ingest(folder: Path, work: Path, name: str) -> dict[str, float]:
    recipe = work / f"{name}.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: {name}
        store: {{use: qdrant-edge, path: {work / (name + '-store')}}}
        sources: [{{use: shapes, path: {folder}}}]
        retrievers:
          shape: {{encoder: {{use: shape-descriptor}}}}
        ingest: {{cache: false}}
        """))
    engine = prismrag.load_recipe(recipe)
    start = time.perf_counter()
    report = engine.ingest()
    seconds = time.perf_counter() - start
    engine.close()
    assert not report.errors, report.errors
    return {"shapes": report.added, "seconds": round(seconds, 2), "shapes_per_s": round(report.added / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/modelnet40-sample/points"))
    ap.add_argument("--meshes", type=int, default=12)
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--big-faces", type=int, default=2_000_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shapes-bench-"))
    results: dict[str, object] = {}
    try:
        big = work / "big.ply"
        mesh = noisy_sphere(args.big_faces, 0)
        big_faces = len(mesh.faces)  # type: ignore[attr-defined]
        mesh.export(big)  # type: ignore[attr-defined]
        del mesh
        child = subprocess.run([sys.executable, "-c", _BIG.format(path=str(big))], capture_output=True, text=True, check=True)
        results[f"one big mesh (.ply, {big_faces:,} faces, {big.stat().st_size / 1e6:.0f} MB), fresh process"] = json.loads(child.stdout)
        results["point clouds (.npy, 10k points)"] = ingest(Path(args.data), work, "clouds")
        for ext in ("ply", "obj"):
            folder = work / f"meshes-{ext}"
            folder.mkdir()
            faces = 0
            for i in range(args.meshes):
                mesh = noisy_sphere(args.faces, i)
                faces = len(mesh.faces)
                mesh.export(folder / f"m{i}.{ext}")
            results[f"meshes (.{ext}, {faces:,} faces)"] = ingest(folder, work, f"meshes-{ext}")

    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
