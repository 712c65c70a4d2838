"""The screens of `prism tui --server` other than search: the served recipes (F2), and a plain
word on each screen that needs the index itself (ingest, eval, items, plugins)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from prismrag import PrismError

from .base import PrismScreen

NOT_ON_SERVER = {
    "ingest": (
        "Ingest",
        "Ingesting writes the index, which the server holds (one process opens an index). Add items "
        "through the server: POST /v1/recipes/{recipe}/items (JSON) or /v1/recipes/{recipe}/items/upload (files); or stop "
        "the server and run `prism ingest RECIPE` (or `prism tui RECIPE`) on its machine.",
    ),
    "eval": (
        "Eval",
        "Evaluation builds its own index of the data set with a local engine: run `prism eval` or "
        "`prism tui RECIPE` without --server.",
    ),
    "items": (
        "Items",
        "The stored items are listed, counted and deleted through the server's endpoints: "
        "GET /v1/recipes/{recipe}/items?filter=…, GET /v1/recipes/{recipe}/count, "
        "POST /v1/recipes/{recipe}/items/delete (docs/server.md).",
    ),
    "plugins": (
        "Plugins",
        "The components in use are the server's: run `prism plugins` on its machine. This TUI loads "
        "no plugin and no model when it searches a server.",
    ),
}


class NotOnServerScreen(PrismScreen):
    """A screen that needs a local engine, shown against a server: what to do instead."""

    DEFAULT_CSS = """
    NotOnServerScreen #not-on-server { padding: 1 2; }
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(classes="pane"):
            yield Static(id="not-on-server")
        yield Footer(compact=True, show_command_palette=False)

    def status_changed(self) -> None:
        title, advice = NOT_ON_SERVER[self.mode]
        engine = self.papp.engine
        recipe = engine.name if engine is not None else "RECIPE"
        self.query_one("#not-on-server", Static).update(Text.assemble(
            (f"{title} is not available against a server", "bold"), f" ({self.papp.server_url}).\n\n",
            advice.replace("{recipe}", recipe), ("\n\nF4 searches the server; F2 lists its recipes.", "dim"),
        ))


class ServedRecipesScreen(PrismScreen):
    """The recipes the server serves and their state; Enter searches the highlighted one."""

    DEFAULT_CSS = """
    ServedRecipesScreen #served { height: 1fr; }
    ServedRecipesScreen #served-status { height: auto; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="served-status")
        table: DataTable = DataTable(id="served", cursor_type="row", zebra_stripes=True)
        for col in ("recipe", "state", "retrievers", "fusion", "queries of", "source"):
            table.add_column(col, key=col)
        yield table
        yield Footer(compact=True, show_command_palette=False)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.refresh_list()

    @work(thread=True, exclusive=True, group="served", exit_on_error=False)
    def refresh_list(self) -> None:
        """Ask the server for its recipes and their states."""
        connection = self.papp.connection
        if connection is None:
            self.app.call_from_thread(self._show, [], {}, self.papp.engine_status or "not connected")
            return
        try:
            served, states = connection.recipes(), connection.readiness()
        except PrismError as exc:
            self.app.call_from_thread(self._show, [], {}, f"error: {exc}")
            return
        self.app.call_from_thread(self._show, served, states, "")

    def _show(self, served: list[dict[str, Any]], states: dict[str, str], error: str) -> None:
        self.papp.served = served or self.papp.served
        table = self.query_one("#served", DataTable)
        table.clear()
        current = self.papp.engine.name if self.papp.engine is not None else None
        for r in served:
            state = states.get(r["name"], "?")
            style = "green" if state == "ready" else ("red" if state.startswith("failed") else "yellow")
            fusion = (r.get("fusion") or {}).get("name") or "—"
            name = Text(r["name"] + (" ●" if r["name"] == current else ""), style="bold")
            table.add_row(name, Text(state, style=style), ", ".join(r["retrievers"]), fusion,
                          ", ".join(r["query_modalities"]), r["source"], key=r["name"])
        status = self.query_one("#served-status", Static)
        if error:
            status.update(Text(error, style="bold red"))
        else:
            status.update(Text(f"recipes served by {self.papp.server_url} (● in use); Enter searches one",
                               style="italic"))

    @on(DataTable.RowSelected, "#served")
    def _use(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.papp.use_served(str(event.row_key.value))
