"""The base of every prism screen: header, footer, access to the app's engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from prismrag.engine import Engine

    from .app import PrismApp


class PrismScreen(Screen):
    """A screen that shows the current recipe's engine and refreshes when it changes."""

    seen_generation = -1

    @property
    def papp(self) -> PrismApp:
        return cast("PrismApp", self.app)

    @property
    def engine(self) -> Engine | None:
        return self.papp.engine

    def sync_engine(self) -> None:
        """Called when the engine or its status changed (and when the screen is shown again)."""
        if self.seen_generation != self.papp.generation:
            self.seen_generation = self.papp.generation
            self.engine_changed()
        self.status_changed()

    def engine_changed(self) -> None:
        """Another recipe was loaded: rebuild what depends on it."""

    def status_changed(self) -> None:
        """The engine's readiness or status line changed."""

    def on_screen_resume(self) -> None:
        self.sync_engine()
