"""PDF, HTML and DOCX loaders (issue 15.1) on files written by the real libraries, and a folder
of all of them (with Markdown front matter) ingested and searched with filters."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_loaders import split, write

from prismrag.cli import main
from prismrag.contracts import Context
from prismrag.plugins import document_loaders as D
from prismrag.plugins import loaders as L
from prismrag.testing import check_loader

fpdf = pytest.importorskip("fpdf")
docx = pytest.importorskip("docx")
pytest.importorskip("bs4")
pytest.importorskip("pypdf")


def context(base: Path) -> Context:
    by_ext = {ext: cls for cls in (L.TextFilesLoader, D.PdfLoader, D.HtmlLoader, D.DocxLoader) for ext in cls.extensions}
    return Context(base_dir=base, where="test.yaml: sources[0]", loader_for_path=lambda p: by_ext.get(p.suffix.lower()))


def load(cls, base: Path, **params):
    return split(list(cls(cls.Params(**params), context(base)).load()))


def make_pdf(path: Path, pages: list[str | None], title: str | None = "Retrieval notes") -> Path:
    """A PDF with one page per entry: its text, or (None) a page holding only an image, as a scan."""
    from PIL import Image

    pdf = fpdf.FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_author("Ada")
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text is None:
            buf = io.BytesIO()
            Image.new("RGB", (40, 20), (200, 180, 160)).save(buf, "PNG")
            pdf.image(buf, x=10, y=10, w=80)
        else:
            pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


HTML = """<!doctype html><html lang="en"><head><title>Hybrid search guide</title>
<style>body { color: red }</style><script>var tracking = "SECRET-SCRIPT";</script></head>
<body><nav><a href="/">Home</a> <a href="/blog">Blog navigation link</a></nav>
<main><h1>Hybrid search</h1><p>Dense and sparse retrievers are <a href="https://example.com/rrf">fused</a> with RRF.</p>
<h2>Weights</h2><p>Each retriever gets a weight.<br>Tune it on qrels.</p>
<table><tr><th>k</th><th>value</th></tr><tr><td>rrf</td><td>60</td></tr></table></main>
<footer>Copyright footer text</footer><noscript>enable js</noscript></body></html>"""


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.core_properties.title = "Quarterly report"
    document.core_properties.author = "Bo"
    document.add_heading("Results", level=1)
    document.add_paragraph("Revenue grew in every region.")
    document.add_heading("Europe", level=2)
    document.add_paragraph("Sales in Europe doubled thanks to retrieval tools.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("region", "growth"), ("Europe", "100%")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def test_pdf_pages_titles_and_pages_without_text(tmp_path):
    make_pdf(tmp_path / "docs/notes.pdf", ["First page about dense retrieval.", None, "Third page on reranking."])
    items, errors = load(D.PdfLoader, tmp_path, path="docs")
    assert [(i.id, i.span.page) for i in items] == [("notes.pdf#0", 1), ("notes.pdf#1", 3)]
    assert "dense retrieval" in items[0].text and "reranking" in items[1].text
    assert items[0].metadata == {"file": "notes.pdf", "title": "Retrieval notes", "pages": 3, "author": "Ada"}
    assert items[1].parent_id == "notes.pdf"
    assert [str(e) for e in errors] == [
        "docs/notes.pdf: page 2 of 3 has no text layer (scanned images?); those pages were skipped. Add a text layer "
        "with OCR (e.g. `ocrmypdf in.pdf out.pdf`) to index them."
    ]
    make_pdf(tmp_path / "scans/scan.pdf", [None, None], title=None)
    write(tmp_path, "scans/broken.pdf", b"%PDF-1.4 this is not really a pdf")
    items, errors = load(D.PdfLoader, tmp_path, path="scans")
    assert items == [] and len(errors) == 2
    assert "not a readable PDF" in str(errors[0]) and "broken.pdf" in str(errors[0])
    assert "every page of 2 have no text layer" in str(errors[1])


def test_long_pdf_pages_are_chunked_within_their_page(tmp_path):
    long = " ".join(f"Sentence {i} talks about vectors." for i in range(40))
    make_pdf(tmp_path / "long.pdf", [long, "Short second page."])
    items, _ = load(D.PdfLoader, tmp_path, path="long.pdf", chunk={"size": 300, "overlap": 40})
    pages = [i.span.page for i in items]
    assert pages == sorted(pages) and pages[-1] == 2 and pages.count(1) > 2
    assert [i.id for i in items] == [f"long.pdf#{n}" for n in range(len(items))]


def test_html_main_text_title_no_scripts_styles_navigation_or_links(tmp_path):
    write(tmp_path, "site/guide.html", HTML)
    (item,), errors = load(D.HtmlLoader, tmp_path, path="site", chunk=None)
    assert errors == []
    assert item.metadata == {"file": "guide.html", "title": "Hybrid search guide", "lang": "en"}
    text = item.text
    assert "Dense and sparse retrievers are fused with RRF." in text
    assert "Each retriever gets a weight.\nTune it on qrels." in text and "rrf | 60" in text
    for gone in ("SECRET-SCRIPT", "color: red", "Blog navigation link", "Copyright footer", "https://", "enable js"):
        assert gone not in text
    chunks, _ = load(D.HtmlLoader, tmp_path, path="site", chunk={"size": 60, "overlap": 10})
    assert chunks[-1].metadata["headings"] == ["Hybrid search", "Weights"]
    article = "<html><body><header>Site banner</header><article><header><h1>Post title</h1></header><p>Body.</p>"
    write(tmp_path, "blog/post.htm", article + "<footer>by Ann</footer></article><footer>Site footer</footer></body></html>")
    (post,), _ = load(D.HtmlLoader, tmp_path, path="blog", chunk=None)
    assert post.text == "# Post title\n\nBody.\n\nby Ann" and post.metadata["title"] == "Post title"
    write(tmp_path, "empty/blank.htm", "<html><script>x()</script><body><nav>menu</nav></body></html>")
    assert "no text outside scripts" in str(load(D.HtmlLoader, tmp_path, path="empty")[1][0])


def test_docx_paragraphs_headings_tables_and_properties(tmp_path):
    make_docx(tmp_path / "reports/q3.docx")
    write(tmp_path, "reports/bad.docx", b"PK not a zip")
    items, errors = load(D.DocxLoader, tmp_path, path="reports", chunk={"size": 80, "overlap": 0})
    assert "not a readable .docx" in str(errors[0]) and len(errors) == 1
    assert items[0].metadata["title"] == "Quarterly report" and items[0].metadata["author"] == "Bo"
    assert items[0].metadata["created"][:2] == "20"  # an ISO date string, filterable with >=
    text = "".join(i.text for i in items)
    assert "Revenue grew in every region." in text and "Europe | 100%" in text
    assert items[-1].metadata["headings"] == ["Results", "Europe"]


def test_document_loaders_keep_the_loader_contract(tmp_path):
    good = {
        D.PdfLoader: make_pdf(tmp_path / "a.pdf", ["Contract check page."]),
        D.HtmlLoader: write(tmp_path, "b.html", HTML),
        D.DocxLoader: make_docx(tmp_path / "c.docx"),
    }
    for cls, path in good.items():
        bad = write(tmp_path, f"bad{path.suffix}", b"\x00\x01 broken" if path.suffix != ".html" else "<p> </p>")
        check_loader(cls, [path], bad)


def test_text_files_on_a_folder_of_pdfs_says_why_it_found_nothing(tmp_path):
    make_pdf(tmp_path / "papers/a.pdf", ["A paper."])
    make_pdf(tmp_path / "papers/b.pdf", ["Another paper."])
    items, errors = load(L.TextFilesLoader, tmp_path, path="papers")
    assert items == [] and [str(e) for e in errors] == [
        "papers: loader 'text-files' reads only .markdown, .md, .rst, .txt files and found none, only 2 .pdf files "
        "(loader 'pdf' reads them). Use `use: files` to read every kind of file with the loader that claims it."
    ]
    items, errors = load(L.TextFilesLoader, tmp_path, path="papers/a.pdf")
    assert items == [] and "found none, only 1 .pdf file (loader 'pdf' reads them)" in str(errors[0])


FRONT = """---
title: RAG in practice
tags: [rag, search]
date: 2024-03-05
draft: false
---
# Heading that is not the title

