"""Private helpers of the file loaders: globbing, walking a folder, and the base of loaders that
read a file or every matching file of a folder."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from prismrag.contracts import Context, IngestError, Item, ItemError, Loader, Params


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
    return re.compile("".join(out) + r"\Z")


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


class FileLoader(Loader):
    """Loads a file or every matching file of a folder through `load_file`."""

    params: SourceParams

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
