"""The terminal progress line: a bar with items per second on a terminal, nothing when piped."""

from __future__ import annotations

import io

from prismrag.progress import TerminalProgress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_shows_a_bar_and_a_rate_per_stage():
    out = FakeTerminal()
    progress = TerminalProgress(out)
    progress("load", 10, 10)
    progress("encode", 0, 4)
    progress("encode", 4, 4)  # a finished stage is always drawn, however soon
    progress.close()
    text = out.getvalue()
    lines = text.split("\n")
    assert lines[0].endswith("items/s") and "load" in lines[0] and "10 items" in lines[0]
    assert "encode [" + "#" * 30 + "] 4/4 items" in lines[1].split("\r")[-1]
    assert "items/s" in lines[1] and text.endswith("\n")


def test_piped_output_stays_silent():
    out = io.StringIO()  # isatty() is False, as for a pipe or a file
    progress = TerminalProgress(out)
    progress("encode", 1, 2)
    progress("encode", 2, 2)
    progress.close()
    assert out.getvalue() == ""
