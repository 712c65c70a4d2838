"""Private helpers of the 3D plugins: reading point clouds and meshes, checking them, sampling
points on a mesh surface (area-weighted) and normalizing.

Point clouds are read with numpy (.npy, .npz, .xyz, .pts, .txt, ASCII and binary .pcd); meshes
and .ply files with trimesh (imported on first use). Every problem with a file is a `ShapeError`
whose message says what is wrong; callers turn it into an `ItemError`.

Documented handling of odd inputs:
- a mesh file with vertices but no faces is read as a point cloud of its vertices;
- non-manifold, self-intersecting or unoriented meshes are accepted as they are (surface
  sampling needs only triangles with an area);
- an .obj naming a missing material file is read without materials (no shape reads colour);
- NaN or infinite coordinates, no points, one point or all points identical are errors.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import AfterValidator

from prismrag.contracts import Content, Encoder, ItemError, Media
from prismrag.support import import_optional

POINT_SUFFIXES = frozenset({".npy", ".npz", ".xyz", ".pts", ".txt", ".pcd"})
MESH_SUFFIXES = frozenset({".obj", ".off", ".stl", ".ply", ".glb", ".gltf"})
AXES = {"x": 0, "y": 1, "z": 2}
NPZ_POINT_KEYS = ("points", "xyz", "pos", "vertices", "coords")
NPZ_NORMAL_KEYS = ("normals", "normal", "norm")
_CHUNK = 1 << 20
"""Faces handled at once when computing areas, so memory stays bounded for huge meshes."""
T = TypeVar("T")


class ShapeError(ValueError):
    """A file that cannot be read as a shape; the message says why."""


@dataclass(frozen=True)
class Shape:
    """A point cloud (`faces` None) or a triangle mesh, as read from a file."""

    vertices: np.ndarray
    """float64 [n, 3]"""
    faces: np.ndarray | None
    """int64 [f, 3] vertex indices, or None for a point cloud"""
    normals: np.ndarray | None
    """float64 [n, 3] per-point normals of a point cloud, when the file has them"""
    format: str

    @property
    def kind(self) -> Literal["mesh", "points"]:
        return "points" if self.faces is None else "mesh"

    @cached_property
    def areas(self) -> np.ndarray:
        """Triangle areas (float64 [f]; empty for a point cloud), computed once."""
        return _areas(self.vertices, self.faces) if self.faces is not None else np.zeros(0)


# ----------------------------------------------------------------------------------- reading


def media_suffix(media: Media) -> str:
    """The file type of a media value: its path's suffix, else sniffed from its bytes."""
    if media.path is not None:
        return Path(media.path).suffix.lower()
    head = (media.data or b"")[:16]
    if head.startswith(b"\x93NUMPY"):
        return ".npy"
    if head.startswith(b"PK"):
        return ".npz"
    if head.startswith(b"ply"):
        return ".ply"
    if head.startswith(b"glTF"):
        return ".glb"
    raise ShapeError("cannot tell the file type of shape bytes without a file name (give a path)")


def read_media(media: Media, *, max_faces: int, text_points: bool = True) -> Shape:
    """Read a shape from a file path or bytes (see `read_shape`)."""
    suffix = media_suffix(media)
    if media.path is not None:
        return read_shape(Path(media.path), max_faces=max_faces, text_points=text_points)
    return read_shape_bytes(media.read(), suffix, max_faces=max_faces)


def read_shape(path: Path, *, max_faces: int, text_points: bool = True) -> Shape:
    """Read and check the shape in `path`; raises ShapeError naming what is wrong."""
    suffix = path.suffix.lower()
    if suffix == ".txt" and not text_points:
        raise ShapeError(".txt files are text unless the shape loader is told `text_points: true`")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ShapeError(f"cannot read: {exc.strerror or exc}") from exc
    return read_shape_bytes(data, suffix, max_faces=max_faces, path=path)


