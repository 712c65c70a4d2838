"""Modal dialogs: a hit in full (text, payload, why it ranked; copy its id or text) and a yes/no question."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static

from prismrag.support.terminal import printable


class HitScreen(ModalScreen[None]):
    """One hit, all of it: the detail panel's content without its size limit."""

    BINDINGS = [
        Binding("escape,enter,q", "dismiss(None)", "Close"),
        Binding("i", "copy('id')", "Copy id"),
        Binding("t", "copy('text')", "Copy text"),
    ]

    def __init__(self, hit: Any, body: RenderableType) -> None:
        super().__init__()
        self.hit = hit
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="hit-view", classes="dialog"):
            yield Label(Text(f"hit #{self.hit.rank}: {printable(self.hit.id)}"), classes="pane-title", id="hit-title")
            with VerticalScroll(id="hit-body"):
                yield Static(self.body, id="hit-content")
            yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#hit-body").focus()

    def copied(self, what: str) -> str:
        """The text that `copy` puts on the clipboard."""
        if what == "id":
            return str(self.hit.id)
        text = self.hit.payload.get("text")
        return text if isinstance(text, str) else str(self.hit.payload.get("path") or self.hit.id)

    def action_copy(self, what: str) -> None:
        # OSC 52: the terminal puts it on the system clipboard (most terminals, tmux with set-clipboard on)
        self.app.copy_to_clipboard(self.copied(what))
        self.notify(f"copied the {what} of {printable(self.hit.id)}", title="clipboard", markup=False)


class ConfirmScreen(ModalScreen[bool]):
    """A question with Yes and No; Escape or n answers No."""

    BINDINGS = [Binding("escape,n", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", id="confirm-yes", variant="warning")
                yield Button("No (n)", id="confirm-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")
