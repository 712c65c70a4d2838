"""Text from documents, ids and payloads made safe to print on a terminal.

A document may hold terminal control sequences (ESC [ ... for colours, cursor moves, window
titles, OSC 8 links, or C1 controls such as U+009B) that rewrite what the user sees when printed
raw. `printable` shows every control character as a visible escape instead.
"""

from __future__ import annotations

import re

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""C0 controls but tab and newline, DEL, C1 controls, bidirectional overrides and isolates (which
reorder what is shown), and lone surrogates (which a terminal cannot encode)."""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, newlines: bool = True) -> str:
    """`value` as a string a terminal shows as written: control characters become `\\x1b`-style
    escapes; with `newlines=False`, tab and newline are escaped too (one-line fields like ids)."""
    text = str(value)
    text = _CONTROLS.sub(_escape, text)
    if not newlines:
        text = text.replace("\t", "\\t").replace("\n", "\\n")
    return text
