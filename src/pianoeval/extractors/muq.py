"""MuQ (Zhu et al. 2025, ``OpenMuQ/MuQ-large-msd-iter``) from a local checkpoint folder, without the
``muq`` package (its dependencies pull a CUDA torch, and it imports torchaudio, which does not load
against torch 2.13 here).

The network is rebuilt from the published architecture and loads the published state dict
(``config.json`` + ``model.safetensors`` as ``MuQ.save_pretrained`` writes them): 24 kHz audio ->
128-band log-mel (n_fft 2048, hop 240, HTK mel without filter normalisation, power to dB with floor
1e-10, the last frame dropped, standardised with the checkpoint's ``stat``) -> two residual conv blocks
(time / 4: 25 Hz) and a linear projection -> the wav2vec2-conformer encoder of ``transformers``. The
hidden states are the projection output (index 0) and every conformer layer (1..12, the last one
after the final layer norm): 13 for the large model. Training-only parts (quantiser targets, the
token classifier, the cls token) are in the checkpoint and ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Extractor
from .registry import register
from .torch_models import (check_layers, chunks, load_state_dict, load_strict, read_config, resolve_device,
                           resolve_dtype)

MUQ_SAMPLE_RATE = 24000
IGNORED = ("quantizer_", "rvq.", "linear.", "cls_token", "recon_proj.")


def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                       f_max: float | None = None) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular HTK-mel filters without area normalisation (torchaudio's
    ``melscale_fbanks(..., norm=None, mel_scale="htk")``, the MelSpectrogram default MuQ was trained with)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1, dtype=torch.float64)
    mel = torch.linspace(2595.0 * np.log10(1.0 + f_min / 700.0), 2595.0 * np.log10(1.0 + f_max / 700.0),
                         n_mels + 2, dtype=torch.float64)
    f_pts = 700.0 * (10 ** (mel / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0).float()


class MelDb(nn.Module):
    """Waveform (B, n) -> log-mel dB (B, n_mels, frames), as MuQ's preprocessor."""

    def __init__(self, sample_rate: int = MUQ_SAMPLE_RATE, n_fft: int = 2048, hop_length: int = 240, n_mels: int = 128):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("fb", htk_mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()                    # (B, F, T)
        mel = torch.matmul(power.transpose(1, 2), self.fb).transpose(1, 2)  # (B, n_mels, T)
        return 10.0 * torch.log10(mel.clamp_min(1e-10))


class Res2dModule(nn.Module):
    def __init__(self, idim: int, odim: int, stride=(2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(idim, odim, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(odim)
        self.conv2 = nn.Conv2d(odim, odim, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(odim)
        self.relu = nn.ReLU()
        self.diff = idim != odim or stride[0] > 1
        if self.diff:
            self.conv3 = nn.Conv2d(idim, odim, 3, padding=1, stride=stride)
            self.bn3 = nn.BatchNorm2d(odim)

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.diff:
            x = self.bn3(self.conv3(x))
        return self.relu(x + out)


class Conv2dSubsampling(nn.Module):
    """(B, n_mels, T) -> (B, T / 4, odim): two residual conv blocks (frequency and time / 2 each) + linear."""

    def __init__(self, idim: int, hdim: int, odim: int, strides=(2, 2), n_bands: int = 128):
        super().__init__()
        self.conv = nn.Sequential(Res2dModule(idim, hdim, (2, strides[0])), Res2dModule(hdim, hdim, (2, strides[1])))
        self.linear = nn.Linear(hdim * n_bands // 2 // 2, odim)

    def forward(self, x):
        x = self.conv(x.unsqueeze(1))                       # (B, C, F', T')
        b, c, f, t = x.shape
        return self.linear(x.permute(0, 3, 1, 2).reshape(b, t, c * f))


class MuQNetwork(nn.Module):
    """The feature path of MuQ: module names match the published state dict under ``model.``."""

    def __init__(self, config: dict):
        super().__init__()
        from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import (
            Wav2Vec2ConformerConfig, Wav2Vec2ConformerEncoder)

        label_rate = int(config.get("label_rate", 25))
        n_fold = 100 // label_rate
        strides = {4: (2, 2), 2: (2, 1)}.get(n_fold)
        if strides is None:
            raise ValueError(f"muq: label_rate {label_rate} is not supported (25 or 50 Hz)")
        if int(config.get("hop_length", 240)) != 240:
            raise ValueError("muq: only hop_length 240 (100 Hz mel frames at 24 kHz) is supported")
        n_mels, conv_dim, encoder_dim = int(config.get("n_mels", 128)), int(config.get("conv_dim", 512)), \
            int(config.get("encoder_dim", 1024))
        stat = config.get("stat") or {}
        try:
            self.mel_mean, self.mel_std = float(stat["melspec_2048_mean"]), float(stat["melspec_2048_std"])
        except KeyError:
            raise ValueError("muq: config.json lacks stat.melspec_2048_mean / stat.melspec_2048_std") from None
        self.frame_rate = float(label_rate)
        self.mel = MelDb(n_mels=n_mels)
        self.conv = Conv2dSubsampling(1, conv_dim, encoder_dim, strides=strides, n_bands=n_mels)
        w2v2 = dict(config.get("w2v2_config") or {})
        w2v2.update(num_hidden_layers=int(config.get("encoder_depth", 12)), hidden_size=encoder_dim)
        self.conformer = Wav2Vec2ConformerEncoder(Wav2Vec2ConformerConfig(**w2v2))
        self.n_hidden = int(config.get("encoder_depth", 12)) + 1

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, n) float waveform at 24 kHz -> n_hidden tensors (B, T, encoder_dim)."""
        x = self.mel(wav)[..., :-1]
        x = (x - self.mel_mean) / self.mel_std
        x = self.conv(x.to(next(self.conv.parameters()).dtype))
        return self.conformer(x, output_hidden_states=True).hidden_states


@register("muq")
class MuQ(Extractor):
    """MuQ hidden states as frame embeddings (25 Hz, D = 1024 for the large model).

    Parameters
    ----------
    checkpoint : local folder with config.json + model.safetensors (a snapshot of OpenMuQ/MuQ-large-msd-iter).
    layers : hidden states to store (0 = conv projection, 12 = last layer); default all.
    default_layers : the stored layers averaged into the (T, D) embedding; default [9, 10, 11, 12]
        (the production recipe) when they are stored, else all stored layers.
    device : auto | cpu | cuda.   dtype : float32 | bfloat16 | float16 (GPU).
    chunk_seconds : long clips run in chunks of this length (the model was trained on short excerpts).
    batch_size : chunks per forward pass.
    """

    sample_rate = MUQ_SAMPLE_RATE

    def __init__(self, checkpoint: str, layers: list[int] | None = None, default_layers: list[int] | None = None,
                 device: str = "auto", dtype: str = "float32", chunk_seconds: float = 30.0, batch_size: int = 4):
        self.checkpoint = Path(checkpoint)
        config = read_config(self.checkpoint)
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype, self.device)
        self.dtype_name, self.chunk_seconds, self.batch_size = dtype, float(chunk_seconds), int(batch_size)
        net = MuQNetwork(config)
        load_strict(net, load_state_dict(self.checkpoint), prefix="model.", ignore=IGNORED,
                    who=f"muq {self.checkpoint}")
        self.net = net.to(self.device, self.torch_dtype).eval()
        self.net.mel.float()  # the spectrogram stays float32 whatever the encoder's dtype
        self.frame_rate = net.frame_rate
        self.dim = int(config.get("encoder_dim", 1024))
        stored = list(range(net.n_hidden)) if layers is None else layers
        if default_layers is None and all(i in stored for i in (9, 10, 11, 12)):
            default_layers = [9, 10, 11, 12]
        self.layers, self.default_layers = check_layers(layers, default_layers, net.n_hidden, "muq")
        # 960 samples per 25-Hz frame: chunk edges fall on frame edges
        hop = int(round(self.sample_rate / self.frame_rate))
        self.chunk_samples = max(hop, int(self.chunk_seconds * self.sample_rate) // hop * hop)

    def params(self) -> dict:
        return {"checkpoint": self.checkpoint.name, "layers": self.layers, "default_layers": self.default_layers,
                "dtype": self.dtype_name, "chunk_seconds": self.chunk_seconds}

    @torch.inference_mode()
    def _embed(self, audio: np.ndarray) -> np.ndarray:
        parts = chunks(audio, self.chunk_samples)
        out = []
        # full-length chunks share a batch; a short last chunk runs alone (no padding enters the encoder)
        full = [c for c in parts if len(c) == self.chunk_samples]
        rest = [c for c in parts if len(c) != self.chunk_samples]
        for i in range(0, len(full), self.batch_size):
            out += self._run(np.stack(full[i:i + self.batch_size]))
        for c in rest:
            out += self._run(c[None])
        return np.concatenate(out)

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        hidden = self.net(x)
        sel = torch.stack([hidden[i] for i in self.layers], dim=2)    # (B, T, L, D)
        return list(sel.float().cpu().numpy())
