"""`PrismApp`: the Textual application. A thin client of the prismrag core API."""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import get_current_worker

from prismrag import PrismError, Registry
from prismrag.recipe import BuiltRecipe, validate_recipe_file

from .base import PrismScreen
from .eval_screen import EvalScreen
from .help_screen import HelpScreen
from .ingest_screen import IngestScreen
from .items_screen import ItemsScreen
from .plugins_screen import PluginsScreen
from .recipe_screen import RecipeScreen
from .search_screen import SearchScreen
from .server_screen import NotOnServerScreen, ServedRecipesScreen

if TYPE_CHECKING:
    from prismrag.engine import Engine
    from prismrag.server.remote_engine import RemoteEngine, ServerConnection

SCREEN_TITLES = {
    "recipe": "Recipe",
    "ingest": "Ingest",
    "search": "Search",
    "eval": "Eval",
    "plugins": "Plugins",
    "items": "Items",
}


SERVER_MODES = {
    "recipe": ServedRecipesScreen,
    "ingest": partial(NotOnServerScreen, "ingest"),
    "search": SearchScreen,
    "eval": partial(NotOnServerScreen, "eval"),
    "plugins": partial(NotOnServerScreen, "plugins"),
    "items": partial(NotOnServerScreen, "items"),
}
"""`prism tui --server`: the search screen asks the server; screens that need the index itself
say so (one process opens an index, and the server holds it)."""


