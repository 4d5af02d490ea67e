"""Offline default backend: log-mel frames at MuQ's 25 Hz from 24 kHz audio. Needs no weights."""

from __future__ import annotations

import numpy as np
import torch

from .base import Extractor
from .registry import register


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters, each normalised to unit area (Slaney style)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"logmel: need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}")
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))
    fb *= (2.0 / (upper - lower))  # equal area: wide high bands do not dominate
    return fb.astype(np.float32)


@register("logmel")
class LogMel(Extractor):
    """Log-mel power spectrogram frames (dB, absolute level: loudness is a rated dimension).

    With ``deltas`` the frame is [log-mel ‖ first difference over time]: D = n_mels or 2 * n_mels.
    """

    def __init__(self, sample_rate: int = 24000, frame_rate: float = 25.0, n_fft: int = 2048,
                 n_mels: int = 128, fmin: float = 27.5, fmax: float = 12000.0, deltas: bool = False,
                 floor_db: float = -100.0):
        hop = sample_rate / frame_rate
        if hop != int(hop):
            raise ValueError(f"logmel: sample_rate/frame_rate must be an integer hop, got {hop}")
        self.sample_rate, self.frame_rate, self.hop = sample_rate, frame_rate, int(hop)
        self.n_fft, self.n_mels, self.fmin, self.fmax = n_fft, n_mels, fmin, fmax
        self.deltas, self.floor_db = deltas, floor_db
        self.dim = n_mels * (2 if deltas else 1)
        self._fb = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax))
        self._window = torch.hann_window(n_fft)

    def params(self) -> dict:
        return {"sample_rate": self.sample_rate, "frame_rate": self.frame_rate, "n_fft": self.n_fft,
                "n_mels": self.n_mels, "fmin": self.fmin, "fmax": self.fmax, "deltas": self.deltas,
                "floor_db": self.floor_db}

    def _embed(self, audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        if x.numel() < self.n_fft // 2 + 1:  # constant padding needs at least half a window
            x = torch.nn.functional.pad(x, (0, self.n_fft // 2 + 1 - x.numel()))
        spec = torch.stft(x, self.n_fft, hop_length=self.hop, window=self._window, center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (F, T)
        mel = self._fb @ power
        db = 10.0 * torch.log10(mel.clamp_min(10.0 ** (self.floor_db / 10.0)))  # (n_mels, T)
        frames = db.T
        if self.deltas:
            d = torch.diff(frames, dim=0, prepend=frames[:1])
            frames = torch.cat([frames, d], dim=1)
        return frames.contiguous().numpy().astype(np.float32)