Body text about retrieval augmented generation.
"""


def test_acceptance_folder_of_documents_ingests_with_pages_titles_and_filterable_fields(tmp_path, capsys):
    """The issue's acceptance: a PDF, an HTML page, a DOCX file and Markdown with front matter, read by
    `files`, ingested, and searched with `tags contains rag` and `date>=2024-01-01` from the CLI."""
    folder = tmp_path / "mixed"
    make_pdf(folder / "paper.pdf", ["Retrieval on page one.", "Generation on page two."])
    write(folder, "page.html", HTML)
    make_docx(folder / "report.docx")
    write(folder, "post.md", FRONT)
    write(folder, "old.md", FRONT.replace("2024-03-05", "2023-01-02").replace("[rag, search]", "[misc]"))
    recipe = tmp_path / "docs.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: docs
        store: {use: qdrant-edge, path: store}
        sources: [{use: files, path: mixed}]
        retrievers:
          keywords: {encoder: {use: bm25}}
        """))

    def prism(*args: str) -> SimpleNamespace:
        code = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    done = prism("ingest", str(recipe), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stderr
    found = prism("search", str(recipe), "retrieval generation", "--json", "--top-k", "20")
    hits = {h["id"]: h["payload"] for h in json.loads(found.stdout)}
    assert {hits["paper.pdf#0"]["span"]["page"], hits["paper.pdf#1"]["span"]["page"]} == {1, 2}
    assert hits["post.md#0"]["title"] == "RAG in practice" and "---" not in hits["post.md#0"]["text"]
    tagged = prism("search", str(recipe), "retrieval", "--json", "--filter", "tags contains rag")
    assert [h["id"] for h in json.loads(tagged.stdout)] == ["post.md#0"]
    recent = prism("search", str(recipe), "retrieval", "--json", "--filter", "date>=2024-01-01")
    assert [h["id"] for h in json.loads(recent.stdout)] == ["post.md#0"]
    titles = prism("items", "list", str(recipe), "--json", "--limit", "0")
    by_file = {i["payload"]["file"]: i["payload"]["title"] for i in json.loads(titles.stdout)["items"]}
    assert by_file == {"old.md": "RAG in practice", "page.html": "Hybrid search guide", "paper.pdf": "Retrieval notes",
                       "post.md": "RAG in practice", "report.docx": "Quarterly report"}


def test_prism_plugins_imports_no_document_library():
    code = "import sys; from prismrag.cli import main; main(['plugins']); print(sorted({'pypdf', 'docx', 'bs4'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_document_path_as_query_says_it_is_not_text(tmp_path):
    from prismrag.errors import QueryError
    from prismrag.query import as_query
    from prismrag.types import Modality

    pdf = make_pdf(tmp_path / "paper.pdf", ["Some text."])
    claimed = {".pdf": Modality.TEXT}
    with pytest.raises(QueryError, match="is a .pdf document, not a text query"):
        as_query(str(pdf), None, claimed)
    assert as_query(str(pdf), "text", claimed).content == str(pdf)
