"""Pure rendering helpers (Rich only, no Textual): snippets, highlights, images, provenance."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from rich.text import Text

from prismrag.explain import Explanation
from prismrag.explain import explain as explanation_of
from prismrag.support.terminal import printable
from prismrag.types import Hit, time_code, time_span_label

_WORD = re.compile(r"\w+")
_HEADING = re.compile(r"(?m)^\s*#{1,6}\s+")
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "how", "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when", "where", "which", "who", "why", "will", "with", "do", "does", "can", "my", "your"]
)
HIGHLIGHT = "bold reverse"


def query_terms(query: str) -> list[str]:
    """The words of a text query worth highlighting (no stop words, longest first)."""
    words = {w for w in _WORD.findall(query.lower()) if len(w) > 1 and w not in _STOP}
    return sorted(words, key=lambda w: (-len(w), w))


def snippet(payload: Mapping[str, Any], width: int = 60) -> Text:
    """One line for the results table: the start of the text, or the file name of media.

    A `Text`, never a str: tables read strings as Rich markup, and `[a](b)` in a document
    would vanish."""
    text = payload.get("text") or payload.get("transcript")
    span = time_span_label(payload)  # `clip.wav @ 00:12.4–00:15.0` for a time span of a recording
    if text is None:
        path = payload.get("path") or payload.get("source") or ""
        text = span or (Path(str(path)).name if path else "")
    elif span:
        text = f"{span}  {text}"
    text = printable(" ".join(_HEADING.sub(" ", str(text)).split()))
    return Text(text if len(text) <= width else text[: width - 1] + "…")


def highlighted(text: str, terms: Sequence[str], limit: int = 4000) -> Text:
    """The text with the query's terms highlighted (case-insensitive, whole or partial words)."""
    text = printable(text)  # a document's escape sequences are shown, never sent to the terminal
    out = Text(text if len(text) <= limit else text[:limit] + "…")
    if terms:
        out.highlight_words(terms, style=HIGHLIGHT, case_sensitive=False)
    return out


