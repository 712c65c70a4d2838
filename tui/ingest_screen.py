"""Ingest screen: per-stage progress and items/s, errors per item, cancel between batches."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Label, ProgressBar, Static
from textual.worker import get_current_worker

from prismrag import Cancelled, PrismError
from prismrag.contracts import Store

from .base import PrismScreen

STAGE_TITLES = {"load": "loaded", "encode": "encoded + indexed", "query": "queries run"}


@dataclass
class StageState:
    """Progress of one stage, written by the ingest thread, read by the UI timer."""

    done: int = 0
    total: int | None = None
    started: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)

    @property
    def rate(self) -> float:
        return self.done / max(self.last - self.started, 1e-6)


class ProgressTracker:
    """A progress(stage, done, total) callback for the core that can also cancel the run.

    The core calls it after every encoder batch, so a cancel stops the run there. A stage that
    reports it is complete is not cancelled: its work is stored, and stopping then would only
    skip the cheap end of the run (deleting what left the sources) and call a finished ingest
    "cancelled"."""

    def __init__(self) -> None:
        self.stages: dict[str, StageState] = {}
        self.cancel = threading.Event()
        self._since = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        state = self.stages.get(stage)
        now = time.perf_counter()
        if state is None:  # a stage starts when the previous one last reported
            state = self.stages[stage] = StageState(started=self._since)
        state.done, state.total, state.last = done, total, now
        self._since = now
        if self.cancel.is_set() and (total is None or done < total):
            raise Cancelled("cancelled by the user")


def split_error(error: str) -> tuple[str, str]:
    """'source: message' -> (source, message)."""
    where, sep, message = error.partition(": ")
    return (where, message) if sep else ("", error)


class StageRow(Horizontal):
    """One stage: its name, a bar, counts and items/s."""

    def __init__(self, stage: str) -> None:
        super().__init__(classes="stage-row")
        self.stage = stage

    def compose(self) -> ComposeResult:
        yield Label(STAGE_TITLES.get(self.stage, self.stage), classes="stage-name")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True)
        yield Label("", classes="stage-count")

    def show(self, state: StageState) -> None:
        """Show `state` now, or as soon as the row's widgets are mounted."""
        self._state = state
        if self.is_mounted and self.query(ProgressBar):
            self._apply(state)

    def on_mount(self) -> None:
        if getattr(self, "_state", None) is not None:
            self._apply(self._state)

    def _apply(self, state: StageState) -> None:
        bar = self.query_one(ProgressBar)
        if state.total is not None:
            bar.update(total=max(state.total, 1), progress=state.done if state.total else 1)
        total = f"/{state.total}" if state.total is not None else ""
        if state.total == 0:
            self.query_one(".stage-count", Label).update("nothing to do")
        else:
            self.query_one(".stage-count", Label).update(f"{state.done}{total} items · {state.rate:,.1f} items/s")


