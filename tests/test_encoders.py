"""Behaviour of the built-in encoders with tiny models built on disk (no downloads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from prismrag import Context, Media, Modality, Query, Registry
from prismrag.errors import (
    ItemError,
    MissingDependencyError,
    ModelNotAvailableError,
    PrismError,
    QueryError,
)
from prismrag.plugins.bm25_encoder import ENGLISH_STOP_WORDS, BM25Encoder, term_id
from prismrag.plugins.open_clip_encoder import OpenClipEncoder
from prismrag.plugins.sentence_transformers_encoder import SentenceTransformerEncoder
from prismrag.support.models import model_errors, resolve_model_path
from prismrag.types import SparseBatch

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **env}
    )


def _import_open_clip() -> None:
    from prismrag.support.torch_compat import ensure_torchvision_ops

    ensure_torchvision_ops()
    import open_clip  # noqa: F401


def _norms(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v, axis=1)


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_st(tmp_path_factory) -> Path:
    from tiny_models import build_tiny_sentence_transformer

    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    from tiny_models import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny-clip"))


def st(model: Path | str, context: Context | None = None, **params) -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(SentenceTransformerEncoder.Params(model=str(model), **params), context)


def clip(tiny_clip: tuple[Path, Path], context: Context | None = None, **params) -> OpenClipEncoder:
    config, checkpoint = tiny_clip
    params = {"model_config": str(config), "pretrained": str(checkpoint), **params}
    return OpenClipEncoder(OpenClipEncoder.Params.model_validate(params), context)


TEXTS = ["the cat sat on the mat", "a dog barks at night", "vitamin D and bone health"]

# ---------------------------------------------------------------------- import hygiene


def test_plugin_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import prismrag.plugins.sentence_transformers_encoder, prismrag.plugins.bm25_encoder\n"
        "import prismrag.plugins.open_clip_encoder, prismrag.support.models, prismrag.support.torch_compat\n"
        "from prismrag.registry import Registry\n"
        "names = sorted(Registry().components('encoder'))\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'open_clip', 'transformers', 'Stemmer') if m in sys.modules]\n"
        "print(names, heavy)\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    for name in ("'bm25'", "'open-clip'", "'sentence-transformers'"):
        assert name in out.stdout
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_compat_skips_when_torchvision_is_absent():
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "from prismrag.support import torch_compat as _compat\n"
        "_compat.ensure_torchvision_ops(); _compat.ensure_torchvision_ops()\n"
        "print(_compat.declared, 'torch' in sys.modules)\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_compat_makes_torchvision_importable_and_is_idempotent(tiny_clip):
    # the session already ran it (fixtures); a second and third call change nothing
    from prismrag.support.torch_compat import ensure_torchvision_ops

    ensure_torchvision_ops()
    ensure_torchvision_ops()
    import torchvision.transforms  # noqa: F401

    assert "open_clip" in sys.modules


# ------------------------------------------------------------------------ model lookup


def test_resolve_model_path_order(tmp_path, monkeypatch):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    ctx = Context(base_dir=tmp_path, resolve_model=lambda name: "/shipped/x" if name == "org/shipped" else None)
    assert resolve_model_path("models/mine", ctx, "t") == str(tmp_path / "models" / "mine")
    assert resolve_model_path("org/shipped", ctx, "t") == "/shipped/x"
    with pytest.raises(ModelNotAvailableError, match="org/absent"):
        resolve_model_path("org/absent", ctx, "t")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PRISMRAG_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    probed: list[str] = []
    monkeypatch.setattr("prismrag.support.models.probe_hub", lambda repo, component, label=None: probed.append(repo))
    assert resolve_model_path("org/absent", ctx, "t") == "org/absent"  # the caller downloads it
    assert probed == ["org/absent"]
    monkeypatch.setenv("PRISMRAG_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError):
        resolve_model_path("org/absent", ctx, "t")


def test_resolve_model_path_finds_the_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = tmp_path / "models--org--cached" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve_model_path("org/cached", Context(), "t") == str(snapshot)


def test_model_errors_turns_fetch_failures_into_model_not_available():
    with pytest.raises(ModelNotAvailableError) as info, model_errors("org/m", "enc"):
        try:
            raise OSError("connection refused")
        except OSError as exc:
            raise RuntimeError("Failed to download weights") from exc
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError), model_errors("org/m", "enc"):
        raise ValueError("not a fetch problem")
    with pytest.raises(OSError), model_errors("org/m", "enc", remote=False):
        raise OSError("a broken local folder")


def test_import_optional_names_the_missing_package_and_extra(tmp_path, monkeypatch):
    from prismrag.support.models import import_optional

    with pytest.raises(MissingDependencyError, match=r"'no-such-dist'.*prismrag\[image\]"):
        import_optional("no_such_module_xyz", "enc", "image", package="no-such-dist")
    (tmp_path / "half_installed.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError, match="'no_such_dependency_xyz'") as info:
        import_optional("half_installed", "enc", "text")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert import_optional("json", "enc", "text").dumps([]) == "[]"


# ------------------------------------------------------------------ sentence-transformers


def test_st_shapes_dtype_and_norms(tiny_st):
    enc = st(tiny_st)
    docs = enc.encode_batch(TEXTS, Modality.TEXT, "document")
    assert docs.shape == (3, 32) and docs.dtype == np.float32
    np.testing.assert_allclose(_norms(docs), 1.0, atol=1e-5)
    assert enc.dimension() == 32
    query = enc.encode_query(Query.text(TEXTS[0]))
    np.testing.assert_allclose(query[0], docs[0], atol=1e-5)  # no prompts: symmetric
    raw = st(tiny_st, normalize=False).encode_batch(TEXTS, Modality.TEXT, "document")
    assert not np.allclose(_norms(raw), 1.0)
    np.testing.assert_allclose(raw / _norms(raw)[:, None], docs, atol=1e-5)
    assert st(tiny_st).encode_batch([Media(data=TEXTS[1].encode())], Modality.TEXT, "document").shape == (1, 32)


def test_st_truncate_dim(tiny_st):
    full = st(tiny_st, normalize=False).encode_batch(TEXTS, Modality.TEXT, "document")
    enc = st(tiny_st, truncate_dim=8)
    short = enc.encode_batch(TEXTS, Modality.TEXT, "document")
    assert short.shape == (3, 8) and enc.dimension() == 8
    np.testing.assert_allclose(short, full[:, :8] / _norms(full[:, :8])[:, None], atol=1e-5)
    with pytest.raises(PrismError, match="truncate_dim 64 exceeds"):
        st(tiny_st, truncate_dim=64).dimension()


def test_st_prompts(tiny_st):
    plain = st(tiny_st)
    prefixed = st(tiny_st, query_prompt="query: ")
    named = st(tiny_st, query_prompt_name="query")
    q_plain = plain.encode_batch(TEXTS, Modality.TEXT, "query")
    q_prefixed = prefixed.encode_batch(TEXTS, Modality.TEXT, "query")
    assert not np.allclose(q_plain, q_prefixed, atol=1e-3)
    np.testing.assert_allclose(named.encode_batch(TEXTS, Modality.TEXT, "query"), q_prefixed, atol=1e-5)
    # the query prompt leaves documents alone
    np.testing.assert_allclose(
        prefixed.encode_batch(TEXTS, Modality.TEXT, "document"),
        plain.encode_batch(TEXTS, Modality.TEXT, "document"),
        atol=1e-6,
    )
    with pytest.raises(PrismError, match="its prompts: document, query"):
        st(tiny_st, document_prompt_name="passage").dimension()
    with pytest.raises(ValidationError, match="not both"):
        SentenceTransformerEncoder.Params(model="m", query_prompt="q: ", query_prompt_name="query")


def test_st_fingerprint_tracks_what_changes_vectors(tiny_st):
    base = st(tiny_st).fingerprint()
    assert st(tiny_st, batch_size=4, device="cpu").fingerprint() == base
    assert st(tiny_st, trust_remote_code=True).fingerprint() == base
    for change in ({"normalize": False}, {"truncate_dim": 8}, {"query_prompt": "q: "}, {"max_seq_length": 16}):
        assert st(tiny_st, **change).fingerprint() != base, change
    assert st("other/model").fingerprint() != base


def test_st_relative_path_and_max_seq_length(tiny_st):
    enc = st(tiny_st.name, Context(base_dir=tiny_st.parent), max_seq_length=5, batch_size=2)
    long_text = " ".join(["word"] * 50)
    vecs = enc.encode_batch([long_text, long_text + " and more words at the end"], Modality.TEXT, "document")
    assert enc.model.max_seq_length == 5
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-6)  # both cut at 5 tokens


def test_st_rejects_other_modalities(tiny_st):
    with pytest.raises(QueryError, match="does not embed image"):
        st(tiny_st).encode_batch([Media(data=b"x")], Modality.IMAGE, "query")


def test_st_model_is_put_in_eval_mode_once_not_on_every_encode(tiny_st, monkeypatch):
    import torch
    from sentence_transformers import SentenceTransformer

    enc = st(tiny_st)
    query = Query.text("vitamin D and bone health")
    first = enc.encode_query(query)
    model = enc.model
    assert not any(m.training for m in model.modules())
    walked: list[object] = []
    module_train = torch.nn.Module.train
    monkeypatch.setattr(torch.nn.Module, "train", lambda self, mode=True: walked.append(self) or module_train(self, mode))
    again = enc.encode_query(query)
    assert walked == []  # sentence-transformers' per-call model.eval() no longer walks the modules
    np.testing.assert_array_equal(first, again)
    model.train()  # fine-tuning the loaded model still reaches every module...
    assert all(m.training for m in model.modules())
    np.testing.assert_array_equal(enc.encode_query(query), first)  # ...and the next encode is in eval mode again
    assert not any(m.training for m in model.modules())
    monkeypatch.undo()
    plain = SentenceTransformer(str(tiny_st), device="cpu").encode([query.content], normalize_embeddings=True)
    np.testing.assert_allclose(first, plain, rtol=1e-6, atol=1e-7)


def test_minilm_resolves_offline_through_the_hook():
    registry = Registry()
    path = registry.resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert path and (Path(path) / "modules.json").exists()
    assert registry.resolve_model("all-MiniLM-L6-v2") == path
    assert registry.resolve_model("sentence-transformers/other") is None


def test_shipped_minilm_embeds_offline():
    registry = Registry()
    enc = st("sentence-transformers/all-MiniLM-L6-v2", Context(resolve_model=registry.resolve_model))
    texts = ["How do I write a plugin?", "A guide to writing plugins", "The weather is sunny today"]
    vecs = enc.encode_batch(texts, Modality.TEXT, "query")
    assert vecs.shape == (3, 384) and enc.dimension() == 384
    np.testing.assert_allclose(_norms(vecs), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2


def test_missing_model_offline_fails_fast():
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="org/definitely-not-here"):
        st("org/definitely-not-here").dimension()
    assert time.perf_counter() - start < 3


def test_missing_model_online_fails_fast_too(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PRISMRAG_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PRISMRAG_HUB_PROBE_TIMEOUT", "3")
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="prismrag-tests/no-such-model"):
        st("prismrag-tests/no-such-model").dimension()
    assert time.perf_counter() - start < 10  # one probe, not the hub client's retries per file
    _import_open_clip()  # the import takes seconds of its own; time the failure only
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="ViT-B-32/laion2b_s34b_b79k"):
        OpenClipEncoder(OpenClipEncoder.Params(model="ViT-B-32", pretrained="laion2b_s34b_b79k")).dimension()
    assert time.perf_counter() - start < 10


# ----------------------------------------------------------------------------------- bm25


def bm25(**params) -> BM25Encoder:
    return BM25Encoder(BM25Encoder.Params(**params))


def test_bm25_tokenize_stems_and_drops_stop_words():
    enc = bm25()
    assert enc.tokenize("The running dogs were barking at the Cats!") == ["run", "dog", "bark", "cat"]
    assert enc.tokenize("state-of-the-art COVID_19 ünïcode") == ["state", "art", "covid", "19", "ünïcode"]
    assert bm25(stopwords=False).tokenize("the cats") == ["the", "cat"]
    assert bm25(stopwords=["cats"]).tokenize("the cats") == ["the"]
    assert bm25(stemmer=False).tokenize("the running dogs") == ["running", "dogs"]
    assert bm25(lowercase=False, stemmer=False).tokenize("The Cats") == ["Cats"]
    assert bm25(lowercase=False, stopwords=["Cats"]).tokenize("The cats CATS dogs") == ["The", "dog"]
    assert bm25(min_token_len=3, max_token_len=5).tokenize("ox cat elephant horse") == ["cat", "hors"]
    assert {"the", "and", "of"} <= ENGLISH_STOP_WORDS


def test_bm25_params_are_checked():
    with pytest.raises(ValidationError, match="English"):
        BM25Encoder.Params(language="german")
    assert bm25(language="german", stopwords=["der", "die"]).tokenize("Die Häuser") == ["haus"]
    with pytest.raises(PrismError, match="no stemmer for language 'klingon'"):
        bm25(language="klingon", stopwords=False)
    with pytest.raises(ValidationError):
        BM25Encoder.Params(k1=1.0, typo=True)


def test_bm25_document_values_match_the_formula():
    enc = bm25()  # k1 1.2, b 0.75, avg_len 256
    batch = enc.encode_batch(["cat cat dog"], Modality.TEXT, "document")
    values = dict(zip(batch.indices.tolist(), batch.values.tolist(), strict=True))
    # dl = 3; cat: tf 2 -> 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / 256)) = 4.4 / 2.310546875
    assert values[term_id("cat")] == pytest.approx(1.904294, rel=1e-5)
    # dog: tf 1 -> 2.2 / 1.310546875
    assert values[term_id("dog")] == pytest.approx(1.678689, rel=1e-5)
    longer = bm25(avg_len=1.5).encode_batch(["cat cat dog"], Modality.TEXT, "document")
    assert dict(zip(longer.indices.tolist(), longer.values.tolist(), strict=True))[term_id("dog")] == pytest.approx(
        2.2 / (1 + 1.2 * (0.25 + 0.75 * 3 / 1.5)), rel=1e-6
    )


def test_bm25_queries_weigh_each_distinct_term_once():
    batch = bm25().encode_batch(["cats and cat and dogs", "the of and"], Modality.TEXT, "query")
    assert batch.indptr.tolist() == [0, 2, 2]  # cat (twice) and dog; the stop-word query is empty
    assert batch.values.tolist() == [1.0, 1.0]
    assert sorted(batch.indices.tolist()) == sorted([term_id("cat"), term_id("dog")])


def test_bm25_empty_batch_and_empty_texts():
    empty = bm25().encode([], Modality.TEXT, "document")
    assert len(empty) == 0 and empty.indptr.tolist() == [0]
    blank = bm25().encode_batch(["", "  ", "!!!"], Modality.TEXT, "document")
    assert blank.indptr.tolist() == [0, 0, 0, 0] and len(blank.indices) == 0


def test_bm25_csr_layout():
    texts = ["alpha beta beta gamma", "", "beta delta", "the and of"] * 3
    batch = bm25().encode_batch(texts, Modality.TEXT, "document")
    assert isinstance(batch, SparseBatch) and len(batch) == 12
    assert batch.indptr.dtype == np.int64 and batch.indices.dtype == np.int64 and batch.values.dtype == np.float32
    assert batch.indptr[0] == 0 and np.all(np.diff(batch.indptr) >= 0) and batch.indptr[-1] == len(batch.indices)
    assert np.diff(batch.indptr).tolist() == [3, 0, 2, 0] * 3
    for i in range(len(batch)):
        idx, _ = batch.row(i)
        assert np.all(np.diff(idx) > 0)  # sorted, no duplicates
    assert batch.indices.min() >= 0 and batch.indices.max() < 2**32


def test_bm25_hash_is_stable():
    assert term_id("cat") == zlib.crc32(b"cat") == 2656977832
    a = bm25().encode_batch(["Stable hashing of terms"], Modality.TEXT, "document")
    b = bm25().encode_batch(["Stable hashing of terms"], Modality.TEXT, "document")
    assert a.indices.tolist() == b.indices.tolist() == sorted(term_id(t) for t in ["stabl", "hash", "term"])


def test_bm25_with_index_idf_matches_reference_bm25():
    """tf part from the encoder x IDF (as the index computes it) equals bm25s's Lucene BM25."""
    bm25s = pytest.importorskip("bm25s")
    corpus = [
        "the cat sat on the mat with another cat",
        "dogs chase cats in the garden",
        "a quick brown fox jumps over the lazy dog",
        "cats and dogs living together, mass hysteria",
        "bone health needs vitamin D and calcium",
        "vitamin C is found in citrus fruit",
    ]
    queries = ["cat on a mat", "vitamin for bone", "lazy dogs"]
    enc = bm25()
    tokens = [enc.tokenize(t) for t in corpus]
    avg = float(np.mean([len(t) for t in tokens]))
    enc = bm25(avg_len=avg)
    docs = enc.encode_batch(corpus, Modality.TEXT, "document")
    n = len(corpus)
    df: dict[int, int] = {}
    for i in range(n):
        for t in docs.row(i)[0].tolist():
            df[t] = df.get(t, 0) + 1
    ref = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    ref.index(tokens, show_progress=False)
    for q in queries:
        qv = enc.encode_batch([q], Modality.TEXT, "query")
        ours = np.zeros(n)
        for t, w in zip(qv.indices.tolist(), qv.values.tolist(), strict=True):
            idf = np.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5))
            for i in range(n):
                idx, val = docs.row(i)
                hit = np.nonzero(idx == t)[0]
                if hit.size:
                    ours[i] += w * idf * val[hit[0]]
        expected = ref.get_scores(enc.tokenize(q)) * (1.2 + 1)  # Lucene drops the constant (k1 + 1)
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_bm25_is_fast_on_thousands_of_abstracts():
    rng = np.random.default_rng(0)
    words = np.array([f"term{i}x" for i in range(20000)])
    texts = [" ".join(rng.choice(words, 200)) + " The results of the study were significant." for _ in range(3000)]
    enc = bm25()
    start = time.perf_counter()
    batch = enc.encode_batch(texts, Modality.TEXT, "document")
    assert time.perf_counter() - start < 5.0  # ~0.5 s on an idle 2-core machine; per-character loops take 10x
    assert len(batch) == 3000


