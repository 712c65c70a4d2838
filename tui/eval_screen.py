"""Eval screen: run a recipe (or two) on a data folder, metrics, per-query drill-down, comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from prismrag import Cancelled, PrismError

from .base import PrismScreen
from .ingest_screen import ProgressTracker
from .render import grid, snippet


@dataclass
class EvalOutcome:
    """What one eval run produced: the data set, one or two reports, and their comparison."""

    dataset: Any
    a: Any
    b: Any = None
    comparison: Any = None


def corpus_size(folder: Path) -> int | None:
    """How many documents a data folder holds (lines of corpus.jsonl or labels.csv), None if unknown."""
    for name, header in (("corpus.jsonl", 0), ("labels.csv", 1)):
        path = folder / name
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    return max(0, sum(1 for line in fh if line.strip()) - header)
            except OSError:
                return None
    return None


class EvalScreen(PrismScreen):
    """Evaluate the current recipe on a data folder, optionally against a second recipe."""

    SHOW_TIMINGS = True
    ASK_ABOVE = 1000
    """Documents above which a run without "max docs" asks first: encoding them may take minutes."""
    BINDINGS = [
        Binding("ctrl+g", "run", "Run eval"),
        Binding("ctrl+s", "cancel", "Stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.outcome: EvalOutcome | None = None
        self._confirmed: tuple[str, str | None] | None = None
        self.tracker: ProgressTracker | None = None
        self._docs: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="eval-form"):
            yield Label("data", classes="control-label")
            yield Input(placeholder="data folder (BEIR layout or labelled media)", id="eval-data")
            yield Label("vs recipe", classes="control-label")
            yield Input(placeholder="optional: a second recipe", id="eval-other")
            yield Label("max docs", classes="control-label")
            yield Input(placeholder="all", id="eval-limit", type="integer", classes="number")
            yield Button("Run", id="eval-run", variant="primary")
        yield Static(id="eval-status")
        with Horizontal(id="eval-main"):
            with Vertical(id="eval-left"):
                metrics: DataTable = DataTable(id="eval-metrics", cursor_type="none", zebra_stripes=True)
                yield metrics
                yield Label("Queries (select one to drill down)", classes="pane-title")
                queries: DataTable = DataTable(id="eval-queries", cursor_type="row", zebra_stripes=True)
                yield queries
            with VerticalScroll(id="eval-detail", classes="pane"):
                yield Static(Text("run an eval to see per-query results", style="dim"), id="eval-detail-body")
        yield Footer(compact=True, show_command_palette=False)

    def status_changed(self) -> None:
        if self.outcome is None and self.tracker is None:
            name = self.engine.name if self.engine else "no recipe loaded (F2)"
            self._status(Text(f"recipe A: {name}. Give a data folder and press Enter or Ctrl+G.", style="italic"))

    def _status(self, text: RenderableType) -> None:
        self.query_one("#eval-status", Static).update(text)

    # ------------------------------------------------------------------ running

    @on(Button.Pressed, "#eval-run")
    def _run_pressed(self) -> None:
        self.action_run()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        app = self.papp
        if app.recipe_path is None:
            self.notify("load a recipe first (F2)", severity="error")
            return
        data = self.query_one("#eval-data", Input).value.strip()
        if not data:
            self.notify("give a data folder", severity="error")
            return
        other = self.query_one("#eval-other", Input).value.strip() or None
        limit_raw = self.query_one("#eval-limit", Input).value.strip()
        try:
            limit = int(limit_raw) if limit_raw else None
            if limit is not None and limit < 1:
                raise ValueError
        except ValueError:
            self._status(Text(f"max docs must be a positive whole number, not {limit_raw!r}", style="bold red"))
            return
        if self.tracker is not None:
            return
        if other is not None and not self._check_other(Path(other).expanduser()):
            return
        size = corpus_size(Path(data).expanduser())
        if limit is None and size is not None and size > self.ASK_ABOVE and self._confirmed != (data, other):
            from .dialogs import ConfirmScreen

            def answered(yes: bool | None) -> None:
                if yes:
                    self._confirmed = (data, other)
                    self.action_run()
                else:
                    self._status(Text("not started: set max docs to try a part of the corpus first", style="italic"))

            recipes = "both recipes" if other else "the recipe"
            self.app.push_screen(ConfirmScreen(
                f"{data} has {size:,} documents, and {recipes} will encode all of them (minutes with a "
                f"real model). Set max docs to try a part first.\n\nEncode all {size:,}?", yes="Encode all"),
                answered)
            return
        self.tracker = ProgressTracker()
        self.query_one("#eval-run", Button).disabled = True
        self._status(Text("loading the data set…", style="italic"))
        self._poll = self.set_interval(0.2, self._progress)
        self.run_eval(app.recipe_path, Path(data).expanduser(), Path(other).expanduser() if other else None,
                      limit, self.tracker)

    def _check_other(self, path: Path) -> bool:
        """The "vs recipe" is checked before anything runs: a typo should not cost recipe A's run."""
        problem = None
        if not path.is_file():
            problem = f"vs recipe: no such file {str(path)!r}"
        else:
            try:
                self.papp.validate_recipe(path)
            except PrismError as exc:
                problem = f"vs recipe {path}: {exc}"
        if problem:
            self._status(Text(problem, style="bold red"))
        return problem is None

    def action_cancel(self) -> None:
        if self.tracker is not None:
            self.tracker.cancel.set()

    def _progress(self) -> None:
        if self.tracker is None or not self.tracker.stages:
            return
        stage, state = list(self.tracker.stages.items())[-1]
        total = f"/{state.total}" if state.total else ""
        label = getattr(self, "_phase", "")
        self._status(Text(f"{label} {stage}: {state.done}{total} (Ctrl+S stops)", style="italic"))

    @work(thread=True, exclusive=True, group="eval", exit_on_error=False)
    def run_eval(self, recipe: Path, data: Path, other: Path | None, limit: int | None, tracker: ProgressTracker) -> None:
        """Load the data set, evaluate recipe A (and B), compare; all off the UI thread."""
        from prismrag.compare import compare_reports
        from prismrag.datasets import load_dataset
        from prismrag.evaluation import evaluate

        registry = self.papp.registry
        try:
            dataset = load_dataset(data, registry=registry, limit_docs=limit)
            self._phase = "A:"
            a = evaluate(recipe, dataset, registry=registry, progress=tracker)
            outcome = EvalOutcome(dataset, a)
            if other is not None:
                self._phase = "B:"
                tracker.stages.clear()
                outcome.b = evaluate(other, dataset, registry=registry, progress=tracker)
                outcome.comparison = compare_reports(a, outcome.b)
        except Cancelled:
            self.app.call_from_thread(self._done, None, "eval cancelled")
            return
        except (PrismError, ValueError, OSError) as exc:
            self.app.call_from_thread(self._done, None, f"error: {exc}")
            return
        self.app.call_from_thread(self._done, outcome, "")

    def _done(self, outcome: EvalOutcome | None, problem: str) -> None:
        self._poll.stop()
        self.tracker = None
        self.query_one("#eval-run", Button).disabled = False
        if outcome is None:
            self._status(Text(problem, style="bold red" if problem.startswith("error") else "bold yellow"))
            return
        self.show(outcome)

    # ------------------------------------------------------------------ showing

    def show(self, outcome: EvalOutcome) -> None:
        """Fill the metrics and queries tables from an outcome."""
        from prismrag.metrics import METRICS

        self.outcome = outcome
        self._docs = {item.id: item.text or str(getattr(item.content, "path", "")) for item in outcome.dataset.items}
        a, b, cmp = outcome.a, outcome.b, outcome.comparison
        ds = outcome.dataset
        line = (f"{ds.name}: {len(ds.items)} documents, {len(a.queries)} queries · A = {a.recipe}"
                + (f" · B = {b.recipe}" if b else ""))
        if a.ann_recall is not None:
            line += f" · ANN recall@10 A {a.ann_recall:.3f}" + (f", B {b.ann_recall:.3f}" if b and b.ann_recall is not None else "")
        if self.SHOW_TIMINGS and "total" in a.latency_ms:
            line += f" · p50 {a.latency_ms['total']['p50']:.1f} ms" + (
                f" vs {b.latency_ms['total']['p50']:.1f} ms" if b and "total" in b.latency_ms else "")
        self._status(Text(line))

        metrics = self.query_one("#eval-metrics", DataTable)
        metrics.clear(columns=True)
        if b is None:
            metrics.add_columns("metric", "A")
            for m in METRICS:
                metrics.add_row(m, f"{a.metrics[m]:.4f}")
        else:
            metrics.add_columns("metric", "A", "B", "B − A", "p", "B wins/losses")  # names: status line
            for m in METRICS:
                d = cmp.deltas[m]
                style = "green" if d.delta > 0 else ("red" if d.delta < 0 else "")
                sig = "*" if d.significant else ""
                metrics.add_row(m, f"{d.a:.4f}", f"{d.b:.4f}", Text(f"{d.delta:+.4f}{sig}", style=style),
                                f"{d.p_value:.3f}", f"{d.wins}/{d.losses}")

        queries = self.query_one("#eval-queries", DataTable)
        queries.clear(columns=True)
        b_by_id = {q.id: q for q in b.queries} if b else {}
        queries.add_columns("id", "query", "rel", "nDCG@10 A", *(["B", "B − A"] if b else []))
        for q in a.queries:
            row: list[Any] = [Text(q.id), snippet({"text": q.text}, 30), str(q.relevant), f"{q.metrics['nDCG@10']:.3f}"]
            if b:
                qb = b_by_id.get(q.id)
                nb = qb.metrics["nDCG@10"] if qb else 0.0
                delta = nb - q.metrics["nDCG@10"]
                style = "green" if delta > 0 else ("red" if delta < 0 else "dim")
                row += [f"{nb:.3f}", Text(f"{delta:+.3f}", style=style)]
            queries.add_row(*row, key=q.id)
        if a.queries:
            self.drill(a.queries[0].id)

    @on(DataTable.RowHighlighted, "#eval-queries")
    def _query_row(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self.drill(event.row_key.value)

    def drill(self, query_id: str) -> None:
        """One query: its text, relevant items, and what each recipe retrieved (✓ = relevant)."""
        if self.outcome is None:
            return
        out = self.outcome
        qa = next((q for q in out.a.queries if q.id == query_id), None)
        if qa is None:
            return
        grades = out.dataset.qrels.get(query_id, {})
        parts: list[RenderableType] = [Text.assemble(("query ", "bold"), f"{query_id}: ", (qa.text, "italic"))]
        metrics = "  ".join(f"{k} {v:.3f}" for k, v in qa.metrics.items())
        parts.append(Text(metrics, style="dim"))
        parts.append(Rule("relevant (grade)", style="dim", align="left"))
        relevant = [(d, g) for d, g in sorted(grades.items(), key=lambda kv: (-kv[1], kv[0])) if g > 0]
        parts.append(grid([[Text(d, style="bold"), str(g), snippet({"text": self._docs.get(d, "")}, 34)]
                           for d, g in relevant]))
        runs = [("A", out.a)] + ([("B", out.b)] if out.b else [])
        for label, report in runs:
            q = next((x for x in report.queries if x.id == query_id), None)
            if q is None:
                continue
            parts.append(Rule(f"retrieved by {label} {report.recipe} (✓ relevant)", style="dim", align="left"))
            got = []
            for rank, (doc, _score) in enumerate(q.ranking[:10], 1):
                mark = Text("✓", style="bold green") if grades.get(doc, 0) > 0 else Text("·", style="dim")
                got.append([str(rank), mark, Text(doc, style="bold"), snippet({"text": self._docs.get(doc, "")}, 30)])
            parts.append(grid(got, right=(0,)))
        self.query_one("#eval-detail-body", Static).update(Group(*parts))
