"""Search screen: search as you type, filters, top-k and fusion weights live, why each hit ranked."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Label, Static
from textual.worker import get_current_worker

from prismrag import Hit, PrismError
from prismrag.filters import parse_filter_text
from prismrag.server.remote_engine import RemoteEngine, search_settings
from prismrag.support.terminal import printable
from prismrag.types import Modality, modality_of_path

from .base import PrismScreen
from .file_picker import FilePicker
from .render import explain, highlighted, image_blocks, metadata_table, query_terms, snippet


@dataclass(frozen=True)
class SearchRequest:
    """Everything one search needs, captured on the UI thread."""

    seq: int
    query: str
    top_k: int | None
    filter_text: str
    weights: dict[str, float] | None


def query_modality(query: str, claimed: Mapping[str, Modality] | None = None) -> Modality | None:
    """The modality of a query: a file's (from its extension; `claimed`: what installed loaders
    claim), else text."""
    path = Path(query).expanduser()
    try:
        if len(query) < 4096 and path.is_file():
            return modality_of_path(path, claimed)
    except OSError:
        pass
    return Modality.TEXT


def claimed_extensions(engine: Any) -> Mapping[str, Modality]:
    """The extensions the engine's loaders claim (a served recipe: the server's loaders)."""
    return engine.claimed_extensions() if isinstance(engine, RemoteEngine) else engine.registry.claimed_extensions()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class SearchScreen(PrismScreen):
    """Query box, filters, controls; the results table and the selected hit's detail."""

    DEBOUNCE = 0.025
    """Seconds of quiet typing before a search starts (a newer keystroke restarts the wait)."""
    SHOW_TIMINGS = True
    ID_WIDTH = 16

    BINDINGS = [
        Binding("slash", "focus_query", "Query", key_display="/", show=False),
        Binding("ctrl+f", "focus_filter", "Filter"),
        Binding("ctrl+o", "pick_file", "File query"),
        Binding("ctrl+r", "focus_results", "Results", show=False),
        Binding("escape", "clear_query", "Clear", show=False),
    ]

    class ResultsShown(Message):
        """Posted after a search's results were put on screen (benchmarks listen for it)."""

        def __init__(self, request: SearchRequest, hits: int) -> None:
            super().__init__()
            self.request, self.hits = request, hits

    class DetailShown(Message):
        """Posted after the detail panel shows a hit."""

        def __init__(self, hit: Hit) -> None:
            super().__init__()
            self.hit = hit

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        self._timer: Timer | None = None
        self._hits: list[Hit] = []
        self._routed: list[str] = []
        self._request: SearchRequest | None = None
        self._pending_detail: Hit | None = None
        self._status_one_line = False
        self._waiting: list[str] = []
        """Retrievers the shown results lack because their models were still loading."""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="query-row"):
            yield Input(placeholder="type to search, or a path to an image / audio / 3D / video file",
                        id="query")
        with Horizontal(id="controls"):
            yield Label("filter", classes="control-label")
            yield Input(placeholder="lang=en year>=2020 tag=a|b", id="filter")
            yield Label("top k", classes="control-label")
            yield Input(placeholder="10", id="top-k", type="integer", classes="number")
            yield Horizontal(id="weights")
        yield Static(id="search-status")
        with Horizontal(id="results-row"):
            table: DataTable = DataTable(id="hits", cursor_type="row", zebra_stripes=True)
            table.add_column("#", key="rank", width=3)
            table.add_column("score", key="score", width=7)
            table.add_column("id", key="id", width=self.ID_WIDTH)
            table.add_column("type", key="modality", width=5)
            table.add_column("snippet", key="snippet")
            yield table
            with VerticalScroll(id="detail", classes="pane"):
                yield Static(Text("select a hit to see why it ranked", style="dim"), id="detail-body")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()

    # ------------------------------------------------------------------ engine changes

    def engine_changed(self) -> None:
        engine = self.engine
        self._clear_results()
        widgets: list[Any] = []
        if engine is not None:
            settings = search_settings(engine)
            self.query_one("#top-k", Input).placeholder = str(settings.top_k)
            if settings.weights is not None:
                widgets.append(Label(f"{settings.fusion} weights", classes="control-label wide-only"))
                for name in settings.retrievers:
                    widgets.append(Label(name, classes="control-label"))
                    widgets.append(Input(str(settings.weights.get(name, 1.0)), id=f"w-{name}", type="number",
                                         classes="number weight", name=name))
        # Removal is asynchronous: mounting before it completes collides with the old inputs' ids
        # when the new recipe names the same retrievers. The newest recipe's rebuild wins.
        self.run_worker(partial(self._replace_weights, widgets), group="weights", exclusive=True)

    async def _replace_weights(self, widgets: list[Any]) -> None:
        box = self.query_one("#weights", Horizontal)
        await box.remove_children()
        if widgets:
            await box.mount_all(widgets)
        if self.query_one("#query", Input).value.strip():
            self.schedule()  # what was typed before the engine came (a server reached late) is searched now

    def status_changed(self) -> None:
        if self._waiting and self.engine is not None and set(self._waiting) - set(self.engine.loading()):
            self.schedule(0.0)  # a model the shown results lacked has loaded: search again with it
        elif not self._hits and self._request is None:
            self._status(self._idle_status())

    def _idle_status(self) -> Text:
        app = self.papp
        if app.engine is None or app.engine_status:
            style = "bold red" if app.engine_status.startswith("error") else "italic"
            return Text(app.engine_status, style=style)
        modalities = ", ".join(sorted(m.value for m in app.engine.query_modalities()))
        loading = app.engine.loading() if not app.engine_ready else []
        if loading:
            ready = [n for n in search_settings(app.engine).retrievers if n not in loading]
            state = f"loading {', '.join(loading)}…" + (f" ({', '.join(ready)} ready)" if ready else "")
        else:
            state = "ready" if app.engine_ready else "opening the index…"
        where = f" at {app.engine.url}" if isinstance(app.engine, RemoteEngine) else ""
        return Text(f"{app.engine.name}{where}: {state}; queries of: {modalities}", style="italic")

    def _status(self, text: RenderableType, error: bool = False) -> None:
        # A status as tall as the last one needs no layout pass (which costs a frame); one whose
        # height may differ (an error, a line that wraps, after either) gets one.
        widget = self.query_one("#search-status", Static)
        width = max(1, widget.content_region.width or self.size.width - 2)
        one_line = isinstance(text, Text) and "\n" not in text.plain and text.cell_len <= width and not error
        widget.update(text, layout=not (one_line and self._status_one_line))
        self._status_one_line = one_line

    # ------------------------------------------------------------------ input

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.schedule()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.schedule(0.0)

    def schedule(self, delay: float | None = None) -> None:
        """(Re)start the debounce timer; the search runs when typing pauses."""
        if self._timer is not None:
            self._timer.stop()
        # Textual's timer divides by its interval when it fires late: never give it zero.
        self._timer = self.set_timer(max(0.001, self.DEBOUNCE if delay is None else delay), self.start_search)

    def start_search(self) -> None:
        self._timer = None
        query = self.query_one("#query", Input).value.strip()
        self._seq += 1
        if not query:
            self._request = None
            self._clear_results()
            self._status(self._idle_status())
            return
        if self.engine is None:
            if self.papp.server_url is not None:  # not connected (yet): try again, say so
                self.papp.connect()
                self._status(self._idle_status())
            else:
                self._status(Text("load a recipe first (F2)", style="bold red"), error=True)
            return
        try:
            request = SearchRequest(self._seq, query, self._top_k(), self.query_one("#filter", Input).value,
                                    self._weights())
        except ValueError as exc:
            self._status(Text(str(exc), style="bold red"), error=True)
            return
        self.run_search(request, self.engine)

    def _top_k(self) -> int | None:
        raw = self.query_one("#top-k", Input).value.strip()
        if not raw:
            return None
        k = int(raw)
        if k <= 0:
            raise ValueError("top k must be a positive number")
        return k

    def _weights(self) -> dict[str, float] | None:
        weights: dict[str, float] = {}
        for widget in self.query(".weight").results(Input):
            raw = widget.value.strip()
            if raw:
                try:
                    weights[str(widget.name)] = float(raw)
                except ValueError:
                    raise ValueError(f"weight of {widget.name} must be a number, got {raw!r}") from None
        return weights or None

    # ------------------------------------------------------------------ the worker

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def run_search(self, request: SearchRequest, engine: Any) -> None:
        """Search off the UI thread; a newer request makes this one stale and its result is dropped."""
        worker = get_current_worker()
        if worker.is_cancelled or request.seq != self._seq:
            return
        t0 = time.perf_counter()
        try:
            flt = parse_filter_text(request.filter_text)
            modality = query_modality(request.query, claimed_extensions(engine)) or Modality.TEXT
            routed = engine.retrievers_for(modality)
            waiting = [n for n in engine.loading() if n in routed]
            ready = [n for n in routed if n not in waiting]
            # Results at once from the retrievers whose models are in memory (BM25 needs none);
            # the others join when their models have loaded (status_changed searches again).
            only = ready if waiting and ready else None
            result = engine.search_detailed(request.query, top_k=request.top_k, filter=flt, weights=request.weights,
                                            retrievers=only)

        except (PrismError, ValueError) as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._show_error, request, str(exc))
            return
        except Exception as exc:  # a plugin failing must not take the UI down
            if not worker.is_cancelled:
                self.app.call_from_thread(self._show_error, request, f"{type(exc).__name__}: {exc}")
            return
        elapsed = time.perf_counter() - t0
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show_results, request, result, elapsed, waiting if only else [])

    def _show_error(self, request: SearchRequest, message: str) -> None:
        if request.seq != self._seq:
            return
        self._request = request
        self._waiting = []
        self._clear_results()
        self._status(Text(message, style="bold red"), error=True)

    def _show_results(self, request: SearchRequest, result: Any, elapsed: float, waiting: list[str] | None = None) -> None:
        if request.seq != self._seq:
            return  # stale: the user typed on
        self._request = request
        self._hits = list(result.hits)
        self._routed = list(result.retrievers)
        self._waiting = list(waiting or [])
        table = self.query_one("#hits", DataTable)
        table.clear()
        fixed = 3 + 7 + self.ID_WIDTH + 5 + 2 * 5 + 2  # columns, cell padding, scrollbar
        width = max(12, table.size.width - fixed) if table.size.width else 40
        for hit in self._hits:
            table.add_row(
                str(hit.rank),
                f"{hit.score:.4f}",
                Text(_clip(printable(hit.id), self.ID_WIDTH)),
                hit.modality.value,
                snippet(hit.payload, width),
                key=hit.id,
            )
        modality = query_modality(request.query, claimed_extensions(self.engine) if self.engine else None) or Modality.TEXT
        parts = [f"{len(self._hits)} hits", f"{modality.value} query", f"retrievers: {', '.join(self._routed)}"]
        if request.filter_text.strip():
            parts.append(f"filter: {request.filter_text.strip()}")
        if self.SHOW_TIMINGS:
            parts.append(f"{elapsed * 1000:.0f} ms")
        if self._waiting:
            parts.append(f"{', '.join(self._waiting)} loading, added when ready")
        self._status(Text(" · ".join(parts)))
        if self._hits:
            table.move_cursor(row=0)
            self.queue_detail(self._hits[0])
        else:
            notes = "".join(f"\n{printable(n)}" for n in getattr(result, "notes", ()))
            self._detail(Text("no results" + notes, style="dim"))
        self.post_message(self.ResultsShown(request, len(self._hits)))

    def _clear_results(self) -> None:
        self._hits = []
        self.query_one("#hits", DataTable).clear()
        self._detail(Text("select a hit to see why it ranked", style="dim"))

    # ------------------------------------------------------------------ detail

    @on(DataTable.RowSelected, "#hits")
    def _open_hit(self, event: DataTable.RowSelected) -> None:
        """Enter on a hit: all of it in a full-screen view (copy its id or text there)."""
        from .dialogs import HitScreen

        if 0 <= event.cursor_row < len(self._hits):
            hit = self._hits[event.cursor_row]
            self.app.push_screen(HitScreen(hit, self.detail_body(hit)))

    @on(DataTable.RowHighlighted, "#hits")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self._hits):
            self.queue_detail(self._hits[event.cursor_row])

    def queue_detail(self, hit: Hit) -> None:
        """Show `hit` in the detail panel after the next refresh, so the table is never held up."""
        pending = self._pending_detail is not None
        self._pending_detail = hit
        if not pending:
            self.call_after_refresh(self._render_pending_detail)

    def _render_pending_detail(self) -> None:
        hit, self._pending_detail = self._pending_detail, None
        if hit is not None and hit in self._hits:
            self.show_detail(hit)
            self.post_message(self.DetailShown(hit))

    def show_detail(self, hit: Hit) -> None:
        """Render the hit: content (text highlighted or the image), why it ranked, metadata."""
        self._detail(self.detail_body(hit))

    def detail_body(self, hit: Hit) -> RenderableType:
        """What the detail panel (and the full view) shows of `hit`."""
        engine = self.engine
        request = self._request
        top_ks = {n: r.top_k for n, r in search_settings(engine).retrievers.items()} if engine else {}
        parts: list[RenderableType] = [
            Text.assemble((f"#{hit.rank}  {printable(hit.id)}", "bold"), f"   score {hit.score:.4f} · {hit.modality.value}"),
            Rule("why it ranked", style="dim", align="left"),
            explain(hit, self._routed, top_ks),
            Rule("content", style="dim", align="left"),
        ]
        parts.append(self._content(hit, request.query if request else ""))
        parts.append(Rule("metadata", style="dim", align="left"))
        parts.append(metadata_table(hit.payload))
        return Group(*parts)

    def _content(self, hit: Hit, query: str) -> RenderableType:
        text = hit.payload.get("text")
        if isinstance(text, str):
            terms = query_terms(query) if query_modality(query) == Modality.TEXT else []
            return highlighted(text, terms)
        path = hit.payload.get("path")
        if path and isinstance(self.engine, RemoteEngine) and not Path(str(path)).is_file():
            return Text(f"{printable(path)} (a file on the server's machine)", style="dim")
        if path and hit.modality == Modality.IMAGE:
            try:
                return Group(image_blocks(path, width=44, max_rows=14), Text(str(Path(path).name), style="dim"))
            except Exception as exc:  # unreadable or moved file
                return Text(f"cannot show {path}: {exc}", style="red")
        return Text(str(path or "(no content stored)"), style="dim")

    def _detail(self, renderable: RenderableType) -> None:
        self.query_one("#detail-body", Static).update(renderable)

    # ------------------------------------------------------------------ actions

    def action_focus_query(self) -> None:
        self.query_one("#query", Input).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_focus_results(self) -> None:
        self.query_one("#hits", DataTable).focus()

    def action_clear_query(self) -> None:
        self.query_one("#query", Input).value = ""

    def action_pick_file(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                box = self.query_one("#query", Input)
                box.value = str(path)
                box.focus()

        self.app.push_screen(FilePicker(Path.cwd()), chosen)
