"""What every component shares: typed parameters, the context the engine hands it, a lifecycle."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .lazy import LoadOnce

if TYPE_CHECKING:
    from .loader import Loader

ProgressFn = Callable[[str, int, "int | None"], None]
"""progress(stage, done, total): called as work advances; total is None when unknown. Raise
`prismrag.Cancelled` from it to stop the work (what was committed stays)."""


def no_progress(stage: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


class Params(BaseModel):
    """Base of every component's parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class Context:
    """What the engine hands each component: where relative paths start, and shared services."""

    base_dir: Path = field(default_factory=Path.cwd)
    recipe: str = "prism"
    """The recipe's name: stores use it as the collection name and default folder name."""
    where: str = ""
    """The recipe field path of this component, for error messages."""
    resolve_model: Callable[[str], str | None] = lambda name: None
    loader_for_path: Callable[[Path], type[Loader] | None] = lambda path: None

    def path(self, value: str | Path) -> Path:
        """A path from a recipe, relative to the recipe's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


class Component(ABC):
    """Common base: a registered name, a kind, a Params model, self-description and `close()`.

    Subclasses declare what they are as class attributes (checked when a plugin registers them)
    and implement their kind's one abstract method; a subclass that leaves it out cannot be
    instantiated.
    """

    kind: ClassVar[str] = "component"
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    description: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    """The pip extra that brings this component's dependencies, if any."""

    def __init__(self, params: Params | None = None, context: Context | None = None):
        self.params = params if params is not None else self.Params()
        self.context = context or Context()

    @property
    def where(self) -> str:
        """Where this component sits in its recipe (`file: field.path`), or its name."""
        return self.context.where or self.name

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "kind": cls.kind, "description": cls.description, "extra": cls.extra}

    @classmethod
    def declaration_problems(cls) -> list[str]:
        """What is wrong with the class's declared capabilities (checked at registration)."""
        problems = []
        if not isinstance(cls.Params, type) or not issubclass(cls.Params, Params):
            problems.append("`Params` must be a subclass of prismrag.Params")
        if not isinstance(cls.description, str):
            problems.append("`description` must be a string")
        return problems

    @property
    def ready(self) -> bool:
        """False while using the component would first load something (a model it holds in a
        `LoadOnce` attribute and has not loaded yet). Front ends search with the ready
        retrievers first and add the others after `warm_up`. Override when loading is elsewhere."""
        return all(part.loaded for part in self._lazy_parts())

    def warm_up(self) -> None:
        """Load now what the component loads on first use (every `LoadOnce` attribute), so the
        first query does not wait for it. Override when loading is elsewhere."""
        for part in self._lazy_parts():
            part()

    def _lazy_parts(self) -> list[LoadOnce]:
        """Its own `LoadOnce` attributes and those of components it wraps (an inner encoder)."""
        parts: list[LoadOnce] = []
        for value in vars(self).values():
            if isinstance(value, LoadOnce):
                parts.append(value)
            elif isinstance(value, Component) and value is not self:
                parts.extend(value._lazy_parts())
        return parts

    def close(self) -> None:  # noqa: B027 - optional for subclasses, unlike the kind's one method
        """Release what the component holds (models, files, connections); the engine calls it
        when it closes. Idempotent; the default holds nothing."""