class PrismApp(App[int]):
    """Pick a recipe, ingest it, query it in any modality and see why each hit ranked."""

    CSS_PATH = Path(__file__).with_name("prism.tcss")
    TITLE = "prism"
    MODES = {
        "recipe": RecipeScreen,
        "ingest": IngestScreen,
        "search": SearchScreen,
        "eval": EvalScreen,
        "plugins": PluginsScreen,
        "items": ItemsScreen,
    }
    DEFAULT_MODE = "recipe"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    """Screens under 110 columns (the default 80x24 terminal) stack their panes (prism.tcss)."""

    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("f2", "switch_mode('recipe')", "Recipe"),
        Binding("f3", "switch_mode('ingest')", "Ingest"),
        Binding("f4", "switch_mode('search')", "Search"),
        Binding("f5", "switch_mode('eval')", "Eval"),
        Binding("f6", "switch_mode('plugins')", "Plugins"),
        Binding("f7", "switch_mode('items')", "Items"),
        Binding("ctrl+t", "toggle_theme", "Theme"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        recipe: str | Path | None = None,
        *,
        registry: Registry | None = None,
        recipes_dir: str | Path = "recipes",
        light: bool = False,
        warm_up: bool = True,
        server: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if recipe or server:  # straight to searching: the recipe screen (which validates every recipe it lists) waits
            self.DEFAULT_MODE = "search"
        if server:
            self.MODES = dict(SERVER_MODES)
        super().__init__()
        self.registry = registry or Registry()
        self.recipes_dir = Path(recipes_dir)
        self.server_url = server.rstrip("/") if server else None
        """A running `prism serve` that answers the searches (None: a local engine)."""
        self.api_key = api_key
        self.connection: ServerConnection | None = None
        self.served: list[dict[str, Any]] = []
        """The server's recipes, as `GET /v1/recipes` listed them when last asked."""
        self.served_recipe = str(recipe) if server and recipe else None
        self.initial_recipe = Path(recipe) if recipe and not server else None
        self.engine: Engine | RemoteEngine | None = None
        self.recipe_path: Path | None = None
        self.generation = 0
        """Bumped whenever another engine is loaded, so screens know to refresh."""
        self.engine_ready = False
        self.engine_status = ("no recipe loaded: pick one on the Recipe screen (F2)" if server is None
                              else f"connecting to {self.server_url}…")
        self.warm_up = warm_up
        self.theme = "textual-light" if light else "textual-dark"

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        if self.server_url is not None:
            self.sub_title = self.server_url
            self.connect()
            return
        if self.initial_recipe is None:
            return
        try:
            self.open_recipe(self.initial_recipe)
        except PrismError:
            self.switch_mode("recipe")  # the recipe screen shows the problems inline

    def on_unmount(self) -> None:
        if self.engine is not None:
            self.engine.close()
        if self.connection is not None:
            self.connection.close()

    # ------------------------------------------------------------------ a server

    @work(thread=True, exclusive=True, group="connect", exit_on_error=False)
    def connect(self, recipe: str | None = None) -> None:
        """Reach the server, take `recipe` (default: the one named at start, else the first
        served) and wait until the server has it loaded. Failures go to the status line."""
        from prismrag.server.remote_engine import ServerConnection

        worker = get_current_worker()
        url = self.server_url or ""
        try:
            if self.connection is None:
                self.connection = ServerConnection(url, self.api_key)
            self.call_from_thread(self._connect_status, f"connecting to {url}…")
            self.served = self.connection.recipes()
            engine = self.connection.engine(recipe or self.served_recipe)
            while (state := engine.status()) == "loading" and not worker.is_cancelled:
                self.call_from_thread(self._connect_status, f"prism serve at {url} is loading {engine.name}…")
                time.sleep(0.25)
            if state != "ready":
                raise PrismError(f"prism serve at {url} has no usable recipe {engine.name!r} ({state})")
            info = engine.info()
            status = "" if info.get("points") else (
                f"the served index of {engine.name} is empty: add items through the server "
                f"(POST /v1/recipes/{engine.name}/items, docs/server.md)")
        except PrismError as exc:
            status = f"error: {exc}"
            engine = None
        except Exception as exc:  # an unexpected answer must not take the UI down
            status = f"error: {type(exc).__name__}: {exc}"
            engine = None
        if not worker.is_cancelled:
            self.call_from_thread(self._connected, engine, status)

    def _connect_status(self, status: str) -> None:
        if self.engine is None or not self.engine_ready:
            self.engine_status = status
            self._notify_screen()

    def _connected(self, engine: RemoteEngine | None, status: str) -> None:
        if engine is None and self.engine is not None:  # switching recipes failed: keep the one in use
            self.notify(status.removeprefix("error: "), title="prism serve", severity="error")
            return
        if engine is not None:
            self.engine = engine
            self.served_recipe = engine.name
            self.generation += 1
            self.sub_title = f"{engine.name} @ {engine.url}"
        self.engine_ready = engine is not None
        self.engine_status = status
        self._notify_screen()

    # ------------------------------------------------------------------ recipes

    def find_recipes(self) -> list[Path]:
        """Recipe files under the recipes folder (and the one given on the command line)."""
        found: list[Path] = []
        if self.recipes_dir.is_dir():
            for pattern in ("*.yaml", "*.yml", "*.toml"):
                found.extend(self.recipes_dir.glob(pattern))
        if self.initial_recipe is not None and self.initial_recipe not in found:
            found.append(self.initial_recipe)
        return sorted(set(found))

    def validate_recipe(self, path: str | Path) -> BuiltRecipe:
        """Validate a recipe without loading models (raises RecipeError with field paths)."""
        return validate_recipe_file(path, self.registry)

    def open_recipe(self, path: str | Path) -> Engine:
        """Make `path` the current recipe; models load in a background worker."""
        from prismrag.engine import Engine

        built = self.validate_recipe(path)
        old = self.engine
        self.engine = Engine(built, self.registry)
        self.recipe_path = Path(path)
        self.generation += 1
        self.engine_ready = False
        self.engine_status = f"loading {built.spec.name}…"
        self.sub_title = built.spec.name
        if old is not None:
            self._close_engine(old)
        if self.warm_up:
            self._warm(self.engine, self.generation)
        else:
            self.engine_ready = True
            self.engine_status = ""
        self._notify_screen()
        return self.engine

    @work(thread=True, group="engine", exit_on_error=False)
    def _close_engine(self, engine: Engine) -> None:
        engine.close()  # waits for the engine's running searches and ingest to finish

    @work(thread=True, group="engine", exit_on_error=False)
    def _warm(self, engine: Engine, generation: int) -> None:
        """Open the store (no model loads: the index records its dimensions), let searching
        start with the retrievers that need no model, then load the models one by one."""
        status = ""
        try:
            if engine.ingested():
                self.call_from_thread(self._progressed, generation)
                engine.warm_up(done=lambda _name: self.call_from_thread(self._progressed, generation))
                engine.search_detailed("warm up", top_k=1)  # first-call costs of every stage
            else:
                status = "the index is empty: ingest it first (F3)"
        except PrismError as exc:
            status = f"error: {exc}"
        except Exception as exc:  # a broken plugin must not take the UI down
            status = f"error: {type(exc).__name__}: {exc}"
        self.call_from_thread(self._warmed, generation, status)

    def _progressed(self, generation: int) -> None:
        """The store is open (or one more model loaded): searching may go on with what is ready."""
        if generation == self.generation:
            self.engine_status = ""
            self._notify_screen()

    def _warmed(self, generation: int, status: str) -> None:
        if generation != self.generation:
            return
        self.engine_ready = True
        self.engine_status = status
        self._notify_screen()

    def _notify_screen(self) -> None:
        screen = self.screen
        if isinstance(screen, PrismScreen):
            screen.sync_engine()

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.current_mode, self.server_url))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in SCREEN_TITLES.items():
            yield SystemCommand(f"Go to {title}", f"Switch to the {title} screen", _callback(self.switch_mode, mode))
        yield SystemCommand("Toggle light/dark", "Switch between the light and dark theme", self.action_toggle_theme)
        if self.server_url is not None:
            yield SystemCommand("Reconnect to the server", f"Ask {self.server_url} again", self.connect)
            for summary in self.served:
                yield SystemCommand(f"Use served recipe {summary['name']}", f"Search {summary['name']} on the server",
                                    _callback(self.use_served, summary["name"]))
            return
        for path in self.find_recipes():
            yield SystemCommand(f"Open recipe {path}", "Validate and load this recipe", _callback(self._open_from_palette, path))

    def use_served(self, name: str) -> None:
        """Search the served recipe `name` from now on."""
        self.connect(name)
        self.switch_mode("search")

    def _open_from_palette(self, path: Path) -> None:
        try:
            self.open_recipe(path)
        except PrismError as exc:
            self.notify(str(exc), title="recipe problems", severity="error")
            return
        self.switch_mode("search")


def _callback(fn: Any, arg: Any) -> Any:
    return lambda: fn(arg)
