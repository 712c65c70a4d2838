"""The `shape-descriptor` encoder: a weight-free vector for shape-to-shape search (numpy only).

A shape (point cloud or mesh, sampled to `points` surface points) is centred on its centroid and
scaled to a mean distance of 1, then described in cylindrical coordinates around the vertical
axis `up` by five blocks, each smoothed, L2-normalized (the histograms square-rooted first), then
weighted and joined (the whole vector L2-normalized, for cosine):

- `cylinder`: a 2-D histogram of radius from the axis × height;
- `azimuth`: per (radius, height) cell, the magnitudes of the first angular Fourier harmonics
  of the points around the axis (how lopsided each ring is, not which way it points);
- `normals`: a 2-D histogram of |normal · up| × height (horizontal floors vs. vertical walls);
- `panorama`: a cylindrical panorama (the largest radius per angle × height cell), and
- `panorama_normals`: the mean |normal · radial direction| per cell, both reduced to the
  magnitudes of their Fourier transforms along the angle.

Invariant to translation, uniform scale, rotation about the `up` axis (exactly for the first
three blocks; up to the panorama's 32 angular bins for the last two) and mirroring across a
vertical plane; not invariant to tilting the up axis (a shape lying on its side is a different
shape). Point clouds without normals get normals estimated by local PCA (16 neighbours). ModelNet
and glTF put `y` up; many scanners and CAD tools put `z` up: set `up` for your data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from prismrag.contracts import Content, Encoder, Modality, Params, Role, hookimpl

from ._shapes import each_or_error, estimate_normals, normalize, sampled_points, up_first

BLOCKS = ("cylinder", "azimuth", "normals", "panorama", "panorama_normals")
_RADIUS = 2.0  # histograms span radius [0, 2] and height [-2, 2] in units of the mean distance
_NR, _NH, _HARMONICS, _NORMAL_BINS = 8, 12, 6, 6
_PAN_ANGLES, _PAN_HEIGHTS, _PAN_HARMONICS = 32, 16, 8
_SMOOTH = 1.2  # Gaussian sigma in bins
_HELLINGER = frozenset({"cylinder", "azimuth", "normals"})  # histograms, square-rooted


class ShapeDescriptorParams(Params):
    points: int = Field(2048, ge=64, le=100_000, description="Surface points sampled per shape (meshes) or kept (point clouds).")
    up: Literal["x", "y", "z"] = Field("y", description="The vertical axis (ModelNet, glTF: y; many scans and CAD files: z).")
    seed: int = Field(0, description="Seed of the point sampling (the same seed gives the same vector).")
    normals: Literal["auto", "estimate"] = Field(
        "auto", description="auto: use the file's normals (mesh faces, point normals) and estimate missing ones; "
        "estimate: always estimate from the points, so files with and without normals compare alike.")
    weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(BLOCKS, 1.0),
                                      description=f"Weight of each block ({', '.join(BLOCKS)}); 0 leaves a block out.")
    max_faces: int = Field(5_000_000, gt=0, description="Refuse meshes with more faces than this.")

    @field_validator("weights")
    @classmethod
    def _blocks(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(BLOCKS))
        if unknown:
            raise ValueError(f"unknown blocks {', '.join(unknown)}; blocks: {', '.join(BLOCKS)}")
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("weights must be >= 0 with at least one above 0")
        return {b: float(value.get(b, 0.0)) for b in BLOCKS}


def _blur(hist: np.ndarray, sigma: float = _SMOOTH, wrap: tuple[bool, ...] | None = None) -> np.ndarray:
    """Separable Gaussian smoothing of a histogram (wrap-around along the axes flagged)."""
    taps = np.arange(-2, 3)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    out = hist
    for axis in range(hist.ndim):
        mode = "wrap" if wrap and wrap[axis] else "constant"
        padded = np.pad(out, [(2, 2) if a == axis else (0, 0) for a in range(hist.ndim)], mode=mode)
        out = sum(k * np.take(padded, np.arange(i, i + hist.shape[axis]), axis=axis) for i, k in enumerate(kernel))
    return out


def _bins(values: np.ndarray, low: float, high: float, count: int) -> np.ndarray:
    return np.clip(((values - low) / (high - low) * count).astype(np.int64), 0, count - 1)


def describe(points: np.ndarray, normals: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    """The descriptor of normalized points (vertical axis last) with unit normals."""
    n = len(points)
    radius = np.hypot(points[:, 0], points[:, 1])
    height = points[:, 2]
    angle = np.arctan2(points[:, 1], points[:, 0])
    rb, hb = _bins(radius, 0, _RADIUS, _NR), _bins(height, -_RADIUS, _RADIUS, _NH)
    cell = rb * _NH + hb
    blocks: dict[str, np.ndarray] = {}

    blocks["cylinder"] = _blur(np.bincount(cell, minlength=_NR * _NH).reshape(_NR, _NH) / n)
    harmonics = []
    for k in range(1, _HARMONICS + 1):
        re = np.bincount(cell, np.cos(k * angle), _NR * _NH)
        im = np.bincount(cell, np.sin(k * angle), _NR * _NH)
        harmonics.append(_blur(np.hypot(re, im).reshape(_NR, _NH) / n))
    blocks["azimuth"] = np.stack(harmonics)

    vertical = np.abs(normals[:, 2])
    nb = _bins(vertical, 0, 1, _NORMAL_BINS)
    blocks["normals"] = _blur(np.bincount(nb * _NH + hb, minlength=_NORMAL_BINS * _NH).reshape(_NORMAL_BINS, _NH) / n)

    ab = _bins(angle, -np.pi, np.pi, _PAN_ANGLES)
    pb = _bins(height, -_RADIUS, _RADIUS, _PAN_HEIGHTS)
    pcell = pb * _PAN_ANGLES + ab
    size = _PAN_HEIGHTS * _PAN_ANGLES
    far = np.zeros(size)
    np.maximum.at(far, pcell, radius / _RADIUS)
    facing = np.abs(normals[:, 0] * np.cos(angle) + normals[:, 1] * np.sin(angle))
    counts = np.bincount(pcell, minlength=size)
    facing_mean = np.bincount(pcell, facing, size) / np.maximum(counts, 1)
    for name, image in (("panorama", far), ("panorama_normals", facing_mean)):
        spectrum = np.abs(np.fft.rfft(image.reshape(_PAN_HEIGHTS, _PAN_ANGLES), axis=1))[:, : _PAN_HARMONICS + 1]
        blocks[name] = _blur(spectrum / _PAN_ANGLES)

    parts = []
    for name in BLOCKS:
        block = blocks[name].ravel()
        if name in _HELLINGER:
            block = np.sqrt(np.maximum(block, 0))
        norm = np.linalg.norm(block)
        parts.append(weights[name] * block / (norm if norm > 0 else 1.0))
    out = np.concatenate(parts)
    return (out / max(np.linalg.norm(out), 1e-12)).astype(np.float32)


DIMENSION = _NR * _NH * (1 + _HARMONICS) + _NORMAL_BINS * _NH + 2 * _PAN_HEIGHTS * (_PAN_HARMONICS + 1)


def shape_points(content: Content, params: ShapeDescriptorParams, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Sampled points and normals (None when unknown) of a shape content, or ItemError."""
    return sampled_points(content, where, max_faces=params.max_faces, points=params.points, seed=params.seed)


