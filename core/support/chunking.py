"""Splitting long text into overlapping character windows that end at natural boundaries."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from ..contracts import Params

__all__ = ["ChunkParams", "chunk_text"]

_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
"""A blank line (and the whitespace after it): the best place to cut."""
_SENTENCE = re.compile(r"(?:[.!?]['\")\]\u2019\u201d]*\s+|[\u3002\uff01\uff1f]\s*)")
"""A sentence end followed by whitespace (or a CJK full stop, which needs none)."""
_SPACE = re.compile(r"\s+")
_WORD_START = re.compile(r"(?<=\s)\S")


class ChunkParams(Params):
    """How long text is cut into chunks: window size and overlap, both in characters."""

    size: int = Field(800, gt=0, description="Longest chunk, in characters.")
    overlap: int = Field(100, ge=0, description="Characters a chunk repeats from the previous one.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkParams:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


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


def chunk_text(text: str, params: ChunkParams) -> list[tuple[int, int]]:
    """Character spans [start, end) that cover `text`, each at most `params.size` long.

    A chunk ends, in order of preference, after a paragraph break, after a sentence end, or after
    whitespace, found in the second half of its window (whitespace anywhere past the overlap is
    still preferred over cutting a word). The whitespace at a cut belongs to the earlier chunk, so
    the spans cover every character. The next chunk starts up to `overlap` characters before the
    cut, at the first word start there. Empty text gives no spans; text of at most `size`
    characters gives one.
    """
    n = len(text)
    if n == 0:
        return []
    size, overlap = params.size, params.overlap
    spans: list[tuple[int, int]] = []
    start = 0
    while n - start > size:
        limit = start + size
        lo = start + max(size // 2, overlap + 1)
        cut = (
            _last_end(_PARAGRAPH, text, lo, limit)
            or _last_end(_SENTENCE, text, lo, limit)
            or _last_space_end(text, start + overlap + 1, limit)
            or limit
        )
        spans.append((start, cut))
        if overlap == 0:
            start = cut
            continue
        m = _WORD_START.search(text, cut - overlap, cut)
        if m is not None:
            start = m.start()
        elif text[cut - 1].isspace() or text[cut].isspace():
            start = cut  # no word starts within the overlap: repeat nothing rather than a fragment
        else:
            start = cut - overlap  # a hard cut through a long word: repeat its tail
    spans.append((start, n))
    return spans
