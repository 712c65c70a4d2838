"""Document loaders: PDF (pypdf; text per page, the page number in every span), HTML (the main
text and the title, without scripts, styles, navigation or link targets; BeautifulSoup) and
DOCX (python-docx; paragraphs, headings and tables in order, the document's properties).

All three make text items like `text-files`: ids `path#n` for chunks, `file` and `title` in the
metadata, headings kept as a heading path (`headings`) for HTML and DOCX. Their libraries are
the `documents` extra and are imported only when a file is read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from prismrag.contracts import Item, ItemError, Loader, MissingDependencyError, Modality, hookimpl
from prismrag.support import ChunkParams

from ._files import FileLoader, SourceParams, relpath
from ._text import text_items, token_counter

_TITLE_CHARS = 200
_SPACES = re.compile(r"[^\S\n]+")
_BLANKS = re.compile(r"\n\s*\n\s*")


class DocumentParams(SourceParams):
    chunk: ChunkParams | None = Field(
        ChunkParams(), description="How to cut long text into chunks; null keeps each document (PDF: each page) whole."
    )


def _tidy(text: str) -> str:
    """Runs of spaces to one, blank-line runs to one blank line, lines stripped."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _page_ranges(pages: list[int]) -> str:
    """`1-3, 7` for [1, 2, 3, 7]."""
    out: list[str] = []
    for p in pages:
        if out and p == int(out[-1].rsplit("-", 1)[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{p}"
        else:
            out.append(str(p))
    return ", ".join(out)


class _DocumentLoader(FileLoader):
    Params = DocumentParams
    params: DocumentParams
    modality, extra = Modality.TEXT, "documents"

    def _import(self, module: str, package: str) -> Any:
        import importlib

        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependencyError(f"loader {self.name!r}", package, self.extra) from exc

    def _items(self, text: str, rel: str, meta: dict[str, Any], **kw: Any) -> list[Item]:
        tokens = token_counter(self.params.chunk, self.context, self._where())
        return text_items(text, self.params.id_prefix + rel, self.params.chunk, meta, rel, token_starts=tokens, **kw)


# ------------------------------------------------------------------------------------------ PDF


class PdfLoader(_DocumentLoader):
    """PDF files: the text layer of each page; a page without one is reported (scanned pages need OCR)."""

    name = "pdf"
    description = "PDF files: the text of each page, with its page number in every chunk's span (pypdf)."
    extensions = frozenset({".pdf"})

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        pypdf = self._import("pypdf", "pypdf")
        rel, where = relpath(path, root), self.display(path)
        try:
            reader = pypdf.PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):
                yield ItemError(where, "the PDF is encrypted with a password; skipped. Save an unencrypted copy.")
                return
            texts = [page.extract_text() or "" for page in reader.pages]
            info = reader.metadata or {}
        except Exception as exc:  # pypdf raises many kinds on broken files
            yield ItemError(where, f"not a readable PDF ({type(exc).__name__}: {exc}); skipped")
            return
        empty = [n for n, text in enumerate(texts, 1) if not text.strip()]
        if empty:
            which = "every page" if len(empty) == len(texts) else f"page{'s' if len(empty) > 1 else ''} {_page_ranges(empty)}"
            yield ItemError(
                where,
                f"{which} of {len(texts)} ha{'ve' if len(empty) > 1 else 's'} no text layer (scanned images?); "
                f"{'skipped' if len(empty) == len(texts) else 'those pages were skipped'}. Add a text layer with OCR "
                f"(e.g. `ocrmypdf in.pdf out.pdf`) to index them.",
            )
        if len(empty) == len(texts):
            return
        title = str(info.get("/Title") or "").strip() or next(
            (line.strip() for t in texts for line in t.splitlines() if line.strip()), path.stem
        )
        meta: dict[str, Any] = {"file": rel, "title": title[:_TITLE_CHARS], "pages": len(texts)}
        if info.get("/Author"):
            meta["author"] = str(info["/Author"])
        items: list[Item] = []
        for page, text in enumerate(texts, 1):
            if text.strip():
                for item in self._items(text, rel, meta, page=page):
                    items.append(item)
        for n, item in enumerate(items):  # one numbering over the whole document
            yield Item(f"{self.params.id_prefix}{rel}#{n}", item.modality, item.content, item.metadata,
                       parent_id=self.params.id_prefix + rel, span=item.span, source=item.source)


# ----------------------------------------------------------------------------------------- HTML

_DROP = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "nav", "aside", "form",
         "button", "select")