class IngestScreen(PrismScreen):
    """Ingest the current recipe's sources in a thread worker; the UI stays live."""

    BINDINGS = [
        Binding("i", "ingest", "Ingest"),
        Binding("r", "rebuild", "Rebuild"),
        Binding("c,escape", "cancel", "Cancel"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tracker: ProgressTracker | None = None
        self._rows: dict[str, StageRow] = {}
        self._ingesting = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="ingest-body"):
            yield Static(id="ingest-recipe")
            with Horizontal(id="ingest-buttons"):
                yield Button("Ingest (i)", id="ingest-start", variant="primary")
                yield Button("Rebuild (r)", id="ingest-rebuild")
                yield Button("Cancel (c)", id="ingest-cancel", variant="error", disabled=True)
            yield Vertical(id="stages")
            yield Static(id="ingest-summary")
            yield Label("Errors", classes="pane-title", id="ingest-errors-title")
            table: DataTable = DataTable(id="ingest-errors", cursor_type="row", zebra_stripes=True)
            table.add_columns("item", "error")
            yield table
        yield Footer(compact=True, show_command_palette=False)

    def engine_changed(self) -> None:
        if not self._ingesting:
            self._reset()

    def status_changed(self) -> None:
        engine = self.engine
        label = self.query_one("#ingest-recipe", Static)
        if engine is None:
            label.update(Text("no recipe loaded: pick one on the Recipe screen (F2)", style="italic"))
            return
        sources = ", ".join(f"{s.name} {getattr(s.params, 'path', '')}".strip() for s in engine.recipe.sources)
        label.update(Text.assemble(("recipe ", "bold"), f"{engine.name}  ", ("sources ", "bold"),
                                   sources or "none (nothing to ingest)"))

    def _reset(self) -> None:
        self.query_one("#stages").remove_children()
        self._rows = {}
        self.query_one("#ingest-errors", DataTable).clear()
        self._show_errors(False)
        self.query_one("#ingest-summary", Static).update("")

    def _show_errors(self, shown: bool) -> None:
        """The errors table only when there are errors (an empty table reads as a failure)."""
        self.query_one("#ingest-errors").display = shown
        self.query_one("#ingest-errors-title").display = shown

    # ------------------------------------------------------------------ actions

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"ingest-start": self.action_ingest, "ingest-rebuild": self.action_rebuild,
         "ingest-cancel": self.action_cancel}[event.button.id or ""]()

    def action_ingest(self) -> None:
        self._start(rebuild=False)

    def action_rebuild(self) -> None:
        self._start(rebuild=True)

    def action_cancel(self) -> None:
        if self.tracker is not None and self._ingesting:
            self.tracker.cancel.set()
            self.query_one("#ingest-summary", Static).update(Text("cancelling after the current batch…", style="italic"))

    def _start(self, rebuild: bool) -> None:
        if self._ingesting:
            return
        if self.engine is None:
            self.notify("load a recipe first (F2)", severity="error")
            return
        self._reset()
        self.tracker = ProgressTracker()
        self._ingesting = True
        self._buttons()
        self.query_one("#ingest-summary", Static).update(Text("rebuilding…" if rebuild else "ingesting…", style="italic"))
        self._poll = self.set_interval(0.1, self._refresh_progress)
        self.run_ingest(self.engine, self.tracker, rebuild)

    def _buttons(self) -> None:
        self.query_one("#ingest-start", Button).disabled = self._ingesting
        self.query_one("#ingest-rebuild", Button).disabled = self._ingesting
        self.query_one("#ingest-cancel", Button).disabled = not self._ingesting

    @work(thread=True, exclusive=True, group="ingest", exit_on_error=False)
    def run_ingest(self, engine: object, tracker: ProgressTracker, rebuild: bool) -> None:
        """Run the core's ingest; Cancelled stops it between batches, committed ones stay."""
        get_current_worker()
        t0 = time.perf_counter()
        try:
            report = engine.ingest(tracker, rebuild=rebuild)  # type: ignore[attr-defined]
        except Cancelled:
            self.app.call_from_thread(self._finished, None, _cancelled(engine, rebuild), time.perf_counter() - t0)
            return
        except PrismError as exc:
            self.app.call_from_thread(self._finished, None, f"error: {exc}", time.perf_counter() - t0)
            return
        except Exception as exc:  # a plugin failing must not take the UI down
            self.app.call_from_thread(self._finished, None, f"error: {type(exc).__name__}: {exc}",
                                      time.perf_counter() - t0)
            return
        self.app.call_from_thread(self._finished, report, "", time.perf_counter() - t0)

    def _refresh_progress(self) -> None:
        if self.tracker is None:
            return
        stages = self.query_one("#stages")
        for stage, state in list(self.tracker.stages.items()):
            row = self._rows.get(stage)
            if row is None:
                row = self._rows[stage] = StageRow(stage)
                stages.mount(row)
            row.show(state)

    def _finished(self, report: object, problem: str, seconds: float) -> None:
        self._ingesting = False
        self._poll.stop()
        self._refresh_progress()
        self._buttons()
        summary = self.query_one("#ingest-summary", Static)
        if report is None:
            style = "bold red" if problem.startswith("error") else "bold yellow"
            summary.update(Text(problem, style=style))
            self.notify(problem.split(":")[0], title="ingest", severity="error" if style == "bold red" else "warning")
            return
        r: Any = report
        rate = f" · {r.items_per_second:,.1f} items/s encoded" if r.added + r.updated else ""
        late = self.tracker is not None and self.tracker.cancel.is_set()
        summary.update(Text.assemble(
            ("done ", "bold green"),
            ("(completed before the cancel took effect) ", "yellow") if late else "",
            f"{r.loaded} items: {r.added} added, {r.updated} updated, {r.unchanged} unchanged, "
            f"{r.deleted} deleted{rate} · {seconds:.1f} s" + ("" if r.errors else " · no errors"),
        ))
        self._show_errors(bool(r.errors))
        table = self.query_one("#ingest-errors", DataTable)
        for error in r.errors:
            where, message = split_error(error)
            table.add_row(Text(where), Text(message, style="red"))
        self.papp.engine_status = ""
        self.notify(f"{r.loaded} items, {len(r.errors)} errors", title="ingest done")


def _cancelled(engine: Any, rebuild: bool) -> str:
    """What a cancelled run left: a rebuild beside the index leaves the index as it was; an
    ingest (or a rebuild in place) keeps the batches it stored."""
    if rebuild and type(engine.store).staging is not Store.staging:
        return "cancelled: the rebuild was discarded; the index is as it was"
    if rebuild:
        return "cancelled: the index holds only the batches rebuilt so far; rebuild again to complete it"
    return "cancelled: batches written so far are kept; ingest again to resume"
