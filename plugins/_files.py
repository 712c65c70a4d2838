"""Private helpers of the file loaders: globbing, walking a folder, and the base of loaders that
read a file or every matching file of a folder.

Files are read defensively: before any loader's `load_file` runs, the file must be a regular
file (never a FIFO, device or socket, where a read blocks or never ends), at most `max_file_mb`
large, reached through symlinks only inside the source folder (unless `symlinks: anywhere`), and a
plain-text file must not hold NUL bytes. Every refusal is an ItemError naming the file and the knob.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from prismrag.contracts import (
    Context,
    IngestError,
    Item,
    ItemError,
    Loader,
    Modality,
    Params,
    extensions_of,
)

SNIFF_BYTES = 8192
"""How much of a plain-text file is checked for NUL bytes (the mark of a binary file)."""


@lru_cache(maxsize=64)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a pathlib-style glob over POSIX relative paths (`**` spans folders)."""
    segments = [s for s in pattern.strip().strip("/").split("/") if s not in ("", ".")] or ["**"]
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        j, part = 0, []
        while j < len(seg):
            c = seg[j]
            if c == "*":
                part.append("[^/]*")
                while j + 1 < len(seg) and seg[j + 1] == "*":
                    j += 1
            elif c == "?":
                part.append("[^/]")
            elif c == "[" and (k := seg.find("]", j + 2)) != -1:
                body = seg[j + 1 : k]
                body = "^" + body[1:] if body.startswith("!") else body
                part.append("[" + body.replace("\\", "\\\\") + "]")
                j = k
            else:
                part.append(re.escape(c))
            j += 1
        out.append("".join(part) + ("" if last else "/"))
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise ValueError(f"glob {pattern!r} is not a valid pattern ({exc}); check its [...] ranges") from None


