"""Built-in loaders: text files, JSONL and BEIR corpora, images, and a walker that dispatches files.

Every loader yields items in sorted path (or line) order, and an `ItemError` for each input it
skips, so one bad file never stops the rest. Ids are stable across runs: a file's path relative
to the source root in POSIX form, `path#n` for its chunks; a record's own id for JSONL.
"""

from __future__ import annotations

import codecs
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from prismrag.contracts import (
    RESERVED_PAYLOAD_KEYS,
    IngestError,
    Item,
    ItemError,
    Loader,
    Media,
    MissingDependencyError,
    Modality,
    Params,
    extensions_of,
    hookimpl,
)
from prismrag.support import ChunkParams

from ._files import FileLoader, SourceParams, display, file_problem, relpath, walk
from ._front_matter import front_matter
from ._text import MARKDOWN, text_items, text_title, token_counter

# --------------------------------------------------------------------------------- text files


def _check_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown text encoding {value!r} (try utf-8 or latin-1)") from None
    return value


class TextFilesParams(SourceParams):
    chunk: ChunkParams | None = Field(
        ChunkParams(),
        description="How to cut long files into chunks; null keeps each file one item.",
    )
    encoding: str = Field("utf-8", description="The files' text encoding.")
    front_matter: bool = Field(
        True,
        description="Markdown: read YAML front matter (between `---` lines at the top) into metadata "
        "instead of indexing it as text.",
    )

    _encoding = field_validator("encoding")(_check_encoding)


class TextFilesLoader(FileLoader):
    """Plain text, Markdown and reStructuredText files, chunked."""

    name = "text-files"
    description = "Text, Markdown and reStructuredText files from a file or folder, cut into overlapping chunks."
    Params = TextFilesParams
    params: TextFilesParams
    extensions = extensions_of(Modality.TEXT)
    modality = Modality.TEXT

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        rel = relpath(path, root)
        where = self.display(path)
        encoding = self.params.encoding
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield ItemError(where, f"cannot read: {exc.strerror or exc}; skipped")
            return
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            yield ItemError(
                where,
                f"not valid {encoding}: {exc.reason} (byte 0x{data[exc.start]:02x} at byte offset "
                f"{exc.start}); skipped. If the file uses another encoding, set `encoding` on this "
                f"source, e.g. `encoding: latin-1`.",
            )
            return
        text = text.removeprefix("\ufeff")
        if not text.strip():
            yield ItemError(where, "file is empty; skipped")
            return
        markdown = path.suffix.lower() in MARKDOWN
        offset, fields = 0, {}
        if markdown and self.params.front_matter:
            try:
                offset, fields, dropped = front_matter(text)
            except ValueError as exc:
                yield ItemError(where, f"{exc}; skipped. Fix the YAML, or set `front_matter: false` on this source.")
                return
            if dropped:
                yield ItemError(
                    where,
                    f"front matter key(s) {dropped} are written by the engine for every item and were left out "
                    f"(rename them)",
                )
        body = text[offset:]
        if offset:  # the blank lines between the front matter and the text
            offset += len(body) - len(body.lstrip())
            body = text[offset:]
        if not body.strip():
            yield ItemError(where, "no text after the front matter; skipped")
            return
        meta = {**fields, "file": rel}
        meta["title"] = str(fields["title"]) if fields.get("title") else text_title(body, path)
        yield from text_items(
            body, self.params.id_prefix + rel, self.params.chunk, meta, rel, markdown=markdown, offset=offset,
            token_starts=token_counter(self.params.chunk, self.context, self._where()),
        )

    def load(self) -> Iterator[Item | ItemError]:
        root, files = self.files()
        for path, _ in files:
            if path.suffix.lower() in self.extensions:
                yield from self.load_file(path, root)
            else:  # the recipe names this one file
                yield ItemError(self.display(path), self._not_text({path.suffix.lower() or "(no extension)": 1}))
        if not files and root.is_dir():
            others = Counter(p.suffix.lower() or "(no extension)" for p, _ in walk(root, self.params.glob, self.params.exclude))
            if others:
                yield ItemError(self.display(root), self._not_text(others))

    def _not_text(self, found: Counter[str] | dict[str, int]) -> str:
        """Why nothing was read: which files are there instead, and which loader reads them."""
        kinds, claimed = [], False
        for ext, n in sorted(found.items()):
            owner = self.context.loader_for_path(Path("x" + ext)) if ext.startswith(".") else None
            claimed = claimed or owner is not None
            via = f" (loader {owner.name!r} reads them)" if owner is not None and owner is not type(self) else ""
            kinds.append(f"{n} {ext} file{'s' if n != 1 else ''}{via}")
        fix = (
            "Use `use: files` to read every kind of file with the loader that claims it."
            if claimed else "Check `path` and `glob`."
        )
        return (
            f"loader {self.name!r} reads only {', '.join(sorted(self.extensions))} files and found none, only "
            f"{'; '.join(kinds)}. {fix}"
        )


