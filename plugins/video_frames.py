"""The keyframe route: `video-frames` embeds a video segment's keyframes with any registered image
encoder (`image: {use: open-clip, ...}`, a multimodal sentence-transformers model, ...).

```yaml
frames:
  encoder:
    use: video-frames
    image: {use: open-clip, model: ViT-B-32, pretrained: laion2b_s34b_b79k}
    vectors: frames          # one vector per keyframe, scored by MaxSim (a `multi` index); or `mean`
```

A segment of the `video` loader says which frames to take (its keyframe times and size); a whole
video (a query clip, an evaluation set's files) is sampled here, every `every_s` seconds, at most
`max_frames`. Frames are decoded scaled down and handed to the image encoder as PNG images.
With `vectors: frames` a segment is a multi-vector [keyframes, d] and MaxSim scores it by its best
frame for each query vector; with `mean` it is the normalised mean of its frames (a `dense` index).

Queries: text (the image encoder's text side, when it has one: CLIP), an image ("find the moment
that looks like this") or a short clip (its keyframes: MaxSim sums each query frame's best match).
Importing this module imports neither av nor torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from prismrag.contracts import (
    Content,
    Context,
    Encoder,
    ItemError,
    Media,
    Modality,
    MultiBatch,
    Params,
    PrismError,
    QueryError,
    Role,
    Vectors,
    hookimpl,
)

from ._shapes import DelegatingEncoder, ImageEncoderSpec, build_encoder
from ._video import VideoError, VideoSegment, frames_at, keyframe_times, png, probe, video_path


class VideoFramesParams(Params):
    image: ImageEncoderSpec = Field(
        description="The image encoder the keyframes go to, as in a recipe: {use: NAME, ...its params}.")
    vectors: Literal["frames", "mean"] = Field(
        "frames", description="`frames`: one vector per keyframe (multi-vector, MaxSim); `mean`: their normalised mean.")
    every_s: float = Field(2.0, gt=0, description="For a whole video (a query clip): one keyframe every this many seconds.")
    max_frames: int = Field(8, ge=1, le=64, description="For a whole video: at most this many keyframes.")
    size: int = Field(224, ge=16, le=2048, description="For a whole video: the keyframes' shorter side in pixels.")


class VideoFramesEncoder(DelegatingEncoder):
    """Keyframes of video segments through an image encoder: per-frame vectors (MaxSim) or their mean."""

    name = "video-frames"
    description = "Video keyframes through any image encoder; one vector per keyframe (MaxSim) or their mean."
    extra = "video"
    Params = VideoFramesParams
    params: VideoFramesParams
    output = "multi"
    parts_key = "keyframes"  # one vector per keyframe: search marks the frame that matched best
    document_modalities = frozenset({Modality.VIDEO})
    query_modalities = frozenset({Modality.VIDEO, Modality.IMAGE, Modality.TEXT})
    metric = "cosine"
    max_batch = 16

    def __init__(self, params: Params | None = None, context: Context | None = None):
        super().__init__(params, context)
        self.inner: Encoder = build_encoder(self.params.image, self.context, f"{self.where}.image", Modality.IMAGE)
        if self.inner.output != "dense":
            raise PrismError(f"{self.where}.image: {self.inner.name!r} gives {self.inner.output} vectors; keyframes "
                             f"need an image encoder with dense output")
        self.output = "dense" if self.params.vectors == "mean" else "multi"  # type: ignore[misc]
        self.metric = self.inner.metric  # type: ignore[misc]
        takes = {Modality.VIDEO, Modality.IMAGE} | (self.inner.query_modalities & {Modality.TEXT})
        self.query_modalities = frozenset(takes)  # type: ignore[misc]

    def fingerprint(self) -> str:
        blob = f"{super().fingerprint()}/{self.inner.fingerprint()}"
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()

    def keyframes(self, content: Content) -> list[tuple[float, np.ndarray]]:
        """(time, upright RGB) of the frames of a segment, or sampled from a whole video. A frame
        that does not decode is replaced by the one before it, so row i stays keyframe i."""
        path = video_path(content)
        if isinstance(content, VideoSegment) and content.frame_times:
            times, size = content.frame_times, content.frame_size
        else:
            info = probe(path)
            times = keyframe_times(0.0, info.duration, self.params.every_s, self.params.max_frames)
            size = self.params.size
        got = frames_at(path, times, size)
        first = next((g for g in got if g is not None), None)
        if first is None:
            raise VideoError(f"no frame of {times[0]:.1f}-{times[-1]:.1f} s decodes; the file is corrupt there")
        out, last = [], first
        for g in got:
            last = g if g is not None else last
            out.append(last)
        return out

    def frame_vectors(self, contents: Sequence[Content], role: Role) -> list[np.ndarray]:
        """[keyframes, d] image vectors per video."""
        frames: list[list[tuple[float, np.ndarray]]] = []
        bad: list[tuple[int, str]] = []
        for i, content in enumerate(contents):
            try:
                frames.append(self.keyframes(content))
            except VideoError as exc:
                bad.append((i, f"{_name(content)}: {exc}"))
        if bad:
            if role == "query":
                raise QueryError(f"{self.where}: the query clip: {bad[0][1]}")
            raise ItemError(self.where, "; ".join(m for _, m in bad[:5]), tuple(i for i, _ in bad))
        flat = [Media(data=png(rgb)) for one in frames for _, rgb in one]
        try:
            vecs = np.asarray(self.inner.encode_batch(flat, Modality.IMAGE, role), dtype=np.float32)
        except ItemError as exc:  # its positions count frames, not videos: let the caller isolate them
            raise ItemError(self.where, f"the image encoder failed on a keyframe: {exc.message}") from exc
        bounds = np.cumsum([0] + [len(one) for one in frames])
        return [vecs[bounds[i] : bounds[i + 1]] for i in range(len(frames))]

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> Vectors:
        if modality != Modality.VIDEO:  # text or an image query: the image encoder's own vector
            dense = np.asarray(self.inner.encode_batch(contents, modality, role), dtype=np.float32)
            return dense if self.output == "dense" else MultiBatch([row[None, :] for row in dense])
        per = self.frame_vectors(contents, role)
        if self.output == "multi":
            return MultiBatch([np.ascontiguousarray(m) for m in per])
        pooled = np.stack([m.mean(axis=0) for m in per]) if per else np.zeros((0, self.dimension() or 0), np.float32)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _name(content: Content) -> str:
    if isinstance(content, VideoSegment):
        return f"{content.path.name if content.path else '?'} @ {content.start_s:.1f}-{content.end_s:.1f} s"
    return str(getattr(content, "path", None) or "<video>")


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(VideoFramesEncoder)