def test_bm25_missing_stemmer_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "Stemmer", None)
    with pytest.raises(MissingDependencyError, match=r'prismrag\[sparse\]'):
        bm25()
    assert bm25(stemmer=False).tokenize("cats") == ["cats"]


def test_bm25_declares_sparse_idf():
    assert BM25Encoder.output == "sparse" and BM25Encoder.sparse_idf and BM25Encoder.metric == "dot"
    with pytest.raises(QueryError):
        bm25().encode_batch([Media(data=b"x")], Modality.IMAGE, "document")


# ------------------------------------------------------------------------------ open-clip


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    from PIL import Image

    rng = np.random.default_rng(1)
    out: dict[str, Path] = {}
    pattern = np.zeros((40, 64, 3), np.uint8)  # wide, and not symmetric: rotation changes it
    pattern[:, :20] = (230, 30, 30)
    pattern[:10, 20:] = (30, 30, 230)
    Image.fromarray(pattern).save(out.setdefault("png", tmp_path / "flag.png"))
    noise = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(out.setdefault("jpeg", tmp_path / "noise.jpg"), quality=95)
    Image.fromarray(noise[:, :, 0]).save(out.setdefault("gray", tmp_path / "gray.png"))
    # a JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pattern).save(out.setdefault("exif", tmp_path / "rotated.jpg"), quality=95, exif=exif)
    with Image.open(out["exif"]) as img:  # the same decoded pixels, without EXIF, as stored and as displayed
        img.load()
        img.save(out.setdefault("exif_stored", tmp_path / "stored.png"))
        from PIL import ImageOps

        ImageOps.exif_transpose(img).save(out.setdefault("exif_shown", tmp_path / "shown.png"))
    data = out["jpeg"].read_bytes()
    out["truncated"] = tmp_path / "truncated.jpg"
    out["truncated"].write_bytes(data[: len(data) // 3])
    out["garbage"] = tmp_path / "garbage.png"
    out["garbage"].write_bytes(b"not an image at all")
    return out


def test_open_clip_embeds_images_and_text_in_one_space(tiny_clip, images):
    enc = clip(tiny_clip)
    paths = [images[k] for k in ("png", "jpeg", "gray", "exif")]
    media = [Media(path=p) for p in paths] + [Media(data=images["png"].read_bytes())]
    vecs = enc.encode_batch(media, Modality.IMAGE, "document")
    assert vecs.shape == (5, 24) and vecs.dtype == np.float32
    np.testing.assert_allclose(_norms(vecs), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs[0], vecs[4], atol=1e-6)  # path or bytes: same image, same vector
    text = enc.encode_batch(["a red and blue flag", "noise"], Modality.TEXT, "query")
    assert text.shape == (2, 24) and enc.dimension() == 24
    np.testing.assert_allclose(_norms(text), 1.0, atol=1e-5)
    image_query = enc.encode_batch([Media(path=paths[0])], Modality.IMAGE, "query")
    np.testing.assert_allclose(image_query[0], vecs[0], atol=1e-6)
    small_batches = clip(tiny_clip, batch_size=2).encode_batch(media, Modality.IMAGE, "document")
    np.testing.assert_allclose(small_batches, vecs, atol=1e-5)


def test_open_clip_applies_exif_orientation(tiny_clip, images):
    enc = clip(tiny_clip)
    exif, shown, stored = enc.encode_batch(
        [Media(path=images[k]) for k in ("exif", "exif_shown", "exif_stored")], Modality.IMAGE, "document"
    )
    np.testing.assert_allclose(exif, shown, atol=1e-5)
    assert not np.allclose(exif, stored, atol=1e-3)


def test_open_clip_bad_images_raise_item_error_naming_the_file(tiny_clip, images):
    enc = clip(tiny_clip)
    good = Media(path=images["png"])
    with pytest.raises(ItemError, match="truncated.jpg") as info:
        enc.encode_batch([good, Media(path=images["truncated"]), good], Modality.IMAGE, "document")
    assert info.value.positions == (1,)
    with pytest.raises(ItemError, match="garbage.png") as info:
        enc.encode_batch([Media(path=images["garbage"]), Media(path=images["png"].parent / "gone.png")],
                         Modality.IMAGE, "document")
    assert "gone.png" in str(info.value) and info.value.positions == (0, 1)


def test_open_clip_modalities(tiny_clip):
    enc = clip(tiny_clip)
    assert enc.accepts(Modality.IMAGE, "document") and enc.accepts(Modality.TEXT, "query")
    with pytest.raises(QueryError, match="does not embed audio"):
        enc.encode_batch([Media(data=b"RIFF")], Modality.AUDIO, "document")


def test_open_clip_paths_resolve_against_the_recipe_folder(tiny_clip):
    config, checkpoint = tiny_clip
    params = OpenClipEncoder.Params.model_validate({"model_config": config.name, "pretrained": checkpoint.name})
    enc = OpenClipEncoder(params, Context(base_dir=config.parent))
    assert enc.dimension() == 24


def test_open_clip_params_and_fingerprint(tiny_clip):
    with pytest.raises(ValidationError, match="pretrained is required"):
        OpenClipEncoder.Params(model="ViT-B-32")
    with pytest.raises(ValidationError):
        OpenClipEncoder.Params.model_validate({"model": "hf-hub:org/repo", "pretrained": "openai"})
    base = clip(tiny_clip).fingerprint()
    assert clip(tiny_clip, batch_size=3, device="cpu").fingerprint() == base
    assert clip(tiny_clip, normalize=False).fingerprint() != base
    with pytest.raises(PrismError, match="differs from the config's name"):
        clip(tiny_clip, model="ViT-B-32").dimension()


def test_open_clip_missing_pretrained_tag_offline_fails_fast():
    _import_open_clip()
    start = time.perf_counter()
    enc = OpenClipEncoder(OpenClipEncoder.Params(model="ViT-B-32", pretrained="laion2b_s34b_b79k"))
    with pytest.raises(ModelNotAvailableError, match="ViT-B-32/laion2b_s34b_b79k"):
        enc.dimension()
    with pytest.raises(ModelNotAvailableError, match="tags: openai"):
        OpenClipEncoder(OpenClipEncoder.Params(model="ViT-B-32", pretrained="no-such-tag")).dimension()
    assert time.perf_counter() - start < 5


def test_open_clip_pretrained_tag_from_the_hf_cache(tiny_clip, tmp_path, monkeypatch):
    """A tag whose weights are cached loads offline, with the tag's own preprocessing."""
    import open_clip
    from huggingface_hub import constants

    config, checkpoint = tiny_clip
    repo = tmp_path / "models--prismrag-tests--tiny-clip"
    snapshot = repo / "snapshots" / ("b" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(checkpoint.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    tag = {"url": "", "hf_hub": "prismrag-tests/tiny-clip/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, config.stem, {"tiny_tag": tag})
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = 255
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "half.png")
    media = [Media(path=tmp_path / "half.png")]
    by_tag = clip(tiny_clip, pretrained="tiny_tag")
    by_file = clip(tiny_clip)
    texts = ["a photo"]
    np.testing.assert_allclose(
        by_tag.encode_batch(texts, Modality.TEXT, "query"), by_file.encode_batch(texts, Modality.TEXT, "query"), atol=1e-6
    )  # the same weights
    assert not np.allclose(  # but the tag's normalisation (mean 0.5) for images
        by_tag.encode_batch(media, Modality.IMAGE, "query"), by_file.encode_batch(media, Modality.IMAGE, "query"), atol=1e-4
    )


def test_st_and_clip_encoders_are_thread_safe_to_load(tiny_st):
    from concurrent.futures import ThreadPoolExecutor

    enc = st(tiny_st)
    with ThreadPoolExecutor(4) as pool:
        dims = list(pool.map(lambda _: enc.dimension(), range(4)))
    assert dims == [32] * 4


def test_tiny_models_are_deterministic(tmp_path, tiny_clip):
    from tiny_models import build_tiny_open_clip

    _, again = build_tiny_open_clip(tmp_path / "again")
    import torch

    first, second = torch.load(tiny_clip[1]), torch.load(again)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert json.loads(tiny_clip[0].read_text())["embed_dim"] == 24


def test_loading_a_model_prints_no_progress_bar(tiny_st, capfd):
    """Issue 15 item 13: transformers' "Loading weights" bar appeared on every Python API load."""
    from transformers.utils import logging as tlog

    tlog.enable_progress_bar()  # as a fresh process has it (other tests may have turned it off)
    enc = st(tiny_st)
    enc.dimension()  # loads the model
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s" not in err
    assert tlog.is_progress_bar_enabled()  # the library's own setting is back