# -------------------------------------------------------------------------------- JSONL / BEIR


def _check_metadata_fields(value: list[str] | None) -> list[str] | None:
    clash = RESERVED_PAYLOAD_KEYS.intersection(value or ())
    if clash:
        raise ValueError(
            f"{sorted(clash)} are written by the engine for every item and cannot be metadata; "
            f"leave them out"
        )
    return value


class JsonlParams(Params):
    path: str = Field(
        description="A .jsonl file (one JSON object per line), relative to the recipe's folder."
    )
    id_field: str = Field(
        "_id", description="The field holding each record's id (falls back to `id`)."
    )
    text_fields: list[str] = Field(
        default_factory=lambda: ["title", "text"],
        min_length=1,
        description="Fields joined (with newlines, empty ones left out) into the item's text.",
    )
    metadata_fields: list[str] | None = Field(
        None, description="Fields kept as metadata; null keeps every other top-level scalar field."
    )
    chunk: ChunkParams | None = Field(
        None, description="Cut long records into chunks; null keeps each whole."
    )

    _metadata = field_validator("metadata_fields")(_check_metadata_fields)


_SCALARS = (str, int, float, bool)
_INT64 = 2**63 - 1


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write null or a string)")


def _unicode_problem(record: dict[str, Any]) -> str | None:
    """A string of the record that UTF-8 cannot hold (a lone surrogate from a `\\ud800` escape)."""
    for key, value in record.items():
        for text in (key, value):
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return f"field {key.encode('utf-8', 'backslashreplace').decode()!r} holds a lone surrogate (not valid Unicode)"
    return None


