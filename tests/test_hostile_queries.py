"""Hostile queries (issue 17): huge ones, a query file too big to read whole, queries naming
FIFOs, devices and links to them, malformed filters. Each answers in bounded time and memory or
is a clear error, never a hang or a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import prismrag
from prismrag.cli import main
from prismrag.errors import QueryError
from prismrag.query import as_query

PRISM = str(Path(sys.executable).parent / "prism")
needs_posix = pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/zero are POSIX")


@pytest.fixture
def recipe(kw_recipe) -> Path:
    return kw_recipe({
        "a.md": "# Apples\n\nApples grow on trees in orchards.",
        "b.md": "# Rivers\n\nRivers flow into the sea through deltas.",
    })


def test_a_ten_megabyte_query_is_answered_in_linear_time(recipe):
    with prismrag.load_recipe(recipe) as engine:
        engine.search("warm up")
        started = time.perf_counter()
        hits = engine.search("rivers sea " * 1_000_000)  # 11 MB of text
        assert time.perf_counter() - started < 20
        assert hits[0].id == "b.md#0"


def test_a_query_file_too_big_to_read_whole_is_refused_by_size(recipe, tmp_path, capsys):
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as fh:
        fh.truncate(1 << 30)  # 1 GB, sparse: before, read whole into memory
    capsys.readouterr()
    assert main(["search", str(recipe), str(huge)]) == 2
    err = capsys.readouterr().err
    assert "huge.txt' holds 1,073.7 MB" in err and "at most 10 MB" in err
    with pytest.raises(QueryError, match="at most 10 MB"):
        as_query(huge)


@needs_posix
def test_queries_naming_a_fifo_or_a_device_are_searched_as_words_never_read(recipe, tmp_path):
    os.mkfifo(tmp_path / "rivers.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    for query in ("rivers.txt", "zero.txt", "/dev/zero", "/dev/stdin"):
        proc = subprocess.run([PRISM, "search", str(recipe), query, "--json"], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, stdin=subprocess.PIPE)
        assert proc.returncode == 0, (query, proc.stderr)
        assert "read from the file" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flt, message", [
    ("file=", "no value after the operator"),
    ("(a=1", "cannot read filter"),
    ("year > now", "a range needs a number or an ISO date"),
    ("a ~~ b", "unknown operator|cannot read filter"),
    ("(" * 5000 + "a=1" + ")" * 5000, "nested|cannot read filter|too deep"),
])
def test_malformed_filters_are_a_clear_error(recipe, capsys, flt, message):
    import re

    capsys.readouterr()
    assert main(["search", str(recipe), "rivers", "--filter", flt]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err, err[-500:]