def read_shape_bytes(data: bytes, suffix: str, *, max_faces: int, path: Path | None = None) -> Shape:
    """Read and check a shape from the bytes of a file of type `suffix`."""
    if not data:
        raise ShapeError("the file is empty")
    if suffix in (".npy", ".npz"):
        shape = _read_numpy(data, suffix)
    elif suffix in (".xyz", ".pts", ".txt"):
        shape = _read_text_points(data, suffix)
    elif suffix == ".pcd":
        shape = _read_pcd(data)
    elif suffix in MESH_SUFFIXES:
        shape = _read_trimesh(data, suffix, max_faces, path)
    else:
        raise ShapeError(f"{suffix or 'no extension'} is not a 3D format read here")
    check_shape(shape)
    return shape


def _columns(array: np.ndarray, what: str, fmt: str) -> Shape:
    """A point cloud from an [n, 3] (xyz) or [n, >=6] (xyz + normals) array."""
    if array.ndim != 2 or array.shape[1] < 3:
        raise ShapeError(f"{what} has shape {tuple(array.shape)}; expected [points, 3] (xyz) or [points, 6] (xyz + normals)")
    if not np.issubdtype(array.dtype, np.number):
        raise ShapeError(f"{what} holds {array.dtype} values, not numbers")
    array = array.astype(np.float64, copy=False)
    normals = array[:, 3:6] if array.shape[1] >= 6 else None
    return Shape(array[:, :3], None, normals, fmt)


def _read_numpy(data: bytes, suffix: str) -> Shape:
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ShapeError(f"not a readable {suffix} file ({exc})") from exc
    if isinstance(loaded, np.ndarray):
        return _columns(loaded, "the array", suffix[1:])
    with loaded:
        keys = list(loaded.files)
        key = next((k for k in NPZ_POINT_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise ShapeError(f"the .npz holds {', '.join(keys) or 'nothing'}; name the points array one of {', '.join(NPZ_POINT_KEYS)}")
        shape = _columns(loaded[key], f"array {key!r}", "npz")
        nkey = next((k for k in NPZ_NORMAL_KEYS if k in keys), None)
        if nkey is not None and shape.normals is None:
            normals = np.asarray(loaded[nkey], dtype=np.float64)
            if normals.shape != shape.vertices.shape:
                raise ShapeError(f"array {nkey!r} has shape {normals.shape} but the points have {shape.vertices.shape}")
            shape = Shape(shape.vertices, None, normals, "npz")
    return shape


def _read_text_points(data: bytes, suffix: str) -> Shape:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("#", "//"))]
    if lines and len(lines[0].replace(",", " ").split()) == 1:  # a leading point count (.pts)
        lines = lines[1:]
    rows = []
    for lineno, line in enumerate(lines, 1):
        try:
            rows.append([float(v) for v in line.replace(",", " ").split()])
        except ValueError:
            raise ShapeError(f"line {lineno} is not numbers: {line[:60]!r}") from None
    if not rows:
        raise ShapeError("no points in the file")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ShapeError(f"rows have different numbers of values ({', '.join(map(str, sorted(widths)))})")
    return _columns(np.asarray(rows, dtype=np.float64), "the rows", suffix[1:])


_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
              ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}


