"""Pretrained speech/music encoders through ``transformers`` (optional extra ``models``; pinned below 5:
MuQ's and EAT's remote code break on 5.x), loaded from a local snapshot folder only (no hub access).

* ``hubert``, ``wav2vec2``: HuBERT / wav2vec 2.0 (16 kHz, 50 Hz frames for the base conv stack).
* ``mert``: MERT-v1 (``m-a-p/MERT-v1-95M`` / ``-330M``) is a HuBERT network at 24 kHz (75 Hz frames);
  its ``config.json`` (``model_type: mert_model``, remote code) is read into a ``HubertConfig`` and the
  weights are loaded strictly into ``HubertModel``. A config with the CQT branch
  (``feature_extractor_cqt: true``) is refused: that branch exists only in MERT's remote code.
* ``ast``: Audio Spectrogram Transformer (16 kHz, kaldi-style 128-band fbank of ``max_length`` frames
  (10.24 s); patch tokens averaged over frequency give one frame per time patch: 10 Hz with
  ``time_stride`` 10).
* EAT (``worstchan/EAT-*``) is not wired here: it ships as remote code (``trust_remote_code``) that has
  to be present in the snapshot, see docs/extractors.md for the route.

All store ``layers`` (hidden-state indices, 0 = the input embedding; default the quartile layers
[L/4, L/2, 3L/4, L]) of one forward pass and average ``default_layers`` (default: all stored) into the
(T, D) embedding. Clips longer than ``chunk_seconds`` run in consecutive chunks; full-length chunks are
batched, the short last one runs alone (no padding enters the encoder).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .base import Extractor
from .registry import register
from .torch_models import (check_layers, chunks, load_state_dict, load_strict, quartile_layers, read_config,
                           resolve_device, resolve_dtype)


def _preprocessor(folder: Path) -> dict:
    path = folder / "preprocessor_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


class _HFEncoder(Extractor):
    """Common loading, layer selection and chunked inference of the transformers backends."""

    default_sample_rate = 16000
    default_normalize = True
    ignore_prefixes: tuple[str, ...] = ()

    def __init__(self, checkpoint: str, layers: list[int] | None = None, default_layers: list[int] | None = None,
                 device: str = "auto", dtype: str = "float32", chunk_seconds: float = 30.0, batch_size: int = 4,
                 sample_rate: int | None = None):
        self.checkpoint = Path(checkpoint)
        config = read_config(self.checkpoint)
        pre = _preprocessor(self.checkpoint)
        self.sample_rate = int(sample_rate or pre.get("sampling_rate") or self.default_sample_rate)
        self.normalize = bool(pre.get("do_normalize", self.default_normalize))
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self.dtype_name, self.chunk_seconds, self.batch_size = dtype, float(chunk_seconds), int(batch_size)
        model = self._build(config)
        state = load_state_dict(self.checkpoint)
        load_strict(model, state, prefix=self._prefix(model, state), ignore=self.ignore_prefixes,
                    who=f"{self.name} {self.checkpoint}")
        self.model = model.to(self.device, self.torch_dtype).eval()
        n_layers = int(model.config.num_hidden_layers)
        self.dim = int(model.config.hidden_size)
        self.layers, self.default_layers = check_layers(layers if layers is not None else quartile_layers(n_layers),
                                                        default_layers, n_layers + 1, self.name)
        self._setup(config)

    @staticmethod
    def _prefix(model, state: dict) -> str:
        """Checkpoints saved from a task model (``HubertForCTC``...) keep the encoder under a prefix."""
        keys = state.keys()
        base = getattr(model, "base_model_prefix", "")
        own = set(model.state_dict())
        return f"{base}." if base and not (own & set(keys)) and any(k.startswith(f"{base}.") for k in keys) else ""

    def params(self) -> dict:
        return {"checkpoint": self.checkpoint.name, "layers": self.layers, "default_layers": self.default_layers,
                "dtype": self.dtype_name, "chunk_seconds": self.chunk_seconds, "sample_rate": self.sample_rate}

    # --- waveform encoders (hubert, wav2vec2, mert)
    def _setup(self, config: dict) -> None:
        stride = math.prod(int(s) for s in self.model.config.conv_stride)
        self.frame_rate = self.sample_rate / stride
        self.chunk_samples = max(stride, int(self.chunk_seconds * self.sample_rate) // stride * stride)

    @torch.inference_mode()
    def _embed(self, audio: np.ndarray) -> np.ndarray:
        parts = chunks(audio, self.chunk_samples)
        full = [c for c in parts if len(c) == self.chunk_samples]
        rest = [c for c in parts if len(c) != self.chunk_samples]
        out = []
        for i in range(0, len(full), self.batch_size):
            out += self._run(full[i:i + self.batch_size])
        for c in rest:
            out += self._run([c])
        return np.concatenate(out)

    def _inputs(self, batch: list[np.ndarray]) -> torch.Tensor:
        x = np.stack(batch).astype(np.float32)
        if self.normalize:  # Wav2Vec2FeatureExtractor's zero-mean unit-variance per input
            x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-7)
        return torch.from_numpy(x)

    def _run(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        x = self._inputs(batch).to(self.device, self.torch_dtype)
        hidden = self.model(x, output_hidden_states=True).hidden_states
        sel = torch.stack([hidden[i] for i in self.layers], dim=2)    # (B, T, L, D)
        return list(sel.float().cpu().numpy())


@register("hubert")
class Hubert(_HFEncoder):
    """HuBERT hidden states (``checkpoint``: a local snapshot folder of e.g. facebook/hubert-base-ls960)."""

    default_normalize = False

    def _build(self, config: dict):
        from transformers import HubertConfig, HubertModel

        return HubertModel(HubertConfig(**config))


@register("wav2vec2")
class Wav2Vec2(_HFEncoder):
    """wav2vec 2.0 hidden states (``checkpoint``: a local snapshot of e.g. facebook/wav2vec2-base)."""

    ignore_prefixes = ("quantizer.", "project_hid.", "project_q.", "lm_head.")

    def _build(self, config: dict):
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        return Wav2Vec2Model(Wav2Vec2Config(**config))


@register("mert")
class Mert(_HFEncoder):
    """MERT-v1 as a HuBERT network at 24 kHz (no CQT branch); 75 Hz frames."""

    default_sample_rate = 24000

    def _build(self, config: dict):
        from transformers import HubertConfig, HubertModel

        if config.get("feature_extractor_cqt"):
            raise ValueError(f"mert {self.checkpoint}: config has the CQT branch (feature_extractor_cqt), "
                             "which only MERT's remote code implements; use a config without it")
        cfg = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "auto_map")}
        return HubertModel(HubertConfig(**cfg))


@register("ast")
class AST(_HFEncoder):
    """Audio Spectrogram Transformer: per time patch, the patch tokens averaged over frequency."""

    default_sample_rate = 16000

    def _build(self, config: dict):
        from transformers import ASTConfig, ASTModel

        return ASTModel(ASTConfig(**config))

    def _setup(self, config: dict) -> None:
        from transformers import ASTFeatureExtractor

        cfg = self.model.config
        pre = _preprocessor(self.checkpoint)
        pre.pop("feature_extractor_type", None)
        pre.pop("processor_class", None)
        pre.update(sampling_rate=self.sample_rate, num_mel_bins=cfg.num_mel_bins, max_length=cfg.max_length)
        self.features = ASTFeatureExtractor(**pre)
        self.hop = self.sample_rate // 100           # kaldi fbank: 10 ms hop, 25 ms frames
        self.win = self.sample_rate * 25 // 1000
        self.t_stride, self.patch = int(cfg.time_stride), int(cfg.patch_size)
        self.f_dim = (cfg.num_mel_bins - self.patch) // int(cfg.frequency_stride) + 1
        self.t_dim = (cfg.max_length - self.patch) // self.t_stride + 1
        self.frame_rate = 100.0 / self.t_stride
        # A chunk is exactly t_dim time patches of audio (fbank frames fit in max_length, the rest is the
        # extractor's zero padding), so every chunk adds t_dim frames per t_dim / frame_rate seconds and
        # frame times stay uniform across chunks.
        self.chunk_samples = self.t_dim * self.t_stride * self.hop
        if 1 + (self.chunk_samples - self.win) // self.hop > cfg.max_length:
            raise ValueError(f"ast {self.checkpoint}: max_length {cfg.max_length} too short for its patches")

    def _run(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        feats = self.features([np.asarray(c, dtype=np.float32) for c in batch], sampling_rate=self.sample_rate,
                              return_tensors="pt")["input_values"].to(self.device, self.torch_dtype)
        hidden = self.model(feats, output_hidden_states=True).hidden_states
        out = []
        for b, c in enumerate(batch):
            n_fbank = 1 + max(len(c) - self.win, 0) // self.hop
            n_t = min(self.t_dim, max(1, -(-n_fbank // self.t_stride)))  # time patches that saw audio
            layers = []
            for i in self.layers:
                tok = hidden[i][b, 2:].reshape(self.f_dim, self.t_dim, -1)   # f-major patch order
                layers.append(tok.mean(0)[:n_t])
            out.append(torch.stack(layers, dim=1).float().cpu().numpy())     # (T, L, D)
        return out
