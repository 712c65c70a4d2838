"""Shape-to-shape retrieval by class on ModelNet40 sample (156 shapes): leave-one-out mAP and P@1
of the built-in `shape-descriptor`, with every query rotated by a random angle about the vertical
axis, on the official split (test queries against train shapes), and with estimated normals; plus
the three baselines of ../shared/ENVIRONMENT.md (16³ voxel occupancy, six depth views, D2).

    .venv/bin/python scripts/bench/shapes_descriptor.py [--data ../shared/data/modelnet40-sample]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from prismrag.plugins._shapes import AXES
from prismrag.plugins.shape_descriptor import ShapeDescriptorEncoder, ShapeDescriptorParams


def ranking_scores(queries: np.ndarray, corpus: np.ndarray, q_labels: np.ndarray, c_labels: np.ndarray,
                   same: bool) -> tuple[float, float]:
    """mAP and P@1 by class (cosine); `same`: query i is corpus i and is left out of its own ranking."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    c = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    sims = q @ c.T
    aps, p1 = [], []
    for i in range(len(q)):
        order = np.argsort(-sims[i], kind="stable")
        if same:
            order = order[order != i]
        rel = c_labels[order] == q_labels[i]
        if not rel.any():
            continue
        precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        aps.append(float((precision * rel).sum() / rel.sum()))
        p1.append(float(rel[0]))
    return float(np.mean(aps)), float(np.mean(p1))


def rotate_about(points: np.ndarray, axis: str, angle: float) -> np.ndarray:
    """Rotate [n, 3] points (or normals) about a coordinate axis."""
    i = AXES[axis]
    a, b = (i + 1) % 3, (i + 2) % 3
    out = points.copy()
    c, s = np.cos(angle), np.sin(angle)
    out[:, a] = c * points[:, a] - s * points[:, b]
    out[:, b] = s * points[:, a] + c * points[:, b]
    return out


def baselines(clouds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The 30-line baselines: 16³ voxel occupancy, six 24-px orthographic depth views, D2."""
    vox, views, d2 = [], [], []
    rng = np.random.default_rng(0)
    for p in clouds:
        x = p[:, :3] - (p[:, :3].max(0) + p[:, :3].min(0)) / 2
        x = x / np.abs(x).max()
        idx = np.clip(((x + 1) / 2 * 16).astype(int), 0, 15)
        grid = np.zeros((16, 16, 16))
        grid[idx[:, 0], idx[:, 1], idx[:, 2]] = 1
        vox.append(grid.ravel())
        imgs = []
        for axis in range(3):
            u, v = [k for k in range(3) if k != axis]
            pu = np.clip(((x[:, u] + 1) / 2 * 24).astype(int), 0, 23)
            pv = np.clip(((x[:, v] + 1) / 2 * 24).astype(int), 0, 23)
            for sign in (1, -1):
                depth = np.zeros((24, 24))
                np.maximum.at(depth, (pu, pv), (1 + sign * x[:, axis]) / 2)
                imgs.append(depth.ravel())
        views.append(np.concatenate(imgs))
        i, j = rng.integers(0, len(x), (2, 20000))
        d2.append(np.histogram(np.linalg.norm(x[i] - x[j], axis=1), bins=32, range=(0, 2 * np.sqrt(3)))[0].astype(float))
    return {"voxels-16": np.stack(vox), "depth-views-6": np.stack(views), "d2": np.stack(d2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared/data/modelnet40-sample"))
    ap.add_argument("--seed", type=int, default=42, help="seed of the random query rotations")
    args = ap.parse_args()
    folder = Path(args.data)
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    labels = np.array([r["label"] for r in rows])
    split = np.array([r["split"] for r in rows])
    clouds = [np.load(folder / "points" / f"{r['shape_id']}.npy") for r in rows]
    enc = ShapeDescriptorEncoder()
    up = enc.params.up
    results: dict[str, object] = {"shapes": len(rows), "classes": len(set(labels)), "up": up}

    start = time.perf_counter()
    docs = np.stack([enc.describe_points(*_sampled(enc, p)) for p in clouds])
    results["seconds_per_shape"] = round((time.perf_counter() - start) / len(clouds), 4)
    results["leave_one_out"] = ranking_scores(docs, docs, labels, labels, same=True)

    angles = np.random.default_rng(args.seed).uniform(0, 2 * np.pi, len(clouds))
    rotated = [np.hstack([rotate_about(p[:, :3], up, a), rotate_about(p[:, 3:6], up, a)]) for p, a in zip(clouds, angles, strict=True)]
    queries = np.stack([enc.describe_points(*_sampled(enc, p)) for p in rotated])
    results["leave_one_out_rotated_queries"] = ranking_scores(queries, docs, labels, labels, same=True)

    test, train = split == "test", split == "train"
    results["official_split"] = ranking_scores(docs[test], docs[train], labels[test], labels[train], same=False)

    est = ShapeDescriptorEncoder(ShapeDescriptorParams(normals="estimate"))
    est_docs = np.stack([est.describe_points(*_sampled(est, p)) for p in clouds])
    results["leave_one_out_estimated_normals"] = ranking_scores(est_docs, est_docs, labels, labels, same=True)

    for name, vectors in baselines(clouds).items():
        results[f"baseline {name}"] = ranking_scores(vectors, vectors, labels, labels, same=True)
        if name == "voxels-16":
            rot_vox = baselines(rotated)[name]
            results[f"baseline {name} rotated queries"] = ranking_scores(rot_vox, vectors, labels, labels, same=True)
    print(json.dumps({k: (tuple(round(x, 3) for x in v) if isinstance(v, tuple) else v) for k, v in results.items()}, indent=1))


def _sampled(enc: ShapeDescriptorEncoder, cloud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points and normals the encoder samples from an [n, 6] cloud (as from a .npy file)."""
    from prismrag.plugins._shapes import Shape, sample

    return sample(Shape(cloud[:, :3].astype(np.float64), None, cloud[:, 3:6].astype(np.float64), "npy"),
                  enc.params.points, enc.params.seed)  # type: ignore[return-value]


if __name__ == "__main__":
    main()
