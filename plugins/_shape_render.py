"""Private helper of the 3D plugins: a headless renderer (numpy only, no display, no GPU) and a
minimal PNG writer, for multi-view encoders and loader thumbnails."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Literal

import numpy as np

from ._shapes import Shape, sample, up_first

Mode = Literal["silhouette", "depth", "shaded"]


def view_basis(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, image-up, towards camera) unit vectors in (a, b, up) coordinates, the vertical last.
    Azimuth 0 at elevation 0 looks at the shape's front (from +b towards -b)."""
    ca, sa, ce, se = np.cos(azimuth), np.sin(azimuth), np.cos(elevation), np.sin(elevation)
    forward = np.array([sa * ce, ca * ce, se])  # from the shape towards the camera
    right = np.array([-ca, sa, 0.0])
    up = np.cross(forward, right)  # right x up = forward: the image is not mirrored
    return right, up, forward


def render_views(points: np.ndarray, normals: np.ndarray | None, *, views: int = 6, size: int = 128,
                 elevation: float = 20.0, mode: Mode = "depth", splat: int = 1, up: str = "y") -> np.ndarray:
    """uint8 images [views, size, size] of surface points (in the file's axes) and their normals."""
    pts = up_first(np.asarray(points, dtype=np.float64), up)
    pts = pts - (pts.min(axis=0) + pts.max(axis=0)) / 2  # the bounding box centred
    pts /= max(float(np.linalg.norm(pts, axis=1).max()), 1e-12)  # inside a sphere of radius 1
    nrm = up_first(np.asarray(normals, dtype=np.float64), up) if normals is not None else None
    margin = 0.94
    out = np.zeros((views, size, size), dtype=np.uint8)
    for v in range(views):
        right, upv, forward = view_basis(2 * np.pi * v / views, np.radians(elevation))
        u = np.rint((pts @ right * margin + 1) / 2 * (size - 1)).astype(np.int64)
        w = np.rint((1 - pts @ upv * margin) / 2 * (size - 1)).astype(np.int64)  # rows grow downwards
        depth = pts @ forward  # larger = nearer the camera
        if mode == "silhouette":
            value = np.full(len(pts), 255.0)
        elif mode == "depth":
            value = 40 + 215 * (depth + 1) / 2
        else:
            shade = np.abs(nrm @ forward) if nrm is not None else np.ones(len(pts))
            value = 40 + 215 * shade
        zbuf = np.full(size * size, -np.inf)
        image = np.zeros(size * size)
        order = np.argsort(depth, kind="stable")  # far first, near last: near points win ties
        for du in range(-splat + 1, splat):
            for dw in range(-splat + 1, splat):
                uu, ww = u[order] + du, w[order] + dw
                ok = (uu >= 0) & (uu < size) & (ww >= 0) & (ww < size)
                flat, d, val = ww[ok] * size + uu[ok], depth[order][ok], value[order][ok]
                nearer = d > zbuf[flat]
                flat, d, val = flat[nearer], d[nearer], val[nearer]
                zbuf[flat] = d  # last write wins, and the order puts near points last
                image[flat] = val
        out[v] = image.reshape(size, size).clip(0, 255).astype(np.uint8)
    return out


def png_gray(image: np.ndarray) -> bytes:
    """A grayscale uint8 [h, w] image as PNG bytes (zlib and struct only)."""
    h, w = image.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + image[r].astype(np.uint8).tobytes() for r in range(h))  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def thumbnail(shape: Shape, size: int, up: str) -> str:
    """A shaded view of the shape from the front, 20 degrees up, as a PNG data URI."""
    points, normals = sample(shape, 20_000)
    image = render_views(points, normals, views=1, size=size, elevation=20.0, mode="shaded", splat=1, up=up)[0]
    return "data:image/png;base64," + base64.b64encode(png_gray(image)).decode("ascii")
