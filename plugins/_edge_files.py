"""Checks on the files of a Qdrant Edge shard, run before the engine maps them.

The engine trusts its files: a truncated vector file opens fine, lists every point, and fails
every search ("vector 39 is not readable"), so an ingest would report "unchanged" over a broken
index. And it maps the 32 MB vector chunks of a segment that holds data but was never optimized
in full, writing into the holes of those sparse files, which on a full disk ends in SIGBUS.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import struct
from pathlib import Path
from typing import Any

MATRIX_MAGIC = b"data"


def mapped_gaps(shard_dir: Path) -> int:
    """Bytes that loading the shard may write into holes of sparse vector chunk files."""
    gaps = 0
    for chunk in shard_dir.glob("segments/*/vector_storage-*/vectors/chunk_*.mmap"):
        with contextlib.suppress(OSError):
            st = chunk.stat()
            used = getattr(st, "st_blocks", 0) * 512
            if used:
                gaps += max(0, st.st_size - used)
    return gaps


def damaged_files(shard_dir: Path) -> list[str]:
    """Vector files of the shard whose size does not fit what they must hold, as
    `path: what is wrong` (relative to `shard_dir`); empty when every file fits."""
    problems: list[str] = []
    for segment in sorted(shard_dir.glob("segments/*")):
        try:
            config = json.loads((segment / "segment.json").read_text(encoding="utf-8"))
            dims = {name: int(v["size"]) for name, v in config["config"]["vector_data"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unfinished segment the engine itself cleans up
        for name, dim in dims.items():
            storage = segment / f"vector_storage-{name}"
            problems += _chunked(storage / "vectors", shard_dir) + _matrix(storage / "matrix.dat", dim, shard_dir)
        for config_file in sorted(segment.rglob("config.json")):  # sparse vectors and payloads
            problems += _pages(config_file, shard_dir)
    return problems


def _pages(config_file: Path, shard_dir: Path) -> list[str]:
    """A paged store (sparse vectors, payloads) writes every page at its full size."""
    try:
        size = int(json.loads(config_file.read_text(encoding="utf-8"))["page_size_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    out = []
    for page in sorted(config_file.parent.glob("page_*.dat")):
        with contextlib.suppress(OSError):
            actual = page.stat().st_size
            if actual != size:
                out.append(f"{page.relative_to(shard_dir)} has {actual:,} bytes of {size:,}")
    return out


def _chunked(folder: Path, shard_dir: Path) -> list[str]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        (count,) = struct.unpack("<Q", (folder / "status.dat").read_bytes()[:8])
        size, per_chunk = int(config["chunk_size_bytes"]), int(config["chunk_size_vectors"])
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return []
    out = []
    for i in range(math.ceil(count / per_chunk) if per_chunk else 0):
        chunk = folder / f"chunk_{i}.mmap"
        actual = chunk.stat().st_size if chunk.exists() else None
        if actual is None or actual < size:
            what = "is missing" if actual is None else f"has {actual:,} bytes of {size:,}"
            out.append(f"{chunk.relative_to(shard_dir)} {what} ({count} vectors recorded)")
    return out


def _matrix(path: Path, dim: int, shard_dir: Path) -> list[str]:
    try:
        with path.open("rb") as fh:
            magic = fh.read(len(MATRIX_MAGIC))
        size = path.stat().st_size
    except OSError:
        return []
    body = size - len(MATRIX_MAGIC)
    if magic != MATRIX_MAGIC or body % (4 * dim):
        return [f"{path.relative_to(shard_dir)} has {size:,} bytes, no whole number of {dim}-d vectors"]
    return []


def stored_layout(shard_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The layout recorded in a shard's own config file, or None if it cannot be read."""
    try:
        cfg = json.loads((shard_dir / "edge_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    out: dict[str, dict[str, Any]] = {}
    for name, v in (cfg.get("vectors") or {}).items():
        out[name] = {
            "kind": "multi" if v.get("multivector_config") else "dense",
            "dimension": v.get("size"),
            "distance": str(v.get("distance", "")).lower(),
        }
    for name, v in (cfg.get("sparse_vectors") or {}).items():
        out[name] = {"kind": "sparse", "idf": str(v.get("modifier") or "").lower() == "idf"}
    return out


def swap_folders(live: Path, staged: Path, old: Path, staged_meta: Path, meta: Path) -> None:
    """The live shard folder aside to `old`, the staged one in, its record over ours, `old` gone.
    A crash between the first two renames leaves `old`, which the store restores on open."""
    shutil.rmtree(old, ignore_errors=True)
    if live.exists():
        live.rename(old)
    staged.rename(live)
    os.replace(staged_meta, meta)
    shutil.rmtree(old, ignore_errors=True)