def _read_pcd(data: bytes) -> Shape:
    """Point Cloud Library .pcd files, ASCII or binary (not binary_compressed)."""
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise ShapeError("the PCD header has no DATA line (file cut off?)")
        line = data[pos:end].decode("ascii", "replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    try:
        fields = header["FIELDS"]
        sizes = [int(v) for v in header.get("SIZE", ["4"] * len(fields))]
        types = header.get("TYPE", ["F"] * len(fields))
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
        n = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
    except (KeyError, ValueError, IndexError) as exc:
        raise ShapeError(f"the PCD header lacks or garbles {exc}") from exc
    if not {"x", "y", "z"} <= set(fields):
        raise ShapeError(f"the PCD fields are {' '.join(fields)}; x, y and z are needed")
    mode = header["DATA"][0].lower() if header["DATA"] else ""
    names = [f if c == 1 else f"{f}_{i}" for f, c in zip(fields, counts, strict=False) for i in range(c)]
    if mode == "ascii":
        try:
            table = np.loadtxt(io.BytesIO(data[pos:]), dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise ShapeError(f"PCD ASCII data is not numbers ({exc})") from exc
        if table.shape != (n, len(names)) and not (n == 0 and table.size == 0):
            raise ShapeError(f"PCD says {n} points of {len(names)} values; the data holds {table.shape[0]} rows of {table.shape[1]}")
        cols = {name: table[:, i] for i, name in enumerate(names)}
    elif mode == "binary":
        try:
            dtype = np.dtype([(name, "<" + _PCD_TYPES[(t.upper(), s)]) for f, s, t, c in zip(fields, sizes, types, counts, strict=False)
                              for name in ([f] if c == 1 else [f"{f}_{i}" for i in range(c)])])
        except KeyError as exc:
            raise ShapeError(f"PCD type {exc} is not supported") from exc
        if len(data) - pos < n * dtype.itemsize:
            raise ShapeError(f"PCD binary data is cut off: {n} points need {n * dtype.itemsize} bytes, the file has {len(data) - pos}")
        rec = np.frombuffer(data, dtype=dtype, count=n, offset=pos)
        cols = {name: rec[name].astype(np.float64) for name in dtype.names or ()}
    else:
        raise ShapeError(f"PCD DATA {mode or '(none)'} is not supported (ascii or binary; re-save binary_compressed files as binary)")
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
    normals = None
    if {"normal_x", "normal_y", "normal_z"} <= set(cols):
        normals = np.stack([cols["normal_x"], cols["normal_y"], cols["normal_z"]], axis=1)
    return Shape(xyz, None, normals, "pcd")


def _read_trimesh(data: bytes, suffix: str, max_faces: int, path: Path | None) -> Shape:
    trimesh = import_optional("trimesh", "3D mesh reading", "shape")
    if suffix == ".gltf" and path is None:
        raise ShapeError(".gltf files name their buffers by path; give a path, not bytes")
    try:
        if suffix == ".gltf":  # buffers live next to the file
            loaded = trimesh.load(str(path), process=False)
        else:
            loaded = trimesh.load(io.BytesIO(data), file_type=suffix[1:], process=False)
    except Exception as exc:  # trimesh raises ValueError, KeyError, IndexError, struct.error…
        raise ShapeError(f"not a readable {suffix} file ({type(exc).__name__}: {exc})") from exc
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump() if hasattr(g, "vertices")] if loaded.geometry else []
        meshes = [g for g in geoms if isinstance(g, trimesh.Trimesh)]
        if meshes:
            loaded = trimesh.util.concatenate(meshes) if len(meshes) > 1 else meshes[0]
        elif geoms:
            loaded = geoms[0]
        else:
            raise ShapeError(f"not a readable {suffix} file: no geometry found in it")
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    if len(faces) > max_faces:
        raise ShapeError(f"{len(faces):,} faces is over the limit of {max_faces:,} (raise `max_faces`, or decimate the mesh)")
    if len(faces) == 0:  # documented: a mesh without faces is the point cloud of its vertices
        return Shape(vertices, None, _ply_normals(loaded), suffix[1:])
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ShapeError(f"faces index vertices up to {int(faces.max())} but there are {len(vertices)} vertices")
    return Shape(vertices, faces, None, suffix[1:])


def _ply_normals(loaded: Any) -> np.ndarray | None:
    """Per-vertex normals a PLY point cloud stores as nx, ny, nz."""
    raw = getattr(loaded, "metadata", {}).get("_ply_raw", {})
    vertex = raw.get("vertex", {}).get("data") if isinstance(raw, dict) else None
    # ASCII PLY: a dict of columns; binary PLY: a structured array
    names = list(vertex) if isinstance(vertex, dict) else getattr(getattr(vertex, "dtype", None), "names", None) or ()
    if {"nx", "ny", "nz"} <= set(names):
        return np.stack([vertex["nx"], vertex["ny"], vertex["nz"]], axis=1).astype(np.float64).reshape(-1, 3)
    return None


# ---------------------------------------------------------------------------------- checking


def check_shape(shape: Shape) -> None:
    """Raise ShapeError for shapes nothing can be computed from."""
    v = shape.vertices
    if len(v) == 0:
        raise ShapeError("no points in the file")
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise ShapeError(f"{int(bad.sum())} of {len(v)} points have NaN or infinite coordinates (first at index {int(np.argmax(bad))}); clean the file")
    if len(v) == 1:
        raise ShapeError("only one point: a shape needs extent")
    if np.ptp(v, axis=0).max() == 0:
        raise ShapeError(f"all {len(v)} points are identical: a shape needs extent")
    if shape.faces is not None and total_area(shape) <= 0:
        raise ShapeError(f"all {len(shape.faces)} faces have zero area: nothing to sample")


def _areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Triangle areas, computed in chunks of faces (in float32: they only weight the sampling)."""
    v = vertices.astype(np.float32)
    out = np.empty(len(faces), dtype=np.float64)
    for start in range(0, len(faces), _CHUNK):
        f = faces[start : start + _CHUNK]
        a = v[f[:, 0]]
        out[start : start + len(f)] = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - a, v[f[:, 2]] - a), axis=1)
    return out


def total_area(shape: Shape) -> float:
    return float(shape.areas.sum())


def metadata(shape: Shape) -> dict[str, Any]:
    """Payload fields: kind, format, point and face counts, bounding box, whether normals exist."""
    lo, hi = shape.vertices.min(axis=0), shape.vertices.max(axis=0)
    return {
        "shape_kind": shape.kind,
        "format": shape.format,
        "points": len(shape.vertices),
        "faces": 0 if shape.faces is None else len(shape.faces),
        "bbox_min": [round(float(x), 6) for x in lo],
        "bbox_max": [round(float(x), 6) for x in hi],
        "has_normals": shape.normals is not None or shape.faces is not None,
    }


# ---------------------------------------------------------------------------------- sampling


def sample(shape: Shape, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """`count` points (and their normals when known): area-weighted on a mesh's surface, a
    random subset of a larger point cloud, all points of a smaller one. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    if shape.faces is None:
        v, n = shape.vertices, shape.normals
        if len(v) > count:
            idx = np.sort(rng.choice(len(v), count, replace=False))
            v, n = v[idx], (n[idx] if n is not None else None)
        return v, n
    areas = shape.areas
    cdf = np.cumsum(areas)
    picks = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right").clip(0, len(areas) - 1)
    f = shape.faces[picks]
    a, b, c = (shape.vertices[f[:, i]] for i in range(3))
    r1, r2 = rng.random((2, count, 1))
    flip = (r1 + r2) > 1
    r1, r2 = np.where(flip, 1 - r1, r1), np.where(flip, 1 - r2, r2)
    points = a + r1 * (b - a) + r2 * (c - a)
    normals = np.cross(b - a, c - a)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return points, normals


def normalize(points: np.ndarray) -> np.ndarray:
    """Centred on the centroid and scaled to a mean distance of 1 from it."""
    centred = points - points.mean(axis=0)
    scale = np.linalg.norm(centred, axis=1).mean()
    return centred / (scale if scale > 0 else 1.0)


def up_first(points: np.ndarray, up: str) -> np.ndarray:
    """Columns reordered so the vertical axis comes last: (a, b, up), a right-handed cycle."""
    i = AXES[up]
    return points[:, [(i + 1) % 3, (i + 2) % 3, i]]


def estimate_normals(points: np.ndarray, k: int = 16, chunk: int = 512) -> np.ndarray:
    """Unoriented normals by local PCA over each point's k nearest neighbours (numpy only)."""
    n = len(points)
    k = min(k, n)
    sq = (points**2).sum(axis=1)
    out = np.empty_like(points)
    for start in range(0, n, chunk):
        block = points[start : start + chunk]
        d = sq[start : start + chunk, None] + sq[None, :] - 2.0 * block @ points.T
        nb = np.argpartition(d, k - 1, axis=1)[:, :k]
        q = points[nb] - points[nb].mean(axis=1, keepdims=True)
        _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", q, q))
        out[start : start + chunk] = vecs[:, :, 0]
    return out


# ------------------------------------------------------------------------- delegated encoders


def _names_an_encoder(value: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value.get("use"), str):
        raise ValueError("name the image encoder with `use`, e.g. {use: open-clip, model: ViT-B-32, pretrained: ...}")
    return value


ImageEncoderSpec = Annotated[dict[str, Any], AfterValidator(_names_an_encoder)]
"""A Params field naming an image encoder as a recipe does: {use: NAME, ...its params}."""


class DelegatingEncoder(Encoder):
    """An encoder whose vectors come from an inner encoder (`inner`): it has the inner one's
    dimension and closes it."""

    inner: Encoder

    def dimension(self) -> int | None:
        return self.inner.dimension()

    def close(self) -> None:
        self.inner.close()


def build_encoder(spec: dict[str, Any], context: Any, where: str, modality: Any) -> Any:
    """An encoder named in a recipe field as `{use: NAME, ...params}`, found in the registry of
    installed plugins and built with `context`; PrismError when it is unknown, its params are
    wrong or it does not embed `modality` documents."""
    import prismrag
    from prismrag.contracts import Context, PrismError

    params = dict(spec)
    use = params.pop("use", None)
    if not isinstance(use, str):
        raise PrismError(f"{where}: name the encoder with `use`, e.g. {{use: open-clip, ...}}")
    try:
        cls = prismrag.Registry().get("encoder", use)
    except PrismError as exc:
        raise PrismError(f"{where}: {exc}") from exc
    if modality not in cls.document_modalities:
        raise PrismError(f"{where}: encoder {use!r} does not embed {modality.value}s")
    try:
        validated = cls.Params.model_validate(params)
    except ValueError as exc:
        raise PrismError(f"{where} ({use}): {exc}") from exc
    ctx = Context(context.base_dir, context.recipe, where, context.resolve_model, context.loader_for_path)
    return cls(validated, ctx)


def each_or_error(contents: Sequence[Content], fn: Callable[[Content], T], where: str, *, what: str = "",
                  most: int | None = None) -> list[T]:
    """`fn` of every content, or one ItemError naming those that fail (after `what`; `most` of them
    at most) with their positions, so the caller can drop them and encode the rest."""
    done, bad = [], []
    for i, content in enumerate(contents):
        try:
            done.append(fn(content))
        except ItemError as exc:
            bad.append((i, exc.message))
    if bad:
        named = bad if most is None else bad[:most]
        more = f"; and {len(bad) - len(named)} more" if len(named) < len(bad) else ""
        raise ItemError(where, what + "; ".join(m for _, m in named) + more, tuple(i for i, _ in bad))
    return done


def sampled_points(content: Content, where: str, *, max_faces: int, points: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Sampled points and normals (None when unknown) of a shape content, or an ItemError naming it."""
    if not isinstance(content, Media):
        raise ItemError(where, "expected a shape file, got text")
    try:
        shape = read_media(content, max_faces=max_faces)
    except ShapeError as exc:
        label = content.path if content.path is not None else f"<{len(content.data or b'')} bytes>"
        raise ItemError(where, f"{label}: {exc}") from exc
    return sample(shape, points, seed)
