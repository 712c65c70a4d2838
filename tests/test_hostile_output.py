"""Hostile input, output (issue 17): ids, text and payloads holding terminal escape sequences are
shown escaped by the CLI and the TUI's renderers; `--json` stays valid JSON with the exact text."""

from __future__ import annotations

import json
import os

import pytest

from prismrag.cli import main
from prismrag.support.terminal import printable
from prismrag.tui.render import highlighted, metadata_table, snippet

EVIL = "Rivers flow \x1b]0;pwned\x07 to the sea \x1b[2J\x1b[31m red \x9b1m \u202eevil"


@pytest.fixture
def recipe(kw_recipe):
    name = "riv\x1b[1mers.md" if os.name == "posix" else "rivers.md"
    return kw_recipe({name: EVIL, "apples.md": "Apples grow on trees."})


def test_search_output_carries_no_escape_sequence(recipe, capsys):
    capsys.readouterr()
    assert main(["search", str(recipe), "rivers sea", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out


def test_json_output_is_valid_and_exact(recipe, capsys):
    capsys.readouterr()
    assert main(["search", str(recipe), "rivers sea", "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out  # JSON escapes control characters itself
    hits = json.loads(out)
    assert hits[0]["payload"]["text"] == EVIL


def test_a_control_character_query_and_error_messages_are_escaped(recipe, capsys):
    capsys.readouterr()
    assert main(["search", str(recipe), "rivers\x1b[2J\x00"]) == 0
    assert main(["search", str(recipe), "rivers", "--filter", "fi\x1b[31mle=x"]) == 2
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err


def test_tui_renderers_escape_control_sequences():
    payload = {"text": EVIL, "file\x1b[5m": "x\x1b[31my"}
    for text in (snippet(payload, width=500), highlighted(EVIL, ["rivers"]), metadata_table(payload, skip=())):
        assert "\x1b" not in text.plain and "\x07" not in text.plain and "\u202e" not in text.plain
    assert printable("a\nb\tc", newlines=False) == "a\\nb\\tc"
    assert printable("a\nb") == "a\nb"


def test_items_commands_carry_no_escape_sequence(recipe, capsys):
    capsys.readouterr()
    assert main(["items", "list", str(recipe)]) == 0  # before: ids and text printed raw
    evil_id = "riv\x1b[1mers.md#0" if os.name == "posix" else "rivers.md#0"
    assert main(["items", "get", str(recipe), evil_id, "missing\x1b[2J"]) == 1
    assert main(["items", "delete", str(recipe), "gone\x1b]0;x\x07", "--yes"]) == 0
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream and "\x07" not in stream and "\x9b" not in stream and "\u202e" not in stream
    assert "\\x1b]0;pwned\\x07" in captured.out or "\\u001b]0;pwned\\u0007" in captured.out
    assert "\\u202e" in captured.out
