"""The `point-cloud-model` encoder: a learned point-cloud network from a checkpoint file.

The contract a learned 3D encoder fills (PointNet, or the point towers of OpenShape, Uni3D and
ULIP, exported by their user): a module that takes a float32 tensor [batch, points, channels]
(channels 3 for x y z, or 6 for x y z nx ny nz) and returns float32 [batch, dimension]. It is
saved with `torch.export.save` as a `.pt2` file (a dynamic batch dimension), or as TorchScript
(`.pt`, `.ts`); no Python class of the model is needed to load it. Shapes are sampled to `points`
points, centred and scaled into the unit sphere, vertical axis `up` mapped to the model's
(`model_up`), and the output is L2-normalized.

When the model's vectors are aligned with a text space (OpenShape, Uni3D, ULIP align with a
CLIP text tower), `text_encoder` names that text encoder, as a recipe would
(`{use: open-clip, ...}`): text queries are embedded by it, so text finds shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from prismrag.contracts import (
    Content,
    Context,
    Encoder,
    ItemError,
    Modality,
    Params,
    PrismError,
    QueryError,
    Role,
    hookimpl,
)
from prismrag.support import LoadOnce

from ._shapes import AXES, build_encoder, each_or_error, sampled_points

Axis = Literal["x", "y", "z"]


class PointCloudModelParams(Params):
    checkpoint: str = Field(description="The exported model: a torch.export .pt2 file, or TorchScript (.pt, .ts).")
    points: int = Field(1024, ge=16, le=200_000, description="Points per shape fed to the model.")
    normals: bool = Field(False, description="Feed x y z nx ny nz (6 channels) instead of x y z.")
    up: Axis = Field("y", description="The vertical axis of the files.")
    model_up: Axis = Field("y", description="The vertical axis the model was trained with.")
    text_encoder: dict[str, Any] | None = Field(
        None, description="The text encoder the model is aligned with ({use: NAME, ...}), for text queries.")
    seed: int = Field(0, description="Seed of the point sampling (the same seed gives the same vector).")
    batch_size: int = Field(32, gt=0)
    device: str = Field("cpu", description="The torch device the model runs on (cpu, cuda, cuda:1…).")
    max_faces: int = Field(5_000_000, gt=0, description="Refuse meshes with more faces than this.")


def to_model_axes(points: np.ndarray, up: str, model_up: str) -> np.ndarray:
    """Columns permuted (a cyclic shift, so no mirroring) so the file's `up` becomes `model_up`."""
    shift = (AXES[up] - AXES[model_up]) % 3
    return points[:, [(i + shift) % 3 for i in range(3)]]


def unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centred on the bounding-box centre and scaled so the farthest point is at distance 1."""
    centred = points - (points.min(axis=0) + points.max(axis=0)) / 2
    return centred / max(float(np.linalg.norm(centred, axis=1).max()), 1e-12)


class PointCloudModelEncoder(Encoder):
    """Points in, a vector out, through an exported torch module; text through an aligned encoder."""

    name = "point-cloud-model"
    description = "A learned point-cloud encoder (PointNet, OpenShape, Uni3D, ULIP…) from an exported torch checkpoint."
    extra = "shape"
    Params = PointCloudModelParams
    params: PointCloudModelParams
    output = "dense"
    document_modalities = frozenset({Modality.SHAPE})
    query_modalities = frozenset({Modality.SHAPE, Modality.TEXT})
    metric = "cosine"
    max_batch = 256
    fingerprint_excludes = Encoder.fingerprint_excludes | {"max_faces"}

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self.text: Encoder | None = None
        if self.params.text_encoder is not None:
            self.text = build_encoder(self.params.text_encoder, self.context, f"{self.where}: text_encoder", Modality.TEXT)
        self._model = LoadOnce(self._load_model)
        self._dim: int | None = None

    def _load_model(self) -> Any:
        try:
            import torch
        except ImportError as exc:
            raise PrismError(f"{self.where}: point-cloud-model needs torch; install the torch build for your "
                             "machine first (pip install torch)") from exc
        path = self.context.path(self.params.checkpoint)
        if not path.is_file():
            raise PrismError(f"{self.where}: checkpoint {str(path)!r} does not exist")
        try:
            if path.suffix == ".pt2":
                model = torch.export.load(str(path)).module()
            else:
                model = torch.jit.load(str(path), map_location=self.params.device)
        except Exception as exc:  # torch raises RuntimeError, ValueError, zipfile errors…
            raise PrismError(
                f"{self.where}: {path.name} is not an exported model ({type(exc).__name__}: {exc}). Save the model "
                "with torch.export.save(torch.export.export(model, (points,), dynamic_shapes=...), 'model.pt2')"
            ) from exc
        if path.suffix == ".pt2":
            model = model.to(self.params.device)
        return model

    def dimension(self) -> int:
        if self._dim is None:
            probe = np.random.default_rng(0).normal(size=(self.params.points, 6))
            self._dim = int(self._forward([probe]).shape[1])
            if self.text is not None and self.text.dimension() not in (None, self._dim):
                raise PrismError(f"{self.where}: the model gives {self._dim}-d vectors but text_encoder gives "
                                 f"{self.text.dimension()}-d: they are not one space")
        return self._dim

    def close(self) -> None:
        if self.text is not None:
            self.text.close()

    def _forward(self, clouds: list[np.ndarray]) -> np.ndarray:
        import torch

        model = self._model()
        channels = 6 if self.params.normals else 3
        parts = []
        with torch.inference_mode():
            for start in range(0, len(clouds), self.params.batch_size):
                batch = np.stack([c[:, :channels] for c in clouds[start : start + self.params.batch_size]]).astype(np.float32)
                try:
                    out = model(torch.from_numpy(batch).to(self.params.device))
                except Exception as exc:  # shape guards of an exported program, a wrong channel count…
                    raise PrismError(
                        f"{self.where}: the model refused input of shape {list(batch.shape)} [batch, points, "
                        f"channels] ({type(exc).__name__}: {str(exc)[:200]}); set `points` (and `normals` for 6 "
                        "channels) to what the model was exported for") from exc
                if isinstance(out, (tuple, list)):
                    out = out[0]
                if out.ndim != 2 or out.shape[0] != len(batch):
                    raise PrismError(f"{self.where}: the model returned shape {tuple(out.shape)} for a batch of "
                                     f"{len(batch)}; it must return [batch, dimension]")
                parts.append(out.float().cpu().numpy())
        out = np.concatenate(parts)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def prepare(self, content: Content) -> np.ndarray:
        """[points, 6] model input of one shape: sampled, into the model's axes, unit sphere."""
        p = self.params
        points, normals = sampled_points(content, self.where, max_faces=p.max_faces, points=p.points, seed=p.seed)
        if len(points) < p.points:  # a small cloud: repeat points to the model's input size
            idx = np.resize(np.arange(len(points)), p.points)
            points, normals = points[idx], (normals[idx] if normals is not None else None)
        if p.normals and normals is None:
            raise ItemError(self.where, f"{content.path or '<bytes>'}: the model takes normals and the file has none")
        xyz = unit_sphere(to_model_axes(points, p.up, p.model_up))
        nrm = to_model_axes(normals, p.up, p.model_up) if normals is not None else np.zeros_like(xyz)
        return np.hstack([xyz, nrm])

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        if modality == Modality.TEXT:
            if self.text is None:
                raise QueryError(f"{self.where}: text queries need `text_encoder`, the text tower this model is aligned with")
            return np.asarray(self.text.encode_batch(contents, modality, role), dtype=np.float32)
        clouds = each_or_error(contents, self.prepare, self.where)
        return self._forward(clouds) if clouds else np.zeros((0, self.dimension()), np.float32)


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(PointCloudModelEncoder)