def excluder(patterns: list[str]) -> Callable[[str], bool]:
    """Whether a relative path is excluded: a pattern with a `/` matches the whole relative path,
    one without matches the name at any depth (as in .gitignore)."""
    full = [glob_regex(p) for p in patterns if "/" in p.strip().strip("/")]
    names = [glob_regex(p) for p in patterns if "/" not in p.strip().strip("/")]

    def excluded(rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(r.match(rel) for r in full) or any(r.match(name) for r in names)

    return excluded


def walk(
    root: Path, glob: str = "**/*", exclude: list[str] | None = None
) -> list[tuple[Path, str]]:
    """Files under `root` matching `glob`, as (absolute path, POSIX relative path), sorted.

    Hidden files and folders (a name starting with `.`, e.g. `.git`, `.prism`) are skipped, and
    so are excluded folders, without being entered.
    """
    match = glob_regex(glob).match
    excluded = excluder(exclude or [])
    found: list[tuple[tuple[str, ...], Path, str]] = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = [d for d in dirs if not d.startswith(".") and not excluded(prefix + d)]
        for name in files:
            rel = prefix + name
            if not name.startswith(".") and match(rel) and not excluded(rel):
                found.append((tuple(rel.split("/")), base / name, rel))
    found.sort(key=lambda f: f[0])
    return [(path, rel) for _, path, rel in found]


def display(context: Context, path: Path) -> str:
    """A path as the user sees it: relative to the recipe's folder when under it."""
    try:
        return path.relative_to(context.base_dir).as_posix()
    except ValueError:
        return str(path)


def relpath(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form (the item id), or its name when outside `root`."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


class SourceParams(Params):
    """Fields shared by the loaders that read a folder of files."""

    path: str = Field(description="A file or a folder, relative to the recipe's folder.")
    glob: str = Field("**/*", description="Which files of the folder to take (pathlib glob).")
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns of files or folders to leave out; one without `/` matches a name at any depth.",
    )
    id_prefix: str = Field(
        "",
        description="Put before every item id of this source (ids are paths relative to `path`), so that "
        "two sources holding files of the same relative path do not collide, e.g. `id_prefix: blog/`.",
    )
    max_file_mb: float = Field(200.0, gt=0, description="Skip files larger than this many megabytes.")
    symlinks: Literal["inside", "anywhere", "skip"] = Field(
        "inside",
        description="Follow symlinks only to files inside `path` (default), to files `anywhere`, or `skip` them.",
    )

    @field_validator("glob")
    @classmethod
    def _check_glob(cls, value: str) -> str:
        glob_regex(value)
        return value

    @field_validator("exclude")
    @classmethod
    def _check_exclude(cls, value: list[str]) -> list[str]:
        for pattern in value:
            glob_regex(pattern)
        return value


_KINDS = [(stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")]


def file_problem(path: Path, root: Path, params: Any, named: bool = False, plain_text: bool = False) -> str | None:
    """Why `path` must not be read (None if it may): not a regular file, a symlink leaving `root`,
    over `max_file_mb`, or a plain-text file holding NUL bytes. `named`: the recipe names the file
    itself, so a symlink there is the user's choice."""
    symlinks = getattr(params, "symlinks", "inside")
    limit = getattr(params, "max_file_mb", None)
    try:
        if path.is_symlink() and not named:
            if symlinks == "skip":
                return "is a symlink and the source has `symlinks: skip`; skipped"
            target = path.resolve(strict=True)
            if symlinks == "inside" and not target.is_relative_to(root.resolve()):
                return (
                    f"is a symlink to {target}, outside the source folder {root}; skipped. Set `symlinks: anywhere` "
                    f"on the source to follow it."
                )
        st = path.stat()
    except (OSError, RuntimeError) as exc:  # a dangling link, a loop, no permission
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return f"cannot be read ({reason}); skipped"
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        return f"is {kind}, not a regular file; skipped"
    if limit is not None and st.st_size > limit * 1e6:
        return (
            f"is {st.st_size / 1e6:,.1f} MB, over the source's `max_file_mb` ({limit:g}); skipped. Raise "
            f"`max_file_mb` on the source to index it."
        )
    encoding = str(getattr(params, "encoding", "utf-8")).lower()
    if plain_text and "16" not in encoding and "32" not in encoding:
        try:
            with path.open("rb") as fh:
                head = fh.read(SNIFF_BYTES)
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc}); skipped"
        if b"\0" in head:
            return "holds NUL bytes: a binary file, not text; skipped (exclude it, or give it its own loader)"
    return None


_PLAIN_TEXT = extensions_of(Modality.TEXT)


class FileLoader(Loader):
    """Loads a file or every matching file of a folder through `load_file`."""

    params: SourceParams

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every `load_file` a subclass defines runs behind `file_problem`'s checks."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("load_file")
        if own is None or getattr(own, "_guarded", False):
            return

        @functools.wraps(own)
        def guarded(self: FileLoader, path: Path, root: Path) -> Iterator[Item | ItemError]:
            named = path == self.context.path(self.params.path)
            plain = path.suffix.lower() in _PLAIN_TEXT
            problem = file_problem(path, root, self.params, named=named, plain_text=plain)
            if problem:
                yield ItemError(self.display(path), problem)
                return
            yield from own(self, path, root)

        guarded._guarded = True  # type: ignore[attr-defined]
        cls.load_file = guarded  # type: ignore[method-assign]

    def _where(self) -> str:
        return self.context.where or f"loader {self.name!r}"

    def display(self, path: Path) -> str:
        return display(self.context, path)

    def root(self) -> Path:
        """The source path, resolved; a missing one stops ingestion (it is not a per-item problem)."""
        root = self.context.path(self.params.path)
        if not root.exists():
            raise IngestError(
                f"{self._where()}: path {self.params.path!r} does not exist (resolved to {root}). "
                f"Check `path`; relative paths start at the recipe's folder ({self.context.base_dir})."
            )
        return root

    def files(self) -> tuple[Path, list[tuple[Path, str]]]:
        """The source root and its files to load, with their relative paths, sorted."""
        root = self.root()
        if root.is_file():
            return root.parent, [(root, root.name)]
        found = walk(root, self.params.glob, self.params.exclude)
        if self.extensions:
            found = [(p, rel) for p, rel in found if p.suffix.lower() in self.extensions]
        return root, found

    def load(self) -> Iterator[Item | ItemError]:
        root, files = self.files()
        for path, _ in files:
            yield from self.load_file(path, root)
