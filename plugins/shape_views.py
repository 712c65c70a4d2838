"""Multi-view rendering of 3D shapes into any image encoder (the MVCNN / PointCLIP path).

The renderer (`render_views` in `_shape_render`) draws a shape headless with numpy only (no
display, no GPU): the shape is sampled densely on its surface, its bounding box centred and
scaled to fit the frame from every side, and its points are splatted with a z-buffer into orthographic views from `views` azimuths evenly spaced around
the vertical axis, at an `elevation` above the horizon. A view is a silhouette, a depth image
(near is bright) or a Lambert-shaded image (light from the camera).

The `shape-views` encoder renders each shape and hands the views, as PNG images, to an image
encoder named in the recipe (`image_encoder: {use: open-clip, ...}`); the view vectors are
averaged into one vector (`shape-views`) or kept as a multi-vector (`shape-views-multi`, scored
with MaxSim). Text and image queries go to the image encoder as they are, so a CLIP-like model
gives text→shape and image→shape search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from prismrag.contracts import (
    Content,
    Context,
    Encoder,
    Media,
    Modality,
    MultiBatch,
    Params,
    Role,
    Vectors,
    hookimpl,
)

from ._shape_render import Mode, png_gray, render_views
from ._shapes import (
    DelegatingEncoder,
    ImageEncoderSpec,
    build_encoder,
    each_or_error,
    sampled_points,
)


class ShapeViewsParams(Params):
    image_encoder: ImageEncoderSpec = Field(
        description="The image encoder the views go to, as in a recipe: {use: NAME, ...its params}.")
    views: int = Field(6, ge=1, le=64, description="Views rendered around the vertical axis.")
    size: int = Field(224, ge=16, le=1024, description="Width and height of each view in pixels.")
    elevation: float = Field(20.0, ge=-90, le=90, description="Camera height above the horizon, in degrees.")
    mode: Mode = Field("depth", description="silhouette, depth (near is bright) or shaded (Lambert).")
    points: int = Field(30_000, ge=1000, le=1_000_000, description="Surface points drawn per shape.")
    splat: int = Field(2, ge=1, le=4, description="Each point covers (2 * splat - 1)² pixels, closing gaps between points.")
    up: Literal["x", "y", "z"] = Field("y", description="The vertical axis of the files.")
    seed: int = Field(0, description="Seed of the point sampling (the same seed gives the same views).")
    max_faces: int = Field(5_000_000, gt=0, description="Refuse meshes with more faces than this.")


class ShapeViewsEncoder(DelegatingEncoder):
    """Shapes rendered from several views and embedded by an image encoder, views averaged."""

    name = "shape-views"
    description = "3D shapes rendered headless from several views into an image encoder (CLIP: text→shape search)."
    extra = "shape"
    Params = ShapeViewsParams
    params: ShapeViewsParams
    output = "dense"
    document_modalities = frozenset({Modality.SHAPE})
    query_modalities = frozenset({Modality.SHAPE, Modality.TEXT, Modality.IMAGE})
    metric = "cosine"
    max_batch = 8

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self.inner: Encoder = build_encoder(self.params.image_encoder, self.context, f"{self.where}: image_encoder",
                                            Modality.IMAGE)

    def render(self, content: Content) -> list[Media]:
        """The views of one shape as PNG images."""
        p = self.params
        points, normals = sampled_points(content, self.where, max_faces=p.max_faces, points=p.points, seed=p.seed)
        images = render_views(points, normals, views=p.views, size=p.size, elevation=p.elevation,
                              mode=p.mode, splat=p.splat, up=p.up)
        return [Media(data=png_gray(image)) for image in images]

    def view_vectors(self, contents: Sequence[Content], role: Role) -> list[np.ndarray]:
        """[views, d] image vectors per shape."""
        rendered = each_or_error(contents, self.render, self.where)
        flat = [m for views in rendered for m in views]
        vecs = np.asarray(self.inner.encode_batch(flat, Modality.IMAGE, role), dtype=np.float32)
        v = self.params.views
        return [vecs[i * v : (i + 1) * v] for i in range(len(contents))]

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        if modality != Modality.SHAPE:
            return self.inner.encode_batch(contents, modality, role)
        pooled = [m.mean(axis=0) for m in self.view_vectors(contents, role)]
        out = np.stack(pooled) if pooled else np.zeros((0, self.dimension() or 0), np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class ShapeViewsMultiEncoder(ShapeViewsEncoder):
    """Shapes rendered from several views, one vector per view (a multi-vector, MaxSim)."""

    name = "shape-views-multi"
    description = "3D shapes rendered headless from several views into an image encoder, one vector per view."
    output = "multi"

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        if modality != Modality.SHAPE:
            dense = np.asarray(self.inner.encode_batch(contents, modality, role), dtype=np.float32)
            return MultiBatch([row[None, :] for row in dense])
        return MultiBatch(self.view_vectors(contents, role))


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(ShapeViewsEncoder)
    register(ShapeViewsMultiEncoder)
