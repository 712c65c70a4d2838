"""Private helpers of the text loaders: titles of Markdown and reStructuredText files, and text
cut into chunk items (with Markdown heading paths, file offsets and page numbers)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prismrag.contracts import Context, Item, MissingDependencyError, Modality, PrismError, Span
from prismrag.support import (
    ChunkParams,
    TokenStarts,
    chunk_text,
    heading_path,
    markdown_headings,
    model_errors,
    resolve_model_path,
    tokenizer_starts,
)

_TOKENIZERS: dict[tuple[str, str], TokenStarts] = {}
_TOKENIZERS_LOCK = threading.Lock()


def token_counter(chunk: ChunkParams | None, context: Context, where: str) -> TokenStarts | None:
    """The token counter a source's `chunk: {unit: tokens, tokenizer: ...}` names (loaded once
    per process), or None for the default count (words and punctuation marks)."""
    if chunk is None or chunk.unit != "tokens" or chunk.tokenizer is None:
        return None
    key = (chunk.tokenizer, str(context.base_dir))
    with _TOKENIZERS_LOCK:
        if key not in _TOKENIZERS:
            try:
                import tokenizers  # noqa: F401
            except ImportError as exc:
                raise MissingDependencyError(where, "tokenizers", "text") from exc
            path = resolve_model_path(chunk.tokenizer, context, where)
            local = Path(path).exists()
            with model_errors(chunk.tokenizer, where, remote=not local):
                if not local:
                    from huggingface_hub import hf_hub_download

                    path = hf_hub_download(path, "tokenizer.json")
                try:
                    _TOKENIZERS[key] = tokenizer_starts(path)
                except FileNotFoundError:
                    raise PrismError(
                        f"{where}: chunk.tokenizer {chunk.tokenizer!r}: no tokenizer.json at {path}; name a model "
                        f"folder (or model id) that has one"
                    ) from None
        return _TOKENIZERS[key]

_TITLE_CHARS = 200
MARKDOWN = (".md", ".markdown")

_RST_UNDERLINE = frozenset("=-~^\"'`#*+:.<>_")


def _rst_title(text: str) -> str | None:
    """The first line underlined by one repeated punctuation mark (at least three), line by line."""
    previous = ""
    for line in text.splitlines():
        mark = line.rstrip()
        if len(mark) >= 3 and mark[0] in _RST_UNDERLINE and mark == mark[0] * len(mark) and previous:
            return previous
        previous = line.strip() if line[:1].strip() else ""
    return None


def text_title(text: str, path: Path) -> str:
    """The first heading of a Markdown (outside code fences) or reStructuredText file, else the
    stem; one pass over the lines, so linear in the text."""
    suffix = path.suffix.lower()
    title = None
    if suffix in MARKDOWN:
        headings = markdown_headings(text)
        title = headings[0][2] if headings else None
    elif suffix == ".rst":
        title = _rst_title(text)
    return title[:_TITLE_CHARS] if title else path.stem


def text_items(
    text: str,
    item_id: str,
    chunk: ChunkParams | None,
    metadata: dict[str, Any],
    source: str,
    *,
    markdown: bool = False,
    offset: int = 0,
    page: int | None = None,
    token_starts: TokenStarts | None = None,
) -> list[Item]:
    """One item for the whole text, or one per chunk with ids `item_id#n`, parent and span.

    `markdown`: cut before headings and give each chunk its heading path (`headings`), when the
    chunk params ask for it. `offset`: where `text` starts in the file (spans count from the file's
    start). `page`: the page number every span carries. `token_starts`: the tokenizer's count for
    `unit: tokens` (see `token_counter`).
    """
    if chunk is None:
        span = Span(offset, offset + len(text), page=page) if (offset or page is not None) else None
        return [Item(item_id, Modality.TEXT, text, metadata, span=span, source=source)]
    headings = markdown_headings(text) if markdown and chunk.headings else []
    items: list[Item] = []
    for start, end in chunk_text(text, chunk, [h[0] for h in headings], token_starts):
        piece = text[start:end]
        if piece.strip():
            meta = metadata
            if headings:
                first = start + len(piece) - len(piece.lstrip())
                meta = {**metadata, "headings": heading_path(headings, first)}
            items.append(
                Item(
                    f"{item_id}#{len(items)}",
                    Modality.TEXT,
                    piece,
                    meta,
                    parent_id=item_id,
                    span=Span(offset + start, offset + end, page=page),
                    source=source,
                )
            )
    return items
