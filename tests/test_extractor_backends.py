"""Foundation-model backends on tiny random-init checkpoints written to a temporary folder and loaded
back through the registry: no download, no hub access (transformers is the optional `models` extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pianoeval.extractors import clear_cache, load_model

transformers = pytest.importorskip("transformers")

SR24, SR16 = 24000, 16000


def noise(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


# ----------------------------------------------------------------------------------------------- MuQ
MUQ_CONFIG = {"label_rate": 25, "num_codebooks": 1, "codebook_dim": 16, "codebook_size": 64,
              "features": ["melspec_2048"], "hop_length": 240, "n_mels": 128, "conv_dim": 4, "encoder_dim": 32,
              "encoder_depth": 4, "stat": {"melspec_2048_mean": 6.77, "melspec_2048_std": 19.4},
              "w2v2_config": {"num_attention_heads": 2, "intermediate_size": 64, "conv_depthwise_kernel_size": 5,
                              "position_embeddings_type": "rotary", "hidden_act": "swish"}}


def tiny_muq(folder, seed: int = 0):
    """Random-init MuQ saved as MuQ.save_pretrained lays it out: config.json + model.safetensors with the
    network under ``model.`` and the training-only quantiser / classifier / cls token beside it."""
    from safetensors.torch import save_file

    from pianoeval.extractors.muq import MuQNetwork

    torch.manual_seed(seed)
    net = MuQNetwork(MUQ_CONFIG)
    for m in net.modules():  # non-trivial BatchNorm statistics, so eval-mode normalisation is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = {f"model.{k}": v.contiguous() for k, v in net.state_dict().items()}
    state |= {"model.linear.weight": torch.randn(64, 32), "model.linear.bias": torch.zeros(64),
              "model.cls_token": torch.randn(32),
              "model.quantizer_melspec_2048.random_projection": torch.randn(512, 16),
              "model.quantizer_melspec_2048.codebook": torch.randn(64, 16)}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(MUQ_CONFIG))
    return net, state


def test_muq_tiny_checkpoint_layers_rate_and_determinism(tmp_path):
    net, state = tiny_muq(tmp_path / "muq")
    # The published layout (MuQ -> MuQModel -> conv / conformer) is what the loader reads.
    for key in ("model.conv.conv.0.conv1.weight", "model.conv.conv.1.conv3.weight", "model.conv.linear.weight",
                "model.conformer.layers.0.ffn1.intermediate_dense.weight",
                "model.conformer.layers.3.self_attn.linear_q.weight", "model.conformer.layer_norm.weight"):
        assert key in state
    m = load_model("muq", checkpoint=str(tmp_path / "muq"), layers=[0, 2, 3, 4], default_layers=[3, 4],
                   device="cpu", cache=False)
    assert m.frame_rate == 25.0 and m.dim == 32 and m.layers == [0, 2, 3, 4]
    x = noise(3.0, SR24)
    all_layers = m.layer_embeddings(x, SR24)
    assert all_layers.shape == (75, 4, 32)                    # 3 s at 25 Hz, 4 stored layers
    frames, times = m.timestamp_embeddings(x, SR24)
    np.testing.assert_allclose(frames, all_layers[:, 2:].mean(1), rtol=1e-6)   # mean of layers 3 and 4
    np.testing.assert_allclose(np.diff(times), 0.04)
    # Same as the reference network's own forward pass (hidden states 3 and 4).
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)[None])
    np.testing.assert_allclose(all_layers[:, 2], ref[3][0].numpy(), rtol=1e-4, atol=1e-5)
    # Deterministic: a second call and a fresh load give the same numbers.
    again = load_model("muq", checkpoint=str(tmp_path / "muq"), layers=[0, 2, 3, 4], default_layers=[3, 4],
                       device="cpu", cache=False)
    np.testing.assert_array_equal(again.layer_embeddings(x, SR24), all_layers)
    np.testing.assert_array_equal(m.layer_embeddings(x, SR24), all_layers)
    # Other rates are resampled to 24 kHz; long clips run in chunks that keep the 25 Hz grid.
    assert m.layer_embeddings(noise(3.0, SR16), SR16).shape == (75, 4, 32)
    chunked = load_model("muq", checkpoint=str(tmp_path / "muq"), chunk_seconds=1.0, device="cpu", cache=False)
    assert chunked.layer_embeddings(x, SR24).shape == (75, 5, 32) and chunked.default_layers == [0, 1, 2, 3, 4]


def test_muq_checkpoint_mismatch_and_bad_layers_are_named(tmp_path):
    from safetensors.torch import save_file

    _, state = tiny_muq(tmp_path / "muq")
    del state["model.conv.linear.weight"]
    save_file(state, str(tmp_path / "muq" / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing \['conv.linear.weight'\]"):
        load_model("muq", checkpoint=str(tmp_path / "muq"), device="cpu", cache=False)
    tiny_muq(tmp_path / "ok")
    with pytest.raises(ValueError, match="layers \\[7\\] invalid for a model with 5 hidden states"):
        load_model("muq", checkpoint=str(tmp_path / "ok"), layers=[7], device="cpu", cache=False)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model("muq", checkpoint=str(tmp_path / "nowhere"), device="cpu", cache=False)


def test_model_cache_reuses_loaded_models(tmp_path):
    tiny_muq(tmp_path / "muq")
    clear_cache()
    a = load_model("muq", checkpoint=str(tmp_path / "muq"), device="cpu")
    b = load_model("logmel", n_mels=32)
    assert load_model("muq", checkpoint=str(tmp_path / "muq"), device="cpu") is a
    assert load_model("logmel", n_mels=32) is b and load_model("logmel", n_mels=64) is not b
    clear_cache()
    assert load_model("muq", checkpoint=str(tmp_path / "muq"), device="cpu") is not a


# ------------------------------------------------------------------------------- transformers models
def hubert_config(**kw):
    from transformers import HubertConfig

    return HubertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(8, 8, 8), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
                        num_conv_pos_embedding_groups=2, **kw)


def test_hubert_quartile_layers_from_tiny_snapshot(tmp_path):
    from transformers import HubertModel

    torch.manual_seed(0)
    ref = HubertModel(hubert_config()).eval()
    ref.save_pretrained(tmp_path / "hubert")
    m = load_model("hubert", checkpoint=str(tmp_path / "hubert"), device="cpu", cache=False)
    assert m.layers == [1, 2, 3, 4] and m.default_layers == [1, 2, 3, 4]   # quartiles of 4 layers
    assert m.sample_rate == SR16 and m.frame_rate == SR16 / 80
    x = noise(1.0, SR16)
    out = m.layer_embeddings(x, SR16)
    with torch.no_grad():
        hs = ref(torch.from_numpy(x)[None], output_hidden_states=True).hidden_states
    assert out.shape == (hs[0].shape[1], 4, 32)
    np.testing.assert_allclose(out[:, 1], hs[2][0].numpy(), rtol=1e-4, atol=1e-5)   # HuBERT: no normalisation
    np.testing.assert_allclose(m.timestamp_embeddings(x, SR16)[0], out.mean(1), rtol=1e-6)
    np.testing.assert_array_equal(m.layer_embeddings(x, SR16), out)


def test_wav2vec2_tiny_snapshot_normalises_input(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(8, 8, 8), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2)
    ref = Wav2Vec2Model(cfg).eval()
    ref.save_pretrained(tmp_path / "w2v")
    m = load_model("wav2vec2", checkpoint=str(tmp_path / "w2v"), layers=[2, 4], default_layers=[4], device="cpu",
                   cache=False)
    x = noise(1.0, SR16) + 0.05
    out = m.layer_embeddings(x, SR16)
    xn = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    with torch.no_grad():
        hs = ref(torch.from_numpy(xn)[None], output_hidden_states=True).hidden_states
    np.testing.assert_allclose(out[:, 1], hs[4][0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(m.timestamp_embeddings(x, SR16)[0], out[:, 1])


def test_mert_loads_as_hubert_at_24k_and_refuses_cqt(tmp_path):
    from transformers import HubertModel

    torch.manual_seed(1)
    HubertModel(hubert_config()).save_pretrained(tmp_path / "mert")
    cfg = json.loads((tmp_path / "mert" / "config.json").read_text())
    cfg |= {"model_type": "mert_model", "architectures": ["MERTModel"], "feature_extractor_cqt": False,
            "auto_map": {"AutoModel": "modeling_MERT.MERTModel"}}
    (tmp_path / "mert" / "config.json").write_text(json.dumps(cfg))
    m = load_model("mert", checkpoint=str(tmp_path / "mert"), device="cpu", cache=False)
    assert m.sample_rate == SR24 and m.frame_rate == SR24 / 80
    out = m.layer_embeddings(noise(1.0, SR24), SR24)
    assert out.shape == (299, 4, 32)  # conv stack: (24000 - 10) // 5 + 1 -> // 4 -> // 4 frames
    (tmp_path / "mert" / "config.json").write_text(json.dumps(cfg | {"feature_extractor_cqt": True}))
    with pytest.raises(ValueError, match="CQT branch"):
        load_model("mert", checkpoint=str(tmp_path / "mert"), device="cpu", cache=False)


def test_ast_time_patches_at_10hz(tmp_path):
    from transformers import ASTConfig, ASTModel

    torch.manual_seed(0)
    cfg = ASTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                    max_length=128, num_mel_bins=128)
    ASTModel(cfg).save_pretrained(tmp_path / "ast")
    m = load_model("ast", checkpoint=str(tmp_path / "ast"), device="cpu", cache=False)
    assert m.frame_rate == 10.0 and m.layers == [1, 2, 3, 4] and m.chunk_samples == 12 * 10 * 160
    x = noise(3.0, SR16)  # 2 full chunks of 1.2 s (12 patches each) + 0.6 s (6 patches)
    out = m.layer_embeddings(x, SR16)
    assert out.shape == (30, 4, 32)
    frames, times = m.timestamp_embeddings(x, SR16)
    np.testing.assert_allclose(times[-1], 2.9)
    np.testing.assert_array_equal(m.layer_embeddings(x, SR16), out)
