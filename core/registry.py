"""Plugin discovery and the component registry: one `Registry` per engine, no module globals.

A plugin installed through an entry point that misbehaves (raises or calls `sys.exit` at import,
implements an unknown hook, raises inside a hook, registers something that is not a component,
or takes a name a built-in has) is reported in `load_errors` by name and left out; the built-ins
and every other plugin still load. Plugins added in code (`add_plugin`) fail loudly instead."""

from __future__ import annotations

import importlib.metadata as md
import inspect
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .contracts import COMPONENT_BASES, Component
from .errors import DuplicateComponentError, PluginError, UnknownComponentError
from .types import Modality

ENTRY_POINT_GROUP = "prismrag"
ALLOW_ENV = "PRISMRAG_PLUGINS"
"""Comma-separated entry point names: when set, only these (plus the essential ones) load."""
BLOCK_ENV = "PRISMRAG_BLOCK_PLUGINS"
"""Comma-separated entry point names that must not load."""
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
"""What a component's registered name may look like (recipes write it after `use:`)."""
ESSENTIAL = frozenset({"indexes", "fusions", "loaders", "qdrant-edge"})
"""Built-ins without which no recipe runs; the allow and block lists do not apply to them."""


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component and where it came from."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str
    distribution: str | None
    version: str | None

    def describe(self) -> dict[str, Any]:
        data = self.cls.describe()
        data.update(plugin=self.plugin, distribution=self.distribution, version=self.version)
        return data


@dataclass(frozen=True)
class PluginLoadError:
    plugin: str
    distribution: str | None
    error: str


def _env_list(name: str) -> set[str]:
    return {p.strip() for p in os.environ.get(name, "").split(",") if p.strip()}


