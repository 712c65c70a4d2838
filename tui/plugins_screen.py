"""Plugins screen: every registered component, and the plugins that failed to load."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Label, Static

from .base import PrismScreen

COLUMNS = ("kind", "name", "modalities", "output", "dimension", "metric", "distribution", "version")
KIND_ORDER = ("encoder", "index", "fusion", "reranker", "loader", "store")


def modalities(info: dict[str, Any]) -> str:
    docs = info.get("document_modalities")
    if docs is None:
        return ""
    queries = info.get("query_modalities") or []
    if list(queries) == list(docs):
        return ", ".join(docs)
    return f"{', '.join(docs)} → q: {', '.join(queries)}"


def dimension(cls: type) -> str:
    """The dimension a component's params fix, or where it comes from."""
    if getattr(cls, "kind", "") != "encoder":
        return ""
    if getattr(cls, "output", "") == "sparse":
        return "sparse"
    params = getattr(cls, "Params", None)
    fields = getattr(params, "model_fields", {})
    if "dimension" in fields and fields["dimension"].default is not None:
        return f"{fields['dimension'].default} (param)"
    return "from model"


class PluginsScreen(PrismScreen):
    """A table of components; the highlighted one's description below; load errors in red."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="plugins-body"):
            table: DataTable = DataTable(id="plugins", cursor_type="row", zebra_stripes=True)
            for col in COLUMNS:
                table.add_column(col, key=col)
            yield table
            yield Static(id="plugin-description", classes="pane")
            yield Label("Plugins that failed to load", classes="pane-title", id="plugin-errors-title")
            errors: DataTable = DataTable(id="plugin-errors", cursor_type="row")
            errors.add_columns("plugin", "distribution", "error")
            yield errors
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        registry = self.papp.registry
        self._infos = sorted(
            registry.all_components(),
            key=lambda i: (KIND_ORDER.index(i.kind) if i.kind in KIND_ORDER else 99, i.name),
        )
        table = self.query_one("#plugins", DataTable)
        for info in self._infos:
            d = info.describe()
            table.add_row(
                d["kind"], Text(d["name"], style="bold"), modalities(d), d.get("output") or "",
                dimension(info.cls), d.get("metric") or "", d.get("distribution") or f"({info.plugin})",
                d.get("version") or "—",
            )
        errors = self.query_one("#plugin-errors", DataTable)
        for e in registry.load_errors:
            errors.add_row(Text(e.plugin, style="bold"), e.distribution or "—", Text(e.error, style="red"))
        has_errors = bool(registry.load_errors)
        errors.display = has_errors
        title = self.query_one("#plugin-errors-title", Label)
        title.update("Plugins that failed to load" if has_errors else "All plugins loaded")
        if self._infos:
            self._describe(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "plugins":
            self._describe(event.cursor_row)

    def _describe(self, row: int) -> None:
        if not 0 <= row < len(self._infos):
            return
        info = self._infos[row]
        d = info.describe()
        extra = f'   needs: pip install "prismrag[{d["extra"]}]"' if d.get("extra") else ""
        self.query_one("#plugin-description", Static).update(Text.assemble(
            (f"{d['kind']} {d['name']}", "bold"), f" (plugin {info.plugin})  ", d.get("description") or "",
            (extra, "dim"),
        ))
