"""Recipe screen: pick a recipe file, see it validated and summarised, load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from prismrag import PrismError, RecipeError
from prismrag.recipe import BuiltRecipe

from .base import PrismScreen


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _params(component: Any, skip: tuple[str, ...] = (), sep: str = "  ") -> str:
    """A component's parameters that differ from their defaults, as `key=value` pairs."""
    params = getattr(component, "params", None)
    if params is None:
        return ""
    data = params.model_dump(exclude_defaults=True, by_alias=True)
    return sep.join(f"{k}={_value(v)}" for k, v in data.items() if k not in skip)


def _component(component: Any) -> Text:
    """Name, then each non-default parameter on a line of its own (a table cell)."""
    return Text("\n".join([component.name, *filter(None, [_params(component, sep="\n")])]))


def display_name(path: Path) -> str:
    """A recipe path as short as it can be: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(built: BuiltRecipe) -> RenderableType:
    """What a recipe does: store, sources, retrievers, fusion and rerankers."""
    spec = built.spec
    head = Text.assemble((spec.name, "bold"), "  ", (spec.description, "italic"))
    lines: list[RenderableType] = [head, Text(f"file: {display_name(Path(built.source))}", style="dim"), Text("")]
    lines.append(Text.assemble(("store ", "bold"), f"{built.store.name}  {_params(built.store)}"))
    for loader in built.sources:
        lines.append(Text.assemble(("source ", "bold"), f"{loader.name}  {_params(loader)}"))
    if not built.sources:
        lines.append(Text("no sources: ingest items from Python or evaluate on a data set", style="dim"))
    lines.append(Text(""))
    table = Table(title="retrievers", title_justify="left", title_style="bold", expand=True,
                  box=box.SIMPLE_HEAD, pad_edge=False)
    # encoder and index share what the short columns leave, so model ids wrap as little as may be
    for col, ratio in (("name", None), ("encoder", 3), ("index", 2), ("top k", None), ("docs → queries", None)):
        table.add_column(col, overflow="fold", justify="right" if col == "top k" else "left", ratio=ratio)
    for name, r in built.retrievers.items():
        enc = r.encoder
        table.add_row(
            name,
            _component(enc),
            _component(r.index),
            str(r.top_k),
            ", ".join(sorted(m.value for m in enc.document_modalities))
            + " → "
            + ", ".join(sorted(m.value for m in enc.query_modalities)),
        )
    lines.append(table)
    lines.append(Text(""))
    if built.fusion is not None:
        lines.append(Text.assemble(("fusion ", "bold"), f"{built.fusion.name}  {_params(built.fusion)}"))
    else:
        lines.append(Text.assemble(("fusion ", "bold"), ("none (one retriever)", "dim")))
    for i, rr in enumerate(built.rerankers, 1):
        lines.append(Text.assemble((f"rerank {i} ", "bold"), f"{rr.name}  {_params(rr)}"))
    if not built.rerankers:
        lines.append(Text.assemble(("rerank ", "bold"), ("none", "dim")))
    lines.append(Text.assemble(("search ", "bold"), f"top_k={spec.search.top_k}"))
    return Group(*lines)


class RecipeScreen(PrismScreen):
    """Recipes under recipes/ (or a typed path), validated as you move, loaded with Enter."""

    BINDINGS = [
        Binding("enter", "load", "Load recipe", show=True),
        Binding("ctrl+r", "rescan", "Rescan"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="recipe-list-pane", classes="pane"):
                yield Label("Recipes", classes="pane-title")
                yield OptionList(id="recipe-list")
                yield Label("or type a path", classes="pane-title")
                yield Input(placeholder="path/to/recipe.yaml", id="recipe-path")
            with VerticalScroll(id="recipe-detail", classes="pane"):
                yield Static(id="recipe-state")
                yield Static(id="recipe-summary")
                table: DataTable = DataTable(id="recipe-errors", cursor_type="row", zebra_stripes=True)
                table.add_columns("field", "problem")
                yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#recipe-errors").display = False
        self.action_rescan()

    def action_rescan(self) -> None:
        options = self.query_one("#recipe-list", OptionList)
        options.clear_options()
        for path in self.papp.find_recipes():
            options.add_option(Option(display_name(path), id=str(path)))
        if options.option_count:
            current = str(self.papp.recipe_path) if self.papp.recipe_path else None
            ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
            options.highlighted = ids.index(current) if current in ids else 0
            options.focus()

    def status_changed(self) -> None:
        app = self.papp
        state = self.query_one("#recipe-state", Static)
        if app.engine is None:
            state.update(Text("no recipe loaded: highlight one and press Enter", style="dim"))
        else:
            status = app.engine_status or ("ready" if app.engine_ready else "loading models…")
            loaded = display_name(app.recipe_path) if app.recipe_path else ""
            state.update(Text.assemble(("loaded: ", "bold"), f"{loaded}  ", (status, "italic")))

    # ------------------------------------------------------------------ events

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.preview(event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.load(event.option.id)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self.preview(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.load(event.value.strip())

    def action_load(self) -> None:
        path = self.query_one("#recipe-path", Input).value.strip()
        options = self.query_one("#recipe-list", OptionList)
        if not (self.query_one("#recipe-path", Input).has_focus and path) and options.highlighted is not None:
            path = options.get_option_at_index(options.highlighted).id or ""
        if path:
            self.load(path)

    # ------------------------------------------------------------------ work

    def preview(self, path: str) -> bool:
        """Validate `path` and show its summary or its problems; True when valid."""
        summary_w = self.query_one("#recipe-summary", Static)
        errors = self.query_one("#recipe-errors", DataTable)
        errors.clear()
        try:
            built = self.papp.validate_recipe(path)
        except RecipeError as exc:
            summary_w.update(Text.assemble(("✗ ", "bold red"), (f"{exc.source}: ", "bold"),
                                           f"{len(exc.problems)} problem(s)"))
            for field, message in exc.problems:
                errors.add_row(Text(field or "(file)", style="bold"), Text(message, style="red"))
            errors.display = True
            return False
        except PrismError as exc:
            summary_w.update(Text.assemble(("✗ ", "bold red"), str(exc)))
            errors.display = False
            return False
        errors.display = False
        summary_w.update(summary(built))
        return True

    def load(self, path: str) -> None:
        if not Path(path).expanduser().is_file():
            self.notify(f"no such file: {path}", severity="error")
            return
        if not self.preview(path):
            self.notify("fix the problems listed before loading", title="invalid recipe", severity="error")
            return
        self.papp.open_recipe(Path(path).expanduser())
        self.notify(f"loaded {path}", title="recipe")
        self.papp.switch_mode("search")
