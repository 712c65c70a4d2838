"""What a model's weights are, as a short digest: the part of an encoder's fingerprint that
changes when the files behind a model name change (another folder under the same relative path,
a model retrained in place), so cached and stored vectors of the old weights are not reused."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path

SAMPLE = 64 * 1024
"""Bytes hashed at the start and at the end of each file (plus its size): cheap for GB-sized
weights, and a retrained model changes both ends of its weight files."""
MAX_FILES = 500
MODEL_PARAM_HINTS = ("model", "pretrained", "checkpoint", "weights")
"""Params whose string value may name local model files."""
PATH_PREFIXES = ("local-dir:",)

_memo: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_memo_lock = threading.Lock()


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):  # symlinked folders are not followed: no loops
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / n for n in sorted(names) if not n.startswith(".")]
        if len(found) >= MAX_FILES:
            break
    return found[:MAX_FILES]


def _sample(path: Path, size: int) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(SAMPLE)
        if size > 2 * SAMPLE:
            fh.seek(size - SAMPLE)
            return head + fh.read(SAMPLE)
        return head + fh.read()


def files_fingerprint(root: Path) -> str:
    """A digest of the regular files under `root` (relative names, sizes, the first and last
    64 KB of each); recomputed only when a file's size or modification time changes."""
    entries: list[tuple[str, int, int]] = []
    files: list[tuple[Path, int]] = []
    for path in _files(root):
        try:
            st = path.stat()
        except OSError:
            continue
        if not path.is_file():
            continue
        rel = path.name if path == root else str(path.relative_to(root))
        entries.append((rel, st.st_size, st.st_mtime_ns))
        files.append((path, st.st_size))
    key = (str(root.resolve()), tuple(entries))
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    h = hashlib.blake2b(digest_size=12)
    for (rel, size, _), (path, _) in zip(entries, files, strict=True):
        h.update(f"{rel}\0{size}\0".encode())
        try:
            h.update(_sample(path, size))
        except OSError as exc:
            h.update(f"unreadable: {exc.errno}".encode())
    digest = h.hexdigest()
    with _memo_lock:
        _memo[key] = digest
    return digest


def local_model_paths(values: Iterable[tuple[str, object]], base_dir: Path, resolve: object) -> list[Path]:
    """The existing local files or folders named by model-like params: a path (relative to the
    recipe's folder) or a name a plugin's `resolve_model` hook maps to a folder."""
    out: list[Path] = []
    for name, value in values:
        if not isinstance(value, str) or not value or not any(h in name.lower() for h in MODEL_PARAM_HINTS):
            continue
        for prefix in PATH_PREFIXES:
            value = value.removeprefix(prefix)
        local = Path(value).expanduser()
        local = local if local.is_absolute() else base_dir / local
        if local.exists():
            out.append(local)
            continue
        hooked = resolve(value) if callable(resolve) else None
        if hooked and Path(str(hooked)).exists():
            out.append(Path(str(hooked)))
    return out