def _exact(value: Any) -> Any:
    """Integers past 64 bits are kept as their digits: the store would round them to a float."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64 else value


class JsonlLoader(Loader):
    """Records of a JSONL file, read as a stream; a BEIR corpus.jsonl reads as is."""

    name = "jsonl"
    description = (
        "Records of a JSON Lines file (e.g. a BEIR corpus.jsonl): id, text fields and metadata."
    )
    Params = JsonlParams
    params: JsonlParams
    modality = Modality.TEXT

    def load(self) -> Iterator[Item | ItemError]:
        p = self.params
        path = self.context.path(p.path)
        if not path.is_file():
            what = ("is a folder, not a .jsonl file" if path.is_dir() else
                    (file_problem(path, path.parent, p, named=True) or "is not a regular file").removesuffix("; skipped")
                    if path.exists() else "does not exist")
            raise IngestError(
                f"{self.context.where or f'loader {self.name!r}'}: path {p.path!r} {what} "
                f"(resolved to {path}). Point `path` at the .jsonl file."
            )
        shown = display(self.context, path)
        skip = set(p.text_fields) | RESERVED_PAYLOAD_KEYS
        tokens = token_counter(p.chunk, self.context, self.context.where or f"loader {self.name!r}")
        seen: dict[str, int] = {}
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{shown}:{lineno}"
                if lineno == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")
                try:
                    record = json.loads(line, parse_constant=_not_json_constant)
                except (ValueError, RecursionError) as exc:
                    if isinstance(exc, json.JSONDecodeError):
                        detail = f"{exc.msg} at column {exc.colno}"
                    elif isinstance(exc, RecursionError):
                        detail = "nested too deeply"
                    else:
                        detail = str(exc)
                    yield ItemError(where, f"not valid JSON ({detail}); line skipped")
                    continue
                if not isinstance(record, dict):
                    yield ItemError(
                        where, f"expected a JSON object, got {type(record).__name__}; line skipped"
                    )
                    continue
                problem = _unicode_problem(record)
                if problem:
                    yield ItemError(where, f"{problem}; record skipped")
                    continue
                id_key = p.id_field if p.id_field in record else "id"
                raw_id = record.get(id_key)
                if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
                    yield ItemError(
                        where,
                        f"no usable id in field {p.id_field!r} (nor 'id'); record skipped. "
                        f"Set `id_field` to the field that holds the ids.",
                    )
                    continue
                item_id = str(raw_id)
                if item_id in seen:
                    yield ItemError(
                        where,
                        f"duplicate id {item_id!r} (first on line {seen[item_id]}); record skipped",
                    )
                    continue
                seen[item_id] = lineno
                parts = [record.get(f) for f in p.text_fields]
                text = "\n".join(
                    str(v) for v in parts if isinstance(v, _SCALARS) and str(v).strip()
                )
                if not text:
                    yield ItemError(
                        where, f"record {item_id!r} has no text in {p.text_fields}; skipped"
                    )
                    continue
                if p.metadata_fields is None:
                    meta = {
                        k: _exact(v)
                        for k, v in record.items()
                        if isinstance(v, _SCALARS) and k != id_key and k not in skip
                    }
                else:
                    meta = {k: _exact(record[k]) for k in p.metadata_fields if k in record}
                yield from text_items(text, item_id, p.chunk, meta, f"{shown}#{item_id}", token_starts=tokens)


class BeirParams(Params):
    path: str = Field(
        description="A BEIR data set folder holding corpus.jsonl (or the corpus.jsonl itself)."
    )
    chunk: ChunkParams | None = Field(
        None, description="Cut long documents into chunks; null keeps each whole."
    )


class BeirLoader(Loader):
    """The corpus of a BEIR-layout data set (`_id`, `title`, `text`); queries and qrels are eval's."""

    name = "beir"
    description = "The corpus.jsonl of a BEIR-layout data set folder."
    Params = BeirParams
    params: BeirParams
    modality = Modality.TEXT

    def load(self) -> Iterator[Item | ItemError]:
        folder = self.context.path(self.params.path)
        corpus = folder if folder.suffix == ".jsonl" else folder / "corpus.jsonl"
        if corpus.exists() and not corpus.is_file():  # a FIFO or a device would block the read
            what = (file_problem(corpus, corpus.parent, self.params, named=True) or "is not a regular file")
            raise IngestError(f"{self.context.where or f'loader {self.name!r}'}: {corpus} "
                              f"{what.removesuffix('; skipped')}; a BEIR corpus is a .jsonl file")
        if not corpus.is_file():
            raise IngestError(
                f"{self.context.where or f'loader {self.name!r}'}: no corpus.jsonl in {self.params.path!r} "
                f"(resolved to {folder}). A BEIR folder holds corpus.jsonl, queries.jsonl and qrels/."
            )
        inner = JsonlLoader(JsonlParams(path=str(corpus), chunk=self.params.chunk), self.context)
        yield from inner.load()


# -------------------------------------------------------------------------------------- images

_EXIF_ORIENTATION = 0x0112
_TAILS = {"JPEG": (b"\xff\xd9", 4096), "MPO": (b"\xff\xd9", 4096), "PNG": (b"IEND", 64)}
"""End markers that a complete file of the format holds near its end, and how far to look."""


def _truncated(path: Path, fmt: str | None) -> bool:
    """Whether a JPEG or PNG file lacks its end marker (cut off); reads only the file's tail."""
    if fmt not in _TAILS:
        return False
    marker, span = _TAILS[fmt]
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - span))
        return marker not in fh.read()


class ImagesParams(SourceParams):
    decode: bool = Field(
        False,
        description="Decode every image fully to catch corrupt pixel data (slower); "
        "otherwise only the header and the file's end are checked.",
    )


