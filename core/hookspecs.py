"""The hooks a prismrag plugin may implement. Stable unless a hook's docstring says otherwise.

A plugin is a module (or object) with functions marked ``@prismrag.hookimpl``, declared as an
entry point in the ``prismrag`` group of its package::

    [project.entry-points.prismrag]
    my-encoder = "my_package.plugin"

Registration hooks receive a ``register`` callback and call it once per component class. The
classes are registered, not instances, so registering never imports heavy dependencies: import
torch and friends inside the component's methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # annotations only: the contracts import this module for `hookimpl`
    from .contracts import Encoder, Fusion, Index, Loader, Reranker, Store

PROJECT = "prismrag"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    """Register encoder classes (subclasses of `prismrag.contracts.Encoder`).

    :param register: call ``register(MyEncoder)``; the class's ``name`` is its recipe name.
    """


@hookspec
def register_indexes(register: Callable[[type[Index]], None]) -> None:
    """Register index kinds (subclasses of `prismrag.Index`): how a retriever's vectors are kept."""


@hookspec
def register_stores(register: Callable[[type[Store]], None]) -> None:
    """Register stores (subclasses of `prismrag.Store`): where a recipe's collection lives."""


@hookspec
def register_fusions(register: Callable[[type[Fusion]], None]) -> None:
    """Register fusion methods (subclasses of `prismrag.Fusion`)."""


@hookspec
def register_rerankers(register: Callable[[type[Reranker]], None]) -> None:
    """Register rerankers (subclasses of `prismrag.Reranker`)."""


@hookspec
def register_loaders(register: Callable[[type[Loader]], None]) -> None:
    """Register loaders (subclasses of `prismrag.Loader`): sources of items."""


@hookspec(firstresult=True)
def resolve_model(name: str) -> str | None:
    """Map a model id (e.g. ``sentence-transformers/all-MiniLM-L6-v2``) to a local path.

    Return None when this plugin does not know the model; the first non-None answer wins. This is
    how a package that ships weights serves offline users without the recipe naming a path.
    """


@hookspec
def register_commands(subparsers: Any) -> None:
    """Add subcommands to the `prism` command line (an `argparse` subparsers object).

    Each command sets ``func=handler`` with ``parser.set_defaults``; the handler takes the parsed
    arguments and returns the exit code. Keep the module that implements this hook light: it is
    imported for `prism --help`, so import heavy libraries inside the handler. Provisional: the
    argparse object may become a small wrapper of our own.
    """


REGISTRATION_HOOKS: dict[str, str] = {
    "encoder": "register_encoders",
    "index": "register_indexes",
    "store": "register_stores",
    "fusion": "register_fusions",
    "reranker": "register_rerankers",
    "loader": "register_loaders",
}
"""Component kind -> the hook that registers it."""