class Registry:
    """Discovers plugins through entry points (lazily) and answers lookups by kind and name.

    Tests and embedding applications add plugin objects with `add_plugin`.
    """

    def __init__(self, *, entry_points: bool = True, plugins: Iterable[tuple[str, object]] = ()):
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._use_entry_points = entry_points
        self._loaded = False
        self._failure: Exception | None = None
        self._components: dict[str, dict[str, ComponentInfo]] = {k: {} for k in hookspecs.REGISTRATION_HOOKS}
        self._dist: dict[str, tuple[str | None, str | None]] = {}
        self.load_errors: list[PluginLoadError] = []
        self._pending = list(plugins)
        self._lenient: set[str] = set()
        """Entry-point plugins: their faults are load errors, not failures of the registry."""
        self._order: list[str] = []

    # ------------------------------------------------------------------ loading

    def add_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (a module or any object with hookimpls)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if self._loaded:
            self._register_plugin(plugin, name, None, None)
            self._collect([name])
        else:
            self._pending.append((name, plugin))

    def _ensure_loaded(self) -> None:
        if self._failure is not None:
            # A half-registered plugin set must not answer lookups as if it were whole.
            raise self._failure
        if self._loaded:
            return
        self._loaded = True
        try:
            names: list[str] = []
            if self._use_entry_points:
                names += self._load_entry_points()
            for name, plugin in self._pending:
                self._register_plugin(plugin, name, None, None)
                names.append(name)
            self._pending.clear()
            self._pm.check_pending()
            self._collect(names)
        except Exception as exc:
            self._failure = exc
            raise

    def _load_entry_points(self) -> list[str]:
        allow, block = _env_list(ALLOW_ENV), _env_list(BLOCK_ENV)
        loaded: list[str] = []
        # Built-ins first: a third-party entry point or component cannot take a built-in's name.
        eps = sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: not _builtin(ep.dist.name if ep.dist else None))
        for ep in eps:
            essential = ep.name in ESSENTIAL and (ep.dist is None or ep.dist.name == "prismrag")
            if not essential and ((allow and ep.name not in allow) or ep.name in block):
                continue
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            if self._pm.has_plugin(ep.name):
                self.load_errors.append(
                    PluginLoadError(ep.name, dist, f"entry point name {ep.name!r} is already taken by another plugin")
                )
                continue
            try:
                plugin = ep.load()
            except SystemExit as exc:  # sys.exit at import must not end the command
                self.load_errors.append(PluginLoadError(ep.name, dist, f"called sys.exit({exc.code!r}) while being imported"))
                continue
            except Exception as exc:  # a broken plugin is reported, never fatal for the others
                self.load_errors.append(PluginLoadError(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            try:
                self._register_plugin(plugin, ep.name, dist, version)
            except PluginError as exc:
                self.load_errors.append(PluginLoadError(ep.name, dist, str(exc)))
                continue
            unknown = sorted(c.name for c in self._pm.get_hookcallers(plugin) or [] if not c.has_spec())
            if unknown:
                self._pm.unregister(plugin, name=ep.name)
                known = ", ".join(sorted(hookspecs.REGISTRATION_HOOKS.values()) + ["register_commands", "resolve_model"])
                self.load_errors.append(PluginLoadError(
                    ep.name, dist, f"implements unknown hook(s) {', '.join(unknown)} (known: {known}); not loaded"
                ))
                continue
            if not _builtin(dist):
                self._lenient.add(ep.name)
            loaded.append(ep.name)
        return loaded

    def _register_plugin(self, plugin: object, name: str, dist: str | None, version: str | None) -> None:
        try:
            self._pm.register(plugin, name=name)
        except Exception as exc:  # a taken name, or a hook implementation that does not fit its spec
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
        self._dist[name] = (dist, version)
        self._order.append(name)

    def _impls(self, hook_name: str) -> list[Any]:
        """The hook's implementations in registration order (built-ins first)."""
        rank = {name: i for i, name in enumerate(self._order)}
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        return sorted(impls, key=lambda impl: rank.get(impl.plugin_name, len(rank)))

    def _fault(self, plugin: str, error: str) -> None:
        self.load_errors.append(PluginLoadError(plugin, self._dist.get(plugin, (None, None))[0], error))

    def _collect(self, plugin_names: Iterable[str]) -> None:
        wanted = set(plugin_names)
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            for impl in self._impls(hook_name):
                if impl.plugin_name not in wanted:
                    continue
                if impl.plugin_name not in self._lenient:
                    impl.function(register=self._registrar(kind, impl.plugin_name))
                    continue
                try:
                    impl.function(register=self._registrar(kind, impl.plugin_name))
                except (Exception, SystemExit) as exc:  # reported by name; the other plugins go on
                    self._fault(impl.plugin_name, f"hook {hook_name} raised {type(exc).__name__}: {exc}")

    def _registrar(self, kind: str, plugin: str):
        def register(cls: type[Component]) -> None:
            problems = declaration_problems(kind, cls)
            if problems:
                error = PluginError(
                    f"plugin {plugin!r} registered {getattr(cls, '__qualname__', cls)!r} as a {kind}, "
                    f"but " + "; ".join(problems) + ". Fix the class in that plugin, or block the plugin "
                    f"with PRISMRAG_BLOCK_PLUGINS={plugin}."
                )
                if plugin not in self._lenient:
                    raise error
                self._fault(plugin, str(error))
                return
            known = self._components[kind]
            if cls.name in known and known[cls.name].cls is not cls:
                if plugin not in self._lenient:
                    raise DuplicateComponentError(kind, cls.name, known[cls.name].plugin, plugin)
                self._fault(plugin, (
                    f"registers a {kind} named {cls.name!r}, which plugin {known[cls.name].plugin!r} already "
                    f"registered; kept {known[cls.name].plugin!r}'s. Rename the component in plugin {plugin!r}."
                ))
                return
            dist, version = self._dist.get(plugin, (None, None))
            known[cls.name] = ComponentInfo(kind, cls.name, cls, plugin, dist, version)

        return register

    def add_commands(self, subparsers: Any) -> None:
        """Let every plugin that implements `register_commands` add its `prism` subcommands."""
        self._ensure_loaded()
        for impl in self._impls("register_commands"):
            if impl.plugin_name not in self._lenient:
                impl.function(subparsers=subparsers)
                continue
            try:
                impl.function(subparsers=subparsers)
            except (Exception, SystemExit) as exc:
                self._fault(impl.plugin_name, f"hook register_commands raised {type(exc).__name__}: {exc}")

    def claimed_extensions(self) -> dict[str, Modality]:
        """Extensions that installed loaders claim, with the modality each loader declares."""
        out: dict[str, Modality] = {}
        for info in self.components("loader").values():
            modality = getattr(info.cls, "modality", None)
            if modality is not None:
                out.update(dict.fromkeys(info.cls.extensions, modality))  # type: ignore[attr-defined]
        return out

    # ------------------------------------------------------------------ lookups

    def components(self, kind: str) -> dict[str, ComponentInfo]:
        self._ensure_loaded()
        return dict(self._components[kind])

    def all_components(self) -> list[ComponentInfo]:
        self._ensure_loaded()
        return [info for kind in self._components.values() for info in kind.values()]

    def get(self, kind: str, name: str, where: str = "") -> type[Component]:
        """The component class registered as `name`, or an error listing the known ones."""
        self._ensure_loaded()
        known = self._components[kind]
        if name not in known:
            hint = {n: i.plugin for n, i in known.items()}
            raise UnknownComponentError(kind, name, hint, where, [f"{e.plugin}: {e.error}" for e in self.load_errors])
        return known[name].cls

    def resolve_model(self, name: str) -> str | None:
        """Ask the plugins for a local path of model `name`."""
        self._ensure_loaded()
        for impl in reversed(self._impls("resolve_model")):  # the latest registered answers first
            try:
                found = impl.function(name=name)
            except (Exception, SystemExit) as exc:
                if impl.plugin_name not in self._lenient:
                    raise
                self._fault(impl.plugin_name, f"hook resolve_model raised {type(exc).__name__}: {exc}")
                continue
            if found is not None:
                return found
        return None

    def plugin_names(self) -> list[str]:
        self._ensure_loaded()
        return [name for name, _ in self._pm.list_name_plugin()]


def _builtin(dist: str | None) -> bool:
    return dist == "prismrag"


def declaration_problems(kind: str, cls: Any) -> list[str]:
    """What keeps `cls` from being registered as a `kind`: not a subclass of the kind's base, no
    valid `name`, an abstract method left out, or bad declared capabilities."""
    base = COMPONENT_BASES[kind]
    if not isinstance(cls, type) or not issubclass(cls, base):
        return [f"it is not a subclass of prismrag.contracts.{base.__name__}"]
    problems = []
    name = cls.__dict__.get("name", getattr(cls, "name", None))
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # `$` alone lets "x\n" through
        problems.append(f"its `name` {name!r} is not a lower-case name like 'my-encoder'")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        problems.append(f"it does not implement {missing}")
    try:
        problems += cls.declaration_problems()
    except Exception as exc:  # a broken declaration must be reported, not crash the registry
        problems.append(f"its declaration could not be checked ({type(exc).__name__}: {exc})")
    return problems
