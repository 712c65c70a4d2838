"""The loader contract: a source in, items out."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from ..errors import ItemError
from ..types import Item, Modality
from .base import Component


class Loader(Component):
    """Turns a source (a folder, a file, a record stream) into items.

    `load` yields items, and `ItemError`s for inputs it had to skip, so one bad file never stops
    the rest. Loaders that handle single files list `extensions` (lower case, with the dot) and
    implement `load_file`, so the `files` walker can hand them files; the extensions a loader
    claims also tell the engine the modality of a query file (`modality`).
    """

    kind = "loader"
    extensions: ClassVar[frozenset[str]] = frozenset()
    modality: ClassVar[Modality | None] = None

    @abstractmethod
    def load(self) -> Iterator[Item | ItemError]:
        """Yield items (and errors for skipped inputs)."""

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        """Items of one file; `root` makes ids relative and stable."""
        raise NotImplementedError(f"{self.name} does not load single files")

    @classmethod
    def declaration_problems(cls) -> list[str]:
        problems = super().declaration_problems()
        bad = [e for e in cls.extensions if not (isinstance(e, str) and e.startswith(".") and e == e.lower())]
        if not isinstance(cls.extensions, frozenset) or bad:
            problems.append(f"`extensions` must be a frozenset of lower-case suffixes with the dot, like '.txt' (bad: {bad})")
        if cls.modality is not None and not isinstance(cls.modality, Modality):
            problems.append(f"`modality` must be a prismrag.Modality or None, got {cls.modality!r}")
        if cls.extensions and cls.load_file is Loader.load_file:
            problems.append("it lists `extensions` but does not implement `load_file`")
        return problems