class ImagesLoader(FileLoader):
    """Image files as image items; width and height read from the header (EXIF rotation applied)."""

    name = "images"
    description = "Image files (jpg, png, webp, gif, bmp, tif) from a file or folder."
    modality, extra = Modality.IMAGE, "image"
    extensions = extensions_of(modality)
    Params = ImagesParams
    params: ImagesParams

    def load_file(self, path: Path, root: Path) -> Iterator[Item | ItemError]:
        try:
            from PIL import Image
        except ImportError as exc:
            raise MissingDependencyError(f"loader {self.name!r}", "pillow", "image") from exc
        rel = relpath(path, root)
        try:
            with Image.open(path) as img:
                fmt = img.format
                width, height = img.size
                exif = img.getexif() if fmt != "PNG" or "exif" in img.info else None
                if exif is not None and exif.get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                    width, height = height, width
                if self.params.decode:
                    img.load()
            if not self.params.decode and _truncated(path, fmt):
                raise OSError(f"the {fmt} data is cut off (no end marker)")
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            yield ItemError(
                self.display(path), f"not a readable image ({type(exc).__name__}: {exc}); skipped"
            )
            return
        meta = {"file": rel, "width": width, "height": height, "format": fmt}
        yield Item(self.params.id_prefix + rel, Modality.IMAGE, Media(path=path.resolve()), meta, source=rel)


# ------------------------------------------------------------------------------- files walker


class FilesParams(SourceParams):
    chunk: ChunkParams | None = Field(
        ChunkParams(), description="Chunking for loaders that cut text; null keeps each file whole."
    )


class FilesLoader(FileLoader):
    """Walks a folder and hands each file to the loader whose `extensions` claim it."""

    name = "files"
    description = "Every file of a folder, each read by the loader that claims its extension."
    Params = FilesParams
    params: FilesParams

    def load(self) -> Iterator[Item | ItemError]:
        root, files = self.files()
        loaders: dict[type[Loader], Loader | ItemError] = {}
        unclaimed: Counter[str] = Counter()
        for path, _ in files:
            cls = self.context.loader_for_path(path)
            if cls is None or issubclass(cls, FilesLoader):
                unclaimed[path.suffix.lower() or "(no extension)"] += 1
                continue
            loader = loaders.get(cls)
            if loader is None:
                loader = loaders[cls] = self._make(cls, root)
                if isinstance(loader, ItemError):
                    yield loader
            if isinstance(loader, ItemError):
                continue
            try:
                yield from loader.load_file(path, root)
            except NotImplementedError:
                loaders[cls] = err = ItemError(
                    self._where(),
                    f"loader {cls.name!r} claims {path.suffix} files but cannot load single files; skipped them",
                )
                yield err
        if unclaimed:
            total = sum(unclaimed.values())
            exts = ", ".join(sorted(unclaimed))
            yield ItemError(
                self.display(root),
                f"{total} file{'s' if total != 1 else ''} skipped: no loader for extensions {exts}. "
                f"Narrow `glob`, add them to `exclude`, or install a plugin that loads them.",
            )

    def _make(self, cls: type[Loader], root: Path) -> Loader | ItemError:
        """The loader `cls` with the walker's fields that its Params accept."""
        # the reading limits pass on only when the recipe sets them: each loader has its own default
        limits = {k for k in ("max_file_mb", "symlinks") if k in self.params.model_fields_set}
        shared = self.params.model_dump(include={"glob", "exclude", "id_prefix", *limits})
        shared["path"] = str(root)
        chunk = self.params.chunk
        shared["chunk"] = chunk.model_dump() if chunk is not None else None
        fields = cls.Params.model_fields
        try:
            params = cls.Params(**{k: v for k, v in shared.items() if k in fields})
        except ValidationError as exc:
            return ItemError(
                self._where(),
                f"loader {cls.name!r} cannot be set up from the walker's fields ({exc}); its files were skipped",
            )
        return cls(params, self.context)


@hookimpl
def register_loaders(register: Callable[[type[Loader]], None]) -> None:
    for cls in (TextFilesLoader, JsonlLoader, BeirLoader, ImagesLoader, FilesLoader):
        register(cls)
