"""Hostile input, recipe files (issue 17): alias bombs, deep nesting, duplicate keys, non-UTF-8,
transform codecs, bad devices, names with a newline, huge weights, trust_remote_code. Each is a
RecipeError naming the file and field, fast and small, never a traceback."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prismrag.cli import main, parse_weights
from prismrag.errors import PrismError, RecipeError
from prismrag.recipe import build_recipe, load_recipe_spec, read_recipe_file
from prismrag.registry import Registry

BASE = textwrap.dedent("""\
    name: kw
    sources: [{use: text-files, path: docs}]
    retrievers:
      kw: {encoder: {use: bm25}}
    """)


def write(tmp_path: Path, text: str | bytes, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def build(path: Path):  # noqa: ANN201
    spec, source, base = load_recipe_spec(path)
    return build_recipe(spec, source, base, Registry())


def test_a_billion_laughs_recipe_is_refused_fast_and_small(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = write(tmp_path, BASE + "\n".join(f"k{line}" for line in lines) + "\n")
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from prismrag.cli import main
        raise SystemExit(main(["validate", {str(path)!r}]))
    """)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30
    # under a 1 GB address-space cap: before the fix this took 1.5 GB and 60 s
    assert proc.returncode == 2 and "expands to more than 100,000 values" in proc.stderr, proc.stderr[-2000:]


def test_a_self_referencing_alias_is_refused(tmp_path):
    path = write(tmp_path, BASE + "rerank: &loop [*loop]\n")
    with pytest.raises(RecipeError, match="loop|nested too deeply"):
        read_recipe_file(path)


@pytest.mark.parametrize("suffix, text", [
    (".yaml", BASE + "description: " + "[" * 5000 + "]" * 5000 + "\n"),
    (".toml", 'name = "kw"\nx = ' + "[" * 5000 + "]" * 5000 + "\n"),
    (".yaml", BASE + "description: " + "[" * 100 + "]" * 100 + "\n"),  # parses, but deeper than allowed
], ids=["yaml-5000", "toml-5000", "yaml-100"])
def test_deeply_nested_recipes_are_a_clear_error_not_a_recursion_error(tmp_path, suffix, text):
    path = write(tmp_path, text, "r" + suffix)
    with pytest.raises(RecipeError, match="nested too deeply"):
        read_recipe_file(path)


def test_a_duplicate_yaml_key_is_refused_with_both_lines(tmp_path):
    path = write(tmp_path, BASE + "name: other\n")
    with pytest.raises(RecipeError, match=r"line 5, column 1: duplicate key 'name' \(first at line 1\)"):
        read_recipe_file(path)
    merged = write(tmp_path, "base: &b {x: 1}\nname: kw\nover: {<<: *b, x: 2}\n", "merge.yaml")
    assert read_recipe_file(merged)["over"] == {"x": 2}  # a merge key may be overridden


def test_a_non_utf8_recipe_file_is_a_clear_error(tmp_path):
    path = write(tmp_path, BASE.encode() + b"description: caf\xe9\n")
    with pytest.raises(RecipeError, match="not UTF-8 text.*0xe9"):
        read_recipe_file(path)


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    path = write(tmp_path, 'name: kw\nretrievers:\n  "kw\\n": {encoder: {use: bm25}}\n')
    with pytest.raises(RecipeError, match="retriever names"):
        load_recipe_spec(path)
    path = write(tmp_path, 'name: "kw\\n"\nretrievers:\n  kw: {encoder: {use: bm25}}\n')
    with pytest.raises(RecipeError, match="name"):
        load_recipe_spec(path)


@pytest.mark.parametrize("body, field, message", [
    ("sources: [{use: text-files, path: docs, encoding: rot13}]", "sources[0].encoding", "not a text encoding"),
    ("retrievers:\n  kw: {encoder: {use: sentence-transformers, model: m, device: potato}}", "device", "not a device"),
    ("retrievers:\n  a: {encoder: {use: bm25}}\n  b: {encoder: {use: bm25}}\nfusion: {use: weighted, weights: {a: 1e308, b: 1}}",
     "fusion.weights.a", "out of range"),
    ("sources: [{use: text-files, path: docs, glob: '[z-a]*'}]", "sources[0].glob", "not a valid pattern"),
])
def test_bad_params_fail_at_validation(tmp_path, body, field, message):
    text = "name: kw\n" + body + ("\nretrievers:\n  kw: {encoder: {use: bm25}}\n" if "retrievers" not in body else "\n")
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        build(path)
    assert field in str(info.value) and message in str(info.value)


def test_trust_remote_code_needs_the_user_outside_the_recipe(tmp_path, monkeypatch, caplog):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"auto_map": {"AutoModel": "evil.Model"}}')
    (model / "evil.py").write_text("open('MARKER', 'w').write('ran')")
    path = write(tmp_path, "name: kw\nretrievers:\n  d: {encoder: {use: sentence-transformers, model: model, trust_remote_code: true}}\n")
    monkeypatch.delenv("PRISMRAG_ALLOW_REMOTE_CODE", raising=False)
    with pytest.raises(RecipeError, match="PRISMRAG_ALLOW_REMOTE_CODE=1"):
        build(path)
    assert main(["validate", str(path)]) == 2
    monkeypatch.setenv("PRISMRAG_ALLOW_REMOTE_CODE", "1")
    with caplog.at_level(logging.WARNING, logger="prismrag.recipe"):
        build(path)
    assert "code shipped with the model will be imported and run" in caplog.text
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("value", ["kw=1e308", "kw=nan", "kw=inf", "kw=-2"])
def test_query_weights_are_bounded(value):
    with pytest.raises(PrismError, match="0 to 1e6"):
        parse_weights([value])


