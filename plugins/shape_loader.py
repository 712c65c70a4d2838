"""The `shapes` loader: point clouds and meshes as shape items.

Point clouds: .npy/.npz (xyz, optionally normals), .xyz/.pts (and .txt with `text_points: true`;
.txt is text by default), ASCII and binary .pcd, .ply without faces. Meshes: .obj, .off, .stl,
.ply, .glb/.gltf (read with trimesh, the `shape` extra). Each file is read and checked once here;
the item's content stays the file, so encoders sample it with their own point count; the payload
holds the counts, bounding box, whether normals exist and a small shaded thumbnail (PNG data URI). Bad files
(no points, NaN or infinite coordinates, one point, all points identical, faces of zero area,
cut-off binary data, more than `max_faces` faces) give an `ItemError` saying why, and the rest load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from prismrag.contracts import Item, ItemError, Loader, Media, Modality, extensions_of, hookimpl

from ._files import FileLoader, SourceParams, relpath
from ._shape_render import thumbnail
from ._shapes import ShapeError, metadata, read_shape


class ShapesParams(SourceParams):
    text_points: bool = Field(
        False, description="Also read .txt files as point clouds (rows of x y z [nx ny nz]); they are text by default.")
    max_faces: int = Field(5_000_000, gt=0, description="Skip meshes with more faces than this (memory and time stay bounded).")
    max_file_mb: float = Field(512.0, gt=0, description="Skip files larger than this many megabytes.")
    thumbnail: int = Field(48, ge=0, le=256, description="Side in pixels of a shaded thumbnail stored in the payload "
                           "as a PNG data URI (the TUI shows it); 0 stores none.")
    up: Literal["x", "y", "z"] = Field("y", description="The vertical axis, for the thumbnail.")


class ShapesLoader(FileLoader):
    """3D point clouds and meshes, with counts, bounding box and normals flag in the payload."""

    name = "shapes"
    description = "3D point clouds (.npy .npz .xyz .pts .pcd .ply) and meshes (.obj .off .stl .ply .glb .gltf)."
    modality, extra = Modality.SHAPE, "shape"
    extensions = extensions_of(modality)
    Params = ShapesParams
    params: ShapesParams

    def files(self) -> tuple[Path, list[tuple[Path, str]]]:
        root, found = super().files()
        if self.params.text_points and root.is_dir():
            from ._files import walk

            txt = [(p, r) for p, r in walk(root, self.params.glob, self.params.exclude) if p.suffix.lower() == ".txt"]
            found = sorted(found + txt, key=lambda f: f[1].split("/"))
        return root, found

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        rel = relpath(path, root)
        where = self.display(path)
        try:
            size_mb = path.stat().st_size / 1e6
        except OSError as exc:
            yield ItemError(where, f"cannot read: {exc.strerror or exc}; skipped")
            return
        if size_mb > self.params.max_file_mb:
            yield ItemError(where, f"{size_mb:,.0f} MB is over `max_file_mb` ({self.params.max_file_mb:,.0f}); skipped")
            return
        try:
            shape = read_shape(path, max_faces=self.params.max_faces, text_points=self.params.text_points)
        except ShapeError as exc:
            yield ItemError(where, f"not a usable shape: {exc}; skipped")
            return
        meta = {"file": rel, **metadata(shape)}
        if self.params.thumbnail:
            meta["thumbnail"] = thumbnail(shape, self.params.thumbnail, self.params.up)
        yield Item(self.params.id_prefix + rel, Modality.SHAPE, Media(path=path.resolve()), meta, source=rel)


@hookimpl
def register_loaders(register: Callable[[type[Loader]], None]) -> None:
    register(ShapesLoader)
