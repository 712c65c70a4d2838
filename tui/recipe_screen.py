"""Recipe screen: pick a recipe file, see it validated and summarised, load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
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
    # One block per retriever rather than a table: at 80 columns a five-column table folds model
    # ids one letter per line; lines of `key=value` pairs wrap between words.
    lines.append(Text("retrievers", style="bold"))
    for name, r in built.retrievers.items():
        enc = r.encoder
        docs = ", ".join(sorted(m.value for m in enc.document_modalities))
        queries = ", ".join(sorted(m.value for m in enc.query_modalities))
        lines.append(Text.assemble("  ", (name, "bold"), "  ", f"top k {r.top_k}",
                                   (f" · documents: {docs} · queries: {queries}", "dim")))
        for role, component in (("encoder", enc), ("index", r.index)):
            lines.append(Text.assemble(f"    {role} ", (component.name, "bold"), "  ", _params(component)))
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
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#recipe-errors").display = False
        self.action_rescan()

    def action_rescan(self) -> None:
        options = self.query_one("#recipe-list", OptionList)
        options.clear_options()
        loaded = self._loaded()
        for path in self.papp.find_recipes():
            mark = "● " if loaded is not None and path.resolve() == loaded else "  "
            options.add_option(Option(mark + display_name(path), id=str(path)))
        if options.option_count:
            self._highlight_loaded()
            options.focus()

    def engine_changed(self) -> None:
        if self.is_mounted:
            self.action_rescan()  # the marker and the highlight follow the loaded recipe

    def _loaded(self) -> Path | None:
        path = self.papp.recipe_path
        return path.expanduser().resolve() if path is not None else None

    def _highlight_loaded(self) -> None:
        options = self.query_one("#recipe-list", OptionList)
        loaded = self._loaded()
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        resolved = [Path(i).resolve() if i else None for i in ids]
        options.highlighted = resolved.index(loaded) if loaded in resolved else 0

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