@pytest.mark.parametrize("component, field", [
    ("retrievers:\n  d: {encoder: {use: sentence-transformers, model: MODEL}}", "retrievers.d.encoder"),
    ("retrievers:\n  d: {encoder: {use: sentence-transformers, model: MODEL, backend: onnx}}", "retrievers.d.encoder"),
    ("retrievers:\n  kw: {encoder: {use: bm25}}\nrerank: [{use: cross-encoder, model: MODEL}]", "rerank[0]"),
    ("retrievers:\n  a: {encoder: {use: clap, model: MODEL}}", "retrievers.a.encoder"),
    ("retrievers:\n  i: {encoder: {use: open-clip, model: 'local-dir:MODEL'}}", "retrievers.i.encoder"),
    ("retrievers:\n  s: {encoder: {use: sparse-encoder, model: MODEL}}", "retrievers.s.encoder"),
    ("retrievers:\n  m: {encoder: {use: multi-vector, model: MODEL}}", "retrievers.m.encoder"),
], ids=["sentence-transformers", "st-onnx", "cross-encoder", "clap", "open-clip", "sparse-encoder", "multi-vector"])
@pytest.mark.parametrize("model", ["/etc", "r.yaml"], ids=["folder", "file"])
def test_a_local_path_that_is_not_a_model_fails_validation_naming_what_a_model_folder_holds(
    tmp_path, component, field, model, capsys,
):
    path = write(tmp_path, "name: kw\n" + component.replace("MODEL", model) + "\n")
    with pytest.raises(RecipeError) as info:
        build(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: model ") and message.count(f"{field}:") == 1, message
    if "local-dir" in component and model == "r.yaml":
        assert "model 'local-dir:r.yaml': there is no folder" in message  # open_clip's local-dir names a folder
        return
    assert repr(model) in message
    assert ("is a folder but not a model folder" if model == "/etc" else "is a file, not a model folder") in message
    assert ("open_clip_config.json" if "open-clip" in component else "config.json") in message
    assert main(["validate", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_validating_a_model_path_imports_no_torch(tmp_path):
    path = write(tmp_path, "name: kw\nretrievers:\n  d: {encoder: {use: sentence-transformers, model: /etc, device: cuda:99}}\n")
    code = f"import sys; from prismrag.cli import main; rc = main(['validate', {str(path)!r}]); print(rc, 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["2", "False"], proc.stderr[-2000:]
    assert "not a model folder" in proc.stderr


def test_a_model_folder_emptied_after_validation_fails_at_load_without_a_traceback(tmp_path):
    from prismrag.contracts import Context
    from prismrag.plugins.rerankers import CrossEncoderParams, CrossEncoderReranker
    from prismrag.plugins.sentence_transformers_encoder import (
        SentenceTransformerEncoder,
        SentenceTransformerParams,
    )

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    context = Context(base_dir=tmp_path, where="r.yaml: retrievers.d.encoder")
    encoder = SentenceTransformerEncoder(SentenceTransformerParams(model="model"), context)
    reranker = CrossEncoderReranker(CrossEncoderParams(model="model"), context)
    (model / "config.json").unlink()
    for load in (encoder.dimension, reranker.model):
        with pytest.raises(PrismError, match=r"r.yaml: retrievers.d.encoder: model 'model': .* holds no config.json"):
            load()


def test_a_device_that_is_not_here_is_a_clear_error_at_load(tmp_path):
    import torch

    from prismrag.support import torch_device

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    expected = "no CUDA device" if count == 0 else f"{count} CUDA device"
    with pytest.raises(PrismError, match=rf"here: device 'cuda:99' is not available here: {expected}"):
        torch_device("cuda:99", "here")
    assert torch_device(None, "here") is None
    assert torch_device(" CPU ", "here") == "cpu"
    assert torch_device("auto", "here") == ("cuda" if count else "mps" if torch.backends.mps.is_available() else "cpu")


def test_an_ingest_on_a_missing_cuda_device_fails_cleanly_before_the_model_loads(tmp_path, capsys):
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a cuda:99")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nsome text")
    path = write(tmp_path, textwrap.dedent("""\
        name: kw
        sources: [{use: text-files, path: docs}]
        retrievers:
          d: {encoder: {use: sentence-transformers, model: all-MiniLM-L6-v2, device: cuda:99}}
        """))
    assert main(["validate", str(path)]) == 0  # the form is fine; whether it exists is known at load
    assert main(["ingest", "--quiet", str(path)]) == 2
    err = capsys.readouterr().err
    assert "retrievers.d.encoder: device 'cuda:99' is not available here" in err and "Traceback" not in err


def test_python_yaml_tags_are_never_constructed(tmp_path):
    marker = tmp_path / "PWNED"
    path = write(tmp_path, f'name: !!python/object/apply:os.system ["touch {marker}"]\n' + BASE.split("\n", 1)[1])
    with pytest.raises(RecipeError, match="could not determine a constructor for the tag"):
        read_recipe_file(path)
    assert main(["validate", str(path)]) == 2 and not marker.exists()


@pytest.mark.parametrize("name", ["../../evil", "/etc/x", "a/b", ".hidden"])
def test_a_recipe_name_cannot_walk_out_of_the_store_folder(tmp_path, name):
    path = write(tmp_path, BASE.replace("name: kw", f"name: {name!r}"))
    with pytest.raises(RecipeError, match="name"):
        load_recipe_spec(path)