_PAGE_FRAME = ("header", "footer")
"""Dropped when they frame the page; kept inside an article or main (an article's own header holds its title)."""
_BLOCKS = ("p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "pre", "blockquote", "dt",
           "dd", "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "hr")


def html_text(data: bytes | str) -> tuple[str, str | None, str | None]:
    """(main text with headings as `#` lines, title, language) of an HTML page."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    if not title:
        og = soup.find("meta", attrs={"property": "og:title"})
        title = og.get("content") if og else None
    html = soup.find("html")
    lang = html.get("lang") if html is not None else None
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(_PAGE_FRAME):
        if tag.find_parent(["article", "main"]) is None:
            tag.decompose()
    for tag in soup.find_all(["head"]):
        tag.decompose()
    main = soup.find("main") or soup.find("article") or soup.body or soup
    for br in main.find_all("br"):
        br.replace_with("\n")
    for cell in main.find_all(["td", "th"]):
        cell.insert_after(" | ")
    for tag in main.find_all(_BLOCKS):
        if tag.name and tag.name[0] == "h" and tag.name[1:].isdigit():
            heading = tag.get_text(" ", strip=True)
            if not title and tag.name == "h1":
                title = heading
            tag.replace_with(f"\n\n{'#' * int(tag.name[1:])} {heading}\n\n")
        else:
            tag.insert_before("\n\n")
            tag.insert_after("\n\n")
    text = _tidy(main.get_text())
    return text, (title.strip() if isinstance(title, str) and title.strip() else None), (lang if isinstance(lang, str) else None)


class HtmlLoader(_DocumentLoader):
    """HTML pages: the main content (`<main>`, `<article>` or the body) as text, and the title."""

    name = "html"
    description = "HTML pages: main text and title, without scripts, styles, navigation or link targets (BeautifulSoup)."
    extensions = frozenset({".html", ".htm", ".xhtml"})

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        self._import("bs4", "beautifulsoup4")
        rel, where = relpath(path, root), self.display(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield ItemError(where, f"cannot read: {exc.strerror or exc}; skipped")
            return
        text, title, lang = html_text(data)
        if not text.strip():
            yield ItemError(where, "the page has no text outside scripts, styles and navigation; skipped")
            return
        meta: dict[str, Any] = {"file": rel, "title": (title or path.stem)[:_TITLE_CHARS]}
        if lang:
            meta["lang"] = lang
        yield from self._items(text, rel, meta, markdown=True)


# ----------------------------------------------------------------------------------------- DOCX


def _heading_level(style: str) -> int | None:
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        level = style.removeprefix("Heading ").strip()
        return min(int(level), 6) if level.isdigit() else None
    return None


def docx_text(path: Path) -> tuple[str, dict[str, Any]]:
    """(text with headings as `#` lines and tables as `a | b` rows, core properties) of a DOCX file."""
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    blocks: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    blocks.append(" | ".join(cells))
            continue
        text = block.text.strip()
        if not text:
            continue
        level = _heading_level(block.style.name if block.style is not None else "")
        blocks.append(f"{'#' * level} {text}" if level else text)
    props = document.core_properties
    meta: dict[str, Any] = {}
    for key in ("title", "author", "subject", "keywords", "created", "modified"):
        value = getattr(props, key, None)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        if value:
            meta[key] = value
    return "\n\n".join(blocks), meta


class DocxLoader(_DocumentLoader):
    """Word documents (.docx): paragraphs, headings and tables in order, and the core properties."""

    name = "docx"
    description = "Word .docx files: paragraphs, headings (kept as heading paths) and tables, with title and author (python-docx)."
    extensions = frozenset({".docx"})

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        self._import("docx", "python-docx")
        rel, where = relpath(path, root), self.display(path)
        try:
            text, props = docx_text(path)
        except Exception as exc:  # a broken zip, a missing part, bad XML
            yield ItemError(where, f"not a readable .docx file ({type(exc).__name__}: {exc}); skipped")
            return
        if not text.strip():
            yield ItemError(where, "the document has no text; skipped")
            return
        first_heading = next((line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")), None)
        title = str(props.pop("title", "") or first_heading or path.stem)
        meta = {**props, "file": rel, "title": title[:_TITLE_CHARS]}
        yield from self._items(text, rel, meta, markdown=True)


@hookimpl
def register_loaders(register: Callable[[type[Loader]], None]) -> None:
    for cls in (PdfLoader, HtmlLoader, DocxLoader):
        register(cls)
