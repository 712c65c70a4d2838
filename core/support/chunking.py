"""Splitting long text into overlapping windows that end at natural boundaries: before a
Markdown heading, after a paragraph, after a sentence; sized in characters or in tokens."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..contracts import Params

__all__ = ["ChunkParams", "TokenStarts", "chunk_text", "heading_path", "markdown_headings", "tokenizer_starts"]

TokenStarts = Callable[[str], Sequence[int]]
"""The start offsets of a text's tokens, in order (what `unit: tokens` counts)."""

_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
"""A blank line (and the whitespace after it): the best place to cut."""
_SENTENCE = re.compile(r"(?:[.!?]['\")\]\u2019\u201d]*\s+|[\u3002\uff01\uff1f]\s*)")
"""A sentence end followed by whitespace (or a CJK full stop, which needs none)."""
_SPACE = re.compile(r"\s+")
_WORD_START = re.compile(r"(?<=\s)\S")
_TOKEN = re.compile(r"\w+|[^\w\s]")
"""What `unit: tokens` counts: a run of word characters, or one punctuation mark."""


class ChunkParams(Params):
    """How long text is cut into chunks: window size and overlap, in characters or tokens."""

    size: int = Field(800, gt=0, description="Longest chunk, in `unit`s.")
    overlap: int = Field(100, ge=0, description="How much a chunk repeats from the previous one, in `unit`s.")
    unit: Literal["chars", "tokens"] = Field(
        "chars",
        description="What `size` and `overlap` count: characters, or tokens (those of `tokenizer`, else words and "
        "punctuation marks).",
    )
    tokenizer: str | None = Field(
        None,
        description="With `unit: tokens`: a model id or folder whose tokenizer.json counts the tokens (resolved "
        "offline like encoder models), e.g. the retriever's own model, so chunks fit its input limit.",
    )
    headings: bool = Field(
        True,
        description="Markdown: cut before headings and keep each chunk's heading path in its metadata "
        "(`headings`, e.g. ['Guide', 'Install']).",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkParams:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        if self.tokenizer is not None and self.unit != "tokens":
            raise ValueError("`tokenizer` counts tokens: set `unit: tokens` with it")
        return self


# ------------------------------------------------------------------------------ measuring


class _Chars:
    def __init__(self, n: int):
        self.n = n

    def ahead(self, pos: int, count: int) -> int:
        return min(pos + count, self.n)

    def back(self, pos: int, count: int) -> int:
        return max(pos - count, 0)


class _Tokens:
    """Positions `count` tokens ahead of or behind a position (token starts)."""

    def __init__(self, text: str, starts: TokenStarts | None):
        self.n = len(text)
        self.starts = list(starts(text)) if starts is not None else [m.start() for m in _TOKEN.finditer(text)]

    def ahead(self, pos: int, count: int) -> int:
        j = bisect_left(self.starts, pos) + count
        return self.starts[j] if j < len(self.starts) else self.n

    def back(self, pos: int, count: int) -> int:
        i = bisect_left(self.starts, pos)
        return self.starts[max(i - count, 0)] if self.starts else 0


# ------------------------------------------------------------------------------ boundaries


def _last_end(pattern: re.Pattern[str], text: str, lo: int, hi: int) -> int | None:
    """The end of the last match of `pattern` that starts in text[lo:hi] (clipped to `hi`)."""
    end = None
    for m in pattern.finditer(text, lo, hi):
        end = m.end()
    return end


def _last_space_end(text: str, lo: int, hi: int) -> int | None:
    """The end (clipped to `hi`) of the last whitespace run that starts in text[lo:hi]."""
    i = max(text.rfind(" ", lo, hi), text.rfind("\n", lo, hi), text.rfind("\t", lo, hi))
    if i < 0:
        return _last_end(_SPACE, text, lo, hi)  # rarer whitespace (no-break, ideographic...)
    m = _SPACE.match(text, i, hi)
    return m.end() if m else i + 1


def _first_sentence_start(text: str, lo: int, hi: int) -> int | None:
    """The first position in (lo, hi) where a sentence or paragraph begins, or None."""
    best = None
    for pattern in (_SENTENCE, _PARAGRAPH):
        m = pattern.search(text, max(lo - 1, 0), hi)
        while m is not None and m.end() <= lo:
            m = pattern.search(text, m.end(), hi)
        if m is not None and lo < m.end() < hi and (best is None or m.end() < best):
            best = m.end()
    return best


def _last_break(breaks: Sequence[int], lo: int, hi: int) -> int | None:
    i = bisect_left(breaks, hi + 1) - 1
    return breaks[i] if i >= 0 and breaks[i] >= lo else None


def tokenizer_starts(path: str | Path) -> TokenStarts:
    """Token starts by a Hugging Face `tokenizers` tokenizer.json (a file, or a folder holding one),
    without the padding and truncation it may be configured with."""
    from tokenizers import Tokenizer

    file = Path(path)
    file = file / "tokenizer.json" if file.is_dir() else file
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer.json at {path}")
    tok = Tokenizer.from_file(str(file))
    tok.no_truncation()
    tok.no_padding()

    def starts(text: str) -> list[int]:
        offsets = tok.encode(text, add_special_tokens=False).offsets
        return sorted({s for s, e in offsets if e > s})

    return starts


def chunk_text(
    text: str, params: ChunkParams, breaks: Sequence[int] = (), token_starts: TokenStarts | None = None
) -> list[tuple[int, int]]:
    """Spans [start, end) that cover `text`, each at most `params.size` long (in `params.unit`).

    A chunk ends, in order of preference, before one of `breaks` (sorted positions, e.g. the
    Markdown headings that `markdown_headings` finds) in the last three quarters of its window,
    after a paragraph break or a sentence end in its second half, or after whitespace (anywhere
    past the overlap, rather than cutting a word). The whitespace at a cut belongs to the earlier
    chunk, so the spans cover every character. The next chunk repeats up to `overlap`: from the
    first sentence that starts within it; when none does, nothing if the cut ended a sentence (or
    came before a break), else from the first word start. Empty text gives no spans; text of at
    most `size` gives one. `token_starts` counts tokens for `unit: tokens` (default: words and
    punctuation marks); see `tokenizer_starts`.
    """
    n = len(text)
    if n == 0:
        return []
    size, overlap = params.size, params.overlap
    ruler = _Tokens(text, token_starts) if params.unit == "tokens" else _Chars(n)
    spans: list[tuple[int, int]] = []
    start = 0
    while (limit := ruler.ahead(start, size)) < n:
        past_overlap = ruler.ahead(start, overlap + 1)
        lo = max(ruler.ahead(start, size // 2), past_overlap)
        before_break = _last_break(breaks, max(ruler.ahead(start, size // 4), past_overlap), limit)
        ended = before_break or _last_end(_PARAGRAPH, text, lo, limit) or _last_end(_SENTENCE, text, lo, limit)
        cut = ended or _last_space_end(text, past_overlap, limit) or limit
        spans.append((start, cut))
        if overlap == 0 or before_break:
            start = cut
            continue
        window = ruler.back(cut, overlap)
        sentence = _first_sentence_start(text, window, cut)
        if sentence is not None:
            start = sentence
        elif ended:
            start = cut
        elif (m := _WORD_START.search(text, window, cut)) is not None:
            start = m.start()
        elif text[cut - 1].isspace() or text[cut].isspace():
            start = cut  # no word starts within the overlap: repeat nothing rather than a fragment
        else:
            start = window  # a hard cut through a long word: repeat its tail
    spans.append((start, n))
    return spans


# ------------------------------------------------------------------------------ Markdown


def _fence(line: str) -> str | None:
    s = line.lstrip(" ")
    if len(line) - len(s) > 3:
        return None
    for mark in ("```", "~~~"):
        if s.startswith(mark):
            return mark
    return None


def markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(position, level, title) of every ATX heading (`# Title`) outside code fences, in one
    pass over the lines (linear in the text)."""
    out: list[tuple[int, int, str]] = []
    fence: str | None = None
    pos = 0
    for line in text.splitlines(keepends=True):
        at, pos = pos, pos + len(line)
        mark = _fence(line)
        if fence is not None:
            if mark == fence:
                fence = None
            continue
        if mark is not None:
            fence = mark
            continue
        s = line.lstrip(" ")
        if len(line) - len(s) > 3 or not s.startswith("#"):
            continue
        level = len(s) - len(s.lstrip("#"))
        body = s[level:]
        if level > 6 or (body.strip() and body[0] not in " \t"):
            continue
        title = body.strip()
        closed = title.rstrip("#")
        if closed != title and (not closed or closed[-1] in " \t"):
            title = closed.rstrip()
        if title:
            out.append((at, level, title))
    return out


def heading_path(headings: Sequence[tuple[int, int, str]], pos: int) -> list[str]:
    """The titles of the sections that hold position `pos` (outermost first)."""
    path: list[tuple[int, str]] = []
    for at, level, title in headings:
        if at > pos:
            break
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
    return [t for _, t in path]
