"""Items screen: the stored items of the loaded recipe, by filter and owner; count them, look at
one, delete one or every item that matches (each after a question). The same operations as
`prism items` and `engine.list_items / count / delete`."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from prismrag import PrismError
from prismrag.filters import parse_filter_text
from prismrag.support.terminal import printable

from .base import PrismScreen
from .render import metadata_table, snippet

SHOWN = 200
"""Items listed at most (the count says how many match)."""


class ItemsScreen(PrismScreen):
    """A filter and an owner, the matching items, the highlighted one's payload."""

    BINDINGS = [
        Binding("ctrl+f", "focus_filter", "Filter"),
        Binding("delete", "delete_one", "Delete item"),
        Binding("ctrl+d", "delete_matching", "Delete all matching"),
        Binding("ctrl+r", "focus_items", "Items list"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Any] = []
        self._matching = 0
        self._query: tuple[str, str] = ("", "")

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="items-controls"):
            yield Label("filter", classes="control-label")
            yield Input(placeholder="e.g. file prefix docs/  tags contains rag", id="items-filter")
            yield Label("owner", classes="control-label")
            yield Input(placeholder="any", id="items-owner", classes="number")
        yield Static(id="items-status")
        with Vertical(id="items-body"):
            table: DataTable = DataTable(id="items", cursor_type="row", zebra_stripes=True)
            table.add_column("id", key="id", width=28)
            table.add_column("owner", key="owner", width=10)
            table.add_column("type", key="modality", width=5)
            table.add_column("content", key="content")
            yield table
            yield Static(id="item-detail", classes="pane")
        yield Footer(compact=True, show_command_palette=False)

    def engine_changed(self) -> None:
        self.action_refresh()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.action_refresh()  # an ingest or a search screen's work may have changed the items

    # ------------------------------------------------------------------ listing

    @on(Input.Submitted)
    @on(Input.Changed)
    def _changed(self, event: Input.Event) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        if self.engine is None:
            self._status(Text("load a recipe first (F2)", style="bold red"))
            return
        self._query = (self.query_one("#items-filter", Input).value.strip(),
                       self.query_one("#items-owner", Input).value.strip())
        self._list(self.engine, *self._query)

    @work(thread=True, exclusive=True, group="items", exit_on_error=False)
    def _list(self, engine: Any, filter_text: str, owner: str) -> None:
        try:
            if not engine.collection.exists():
                raise PrismError("nothing is indexed yet: ingest the recipe first (F3)")
            flt = parse_filter_text(filter_text)
            count = engine.count(flt, owner=owner or None)
            items = engine.list_items(flt, owner=owner or None, limit=SHOWN)
        except (PrismError, ValueError) as exc:
            self.app.call_from_thread(self._show_error, (filter_text, owner), str(exc))
            return
        self.app.call_from_thread(self._show, (filter_text, owner), count, items)

    def _show(self, query: tuple[str, str], count: int, items: list[Any]) -> None:
        if query != self._query:
            return  # the user typed on
        self._items, self._matching = items, count
        table = self.query_one("#items", DataTable)
        table.clear()
        width = max(20, table.size.width - 28 - 10 - 5 - 10) if table.size.width else 40
        for item in items:
            table.add_row(Text(printable(item.id, newlines=False)), item.owner, str(item.payload.get("modality", "")),
                          snippet(item.payload, width), key=item.id)
        what = " and ".join(p for p in (f"filter {query[0]!r}" if query[0] else "",
                                        f"owner {query[1]!r}" if query[1] else "") if p) or "no filter"
        shown = f" (the first {len(items)} shown)" if count > len(items) else ""
        self._status(Text(f"{count} item{'s' if count != 1 else ''} match {what}{shown} · "
                          f"Del deletes one, Ctrl+D all matching"))
        if items:
            table.move_cursor(row=0)
            self._detail(items[0])
        else:
            self.query_one("#item-detail", Static).update(Text("no items", style="dim"))

    def _show_error(self, query: tuple[str, str], message: str) -> None:
        if query == self._query:
            self._items, self._matching = [], 0
            self.query_one("#items", DataTable).clear()
            self.query_one("#item-detail", Static).update("")
            self._status(Text(message, style="bold red"))

    def _status(self, text: Text) -> None:
        self.query_one("#items-status", Static).update(text)

    @on(DataTable.RowHighlighted, "#items")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self._items):
            self._detail(self._items[event.cursor_row])

    def _detail(self, item: Any) -> None:
        head = Text.assemble((printable(item.id, newlines=False), "bold"), f"   owner {item.owner}\n")
        body = item.payload.get("text")
        if isinstance(body, str):
            head.append(printable(body[:2000]) + "\n")
        head.append_text(metadata_table(item.payload))
        self.query_one("#item-detail", Static).update(head)

    # ------------------------------------------------------------------ deleting

    def action_focus_items(self) -> None:
        self.query_one("#items", DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#items-filter", Input).focus()

    def action_delete_one(self) -> None:
        table = self.query_one("#items", DataTable)
        if self.engine is None or not (0 <= table.cursor_row < len(self._items)):
            return
        item = self._items[table.cursor_row]
        note = (" It comes back on the next ingest unless its source file is gone or excluded."
                if item.owner == "sources" else "")
        self._ask(f"Delete item {printable(item.id, newlines=False)!r} (owner {item.owner})?{note}",
                  ids=[item.id])

    def action_delete_matching(self) -> None:
        filter_text, owner = self._query
        if self.engine is None:
            return
        if not (filter_text or owner):
            self.notify("give a filter or an owner first: deleting everything is a rebuild (F3, r)",
                        severity="warning")
            return
        self._ask(f"Delete all {self._matching} items matching {filter_text or ''} "
                  f"{'owner ' + owner if owner else ''}?".replace("  ", " "), ids=None)

    def _ask(self, question: str, ids: list[str] | None) -> None:
        from .dialogs import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(self.engine, ids, *self._query)

        self.app.push_screen(ConfirmScreen(question, yes="Delete"), answered)

    @work(thread=True, exclusive=True, group="items-delete", exit_on_error=False)
    def _delete(self, engine: Any, ids: list[str] | None, filter_text: str, owner: str) -> None:
        try:
            if ids is not None:
                gone = engine.delete(ids)
            else:
                gone = engine.delete(filter=parse_filter_text(filter_text), owner=owner or None)
        except (PrismError, ValueError) as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"deleted {len(gone)} item{'s' if len(gone) != 1 else ''}")
        self.app.call_from_thread(self.action_refresh)
