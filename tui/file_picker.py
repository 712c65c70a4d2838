"""A modal file picker for querying with an image, audio clip, 3D shape or video."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Label


class FilePicker(ModalScreen[Path | None]):
    """Browse from a folder; Enter on a file returns its path, Escape returns None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="picker", classes="dialog"):
            yield Label("Query by file: pick an image, audio, 3D or video file (Esc to cancel)",
                        classes="pane-title")
            yield DirectoryTree(self.root, id="picker-tree")

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)