class ShapeDescriptorEncoder(Encoder):
    """Weight-free rotation-about-up, scale and translation invariant shape vectors."""

    name = "shape-descriptor"
    description = ("Weight-free 3D shape descriptor (numpy): cylindrical histograms, azimuthal Fourier magnitudes "
                   "and a cylindrical panorama; invariant to scale, translation and rotation about the vertical axis.")
    extra = "shape"  # trimesh, for meshes; point clouds need numpy only
    Params = ShapeDescriptorParams
    params: ShapeDescriptorParams
    output = "dense"
    document_modalities = frozenset({Modality.SHAPE})
    query_modalities = frozenset({Modality.SHAPE})
    metric = "cosine"
    max_batch = 32

    def dimension(self) -> int:
        return DIMENSION

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        rows = each_or_error(contents, self.encode_one, self.where, what="cannot describe shape: ", most=5)
        return np.stack(rows) if rows else np.zeros((0, DIMENSION), np.float32)

    def encode_one(self, content: Content) -> np.ndarray:
        points, normals = shape_points(content, self.params, self.where)
        return self.describe_points(points, normals)

    def describe_points(self, points: np.ndarray, normals: np.ndarray | None) -> np.ndarray:
        """The descriptor of sampled points (in the file's axes) and their normals, if known."""
        pts = up_first(normalize(np.asarray(points, dtype=np.float64)), self.params.up)
        if normals is None or self.params.normals == "estimate":
            nrm = estimate_normals(pts)
        else:
            nrm = up_first(np.asarray(normals, dtype=np.float64), self.params.up)
            length = np.linalg.norm(nrm, axis=1, keepdims=True)
            nrm = np.where(length > 1e-12, nrm / np.maximum(length, 1e-12), 0.0)
        return describe(pts, nrm, self.params.weights)


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(ShapeDescriptorEncoder)