def image_blocks(path: str | Path | IO[bytes], width: int = 40, max_rows: int = 16) -> Text:
    """An image as half-block characters: each cell shows two pixels (upper fg, lower bg)."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        cols = max(1, min(width, w))
        rows2 = max(2, round(h * cols / w))  # two pixel rows per text row
        if rows2 > 2 * max_rows:
            rows2 = 2 * max_rows
            cols = max(1, round(w * rows2 / h))
        rows2 += rows2 % 2
        small = img.resize((cols, rows2))
        pixels = small.load()
    text = Text()
    for y in range(0, rows2, 2):
        for x in range(cols):
            top, bottom = pixels[x, y], pixels[x, y + 1]
            text.append("▀", style=f"rgb({top[0]},{top[1]},{top[2]}) on rgb({bottom[0]},{bottom[1]},{bottom[2]})")
        text.append("\n")
    text.rstrip()
    return text


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def grid(rows: Sequence[Sequence[str | Text]], header: Sequence[str] | None = None,
          right: Iterable[int] = ()) -> Text:
    """Rows as aligned columns in one Text (much cheaper to render than a Rich Table)."""
    cells = [list(header)] + [list(r) for r in rows] if header else [list(r) for r in rows]
    if not cells:
        return Text()
    ncols = max(len(r) for r in cells)
    widths = [max(len(Text(c).plain if isinstance(c, str) else c.plain) for c in (r[i] for r in cells if i < len(r)))
              for i in range(ncols)]
    right = set(right)
    out = Text()
    for n, row in enumerate(cells):
        line = Text(style="bold" if header and n == 0 else "")
        for i, cell in enumerate(row):
            cell = Text(cell) if isinstance(cell, str) else cell
            pad = " " * (widths[i] - len(cell.plain))
            if i in right:
                line.append(pad)
                line.append_text(cell)
            else:
                line.append_text(cell)
                if i < len(row) - 1:
                    line.append(pad)
            if i < len(row) - 1:
                line.append("  ")
        out.append_text(line.rstrip() or line)
        if n < len(cells) - 1:
            out.append("\n")
    return out


def provenance_table(e: Explanation) -> Text:
    """Per retriever: rank, raw score and what it added to the fused score (and each stage of a
    multi-stage plan below it)."""
    rows: list[list[str | Text]] = []
    for r in e.retrievers:
        if r.rank is None:
            top = r.top_k if r.top_k is not None else "?"
            rows.append([r.name, Text("—", style="dim"), Text(f"not in its top {top}", style="dim"), ""])
            continue
        share = ""
        if e.fusion and r.share is not None:
            pct = f" ({r.share_percent:.0f}%)" if r.share_percent is not None else ""
            share = f"+{r.share:.4f}{pct}"
        rows.append([r.name, str(r.rank), _fmt(r.score), share])
        for s in r.stages:
            rows.append([Text(f"  {s.field}", style="dim"), Text(str(s.rank), style="dim"), Text(_fmt(s.score), style="dim"),
                         Text(f"of {s.limit}", style="dim")])
    header = ["retriever", "rank", "score", "fusion share" if e.fusion else ""]
    return grid(rows, header, right=(1, 2))


def explain(hit: Hit, routed: Sequence[str], top_ks: Mapping[str, int]) -> Text:
    """The provenance block of the detail panel: retrievers, fusion, rerankers."""
    e = explanation_of(hit, routed, top_ks)
    out = provenance_table(e)
    out.append("\n")
    if e.fusion:
        out.append_text(Text.assemble(("fusion ", "bold"), f"{e.fusion}: fused score {_fmt(e.fused_score)}"))
    else:
        out.append("single retriever: no fusion", style="dim")
    for line in e.retrievers:
        if line.best_part:
            out.append("\n")
            out.append_text(Text.assemble((f"{line.name} ", "bold"), f"best match {line.best_part}"))
    for r in e.rerank:
        arrow = "↑" if r.moved > 0 else ("↓" if r.moved < 0 else "=")
        style = "green" if r.moved > 0 else ("red" if r.moved < 0 else "dim")
        out.append("\n")
        out.append_text(Text.assemble(
            ("rerank ", "bold"), f"{r.stage}: score {_fmt(r.score)}, rank {r.rank_before} → {r.rank_after} ",
            (f"{arrow}{abs(r.moved) if r.moved else ''}", style),
        ))
    return out


def thumbnail_blocks(uri: str, width: int = 20, max_rows: int = 10) -> Text:
    """A payload's `thumbnail` (a `data:image/...;base64,` URI, e.g. a 3D shape's rendered view)
    as half-block characters; a thumbnail that cannot be decoded says so."""
    import base64
    import io

    head, _, data = uri.partition(",")
    try:
        if not (head.startswith("data:image/") and head.endswith(";base64")):
            raise ValueError("not a base64 image data URI")
        return image_blocks(io.BytesIO(base64.b64decode(data, validate=True)), width=width, max_rows=max_rows)
    except Exception as exc:  # a corrupt or foreign thumbnail must not break the detail panel
        return Text(f"(thumbnail unreadable: {type(exc).__name__})", style="dim")


def metadata_table(payload: Mapping[str, Any], skip: Iterable[str] = ("text",)) -> Text:
    """Payload fields other than the text, one per row, under the payload's `thumbnail` image."""
    skipped = set(skip) | {"thumbnail"}
    rows: list[list[str | Text]] = []
    for key in sorted(payload):
        if key in skipped:
            continue
        value = payload[key]
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        rows.append([Text(printable(key, newlines=False), style="bold"), Text(printable(value))])
    span = payload.get("span")
    if isinstance(span, Mapping) and span.get("t_start") is not None and payload.get("path"):
        # The TUI plays nothing; it says where the passage is and how to hear (or watch) it.
        start, end = float(span["t_start"]), float(span.get("t_end") or span["t_start"])
        video = payload.get("modality") == "video"
        rows.append([Text("play" if video else "listen", style="bold"),
                     f"ffplay {'' if video else '-nodisp '}-autoexit -ss {start:.1f} -t {end - start:.1f} {payload['path']}"])
    if not isinstance(payload.get("thumbnail"), str):
        return grid(rows)
    out = thumbnail_blocks(payload["thumbnail"])
    caption = _keyframe_caption(payload)
    if caption is not None:
        out.append("\n")
        out.append_text(caption)
    out.append("\n")
    out.append_text(grid(rows))
    return out


def _keyframe_caption(payload: Mapping[str, Any]) -> Text | None:
    """Under a video keyframe: where it is (`clip.mp4 @ 00:04.0–00:06.0 · frame 00:05.0`) and what
    is said in the segment; None for a thumbnail that is not from a time span."""
    label = time_span_label(payload)
    if label is None:
        return None
    out = Text(printable(label), style="bold")
    shown = payload.get("thumbnail_s")
    if isinstance(shown, (int, float)) and not isinstance(shown, bool):
        out.append(f" \u00b7 frame {time_code(float(shown))}", style="dim")
    transcript = payload.get("transcript")
    if isinstance(transcript, str) and transcript.strip():
        out.append("\n")
        out.append(printable(" ".join(transcript.split())), style="italic")
    return out
