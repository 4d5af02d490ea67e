"""The extractor interface, modelled on the HEAR API.

Every backend is one module that subclasses :class:`Extractor` and registers itself by name
(``registry.py`` maps the name to the module, imported on first use):

    @register("logmel")
    class LogMel(Extractor): ...

``load_model(name, **params)`` builds it once (weights loaded here, not per call);
``timestamp_embeddings(audio, sample_rate)`` -> ``(frames (T, D), times (T,))``;
``scene_embedding`` -> mean‖std pooled ``(2D,)``.

Multi-layer models (MuQ, HuBERT, ...) return every *stored* layer of one forward pass:
``layer_embeddings`` -> ``(T, L, D)`` with ``self.layers`` naming the L hidden-state indices. Their
``timestamp_embeddings`` is the mean over ``self.default_layers`` (e.g. MuQ layers 9-12), so any
consumer of (T, D) frames works unchanged, and the embedding store keeps the layer axis so that another
layer choice needs no re-extraction.

Every clip goes through :meth:`Extractor.prepare` (mono check, float32, resampling to the model's
rate) before the model sees it: the one place for input conditioning shared by training and scoring.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from math import gcd
from typing import ClassVar

import numpy as np

from ..models.pooling import mean_std_pool


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (exact rational ratio); a no-op when the rates agree."""
    if sr_in == sr_out:
        return audio
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(audio, int(sr_out) // g, int(sr_in) // g).astype(np.float32)


def mean_std(frames: np.ndarray) -> np.ndarray:
    """(T, D) -> (2D,) float32 mean‖std over frames: the pooled scene embedding."""
    return mean_std_pool(frames).astype(np.float32)


class Extractor(ABC):
    """A frame-level audio embedding model.

    Attributes
    ----------
    name : registry name.
    sample_rate : rate the model expects; other rates are resampled on the way in.
    frame_rate : embedding frames per second.
    dim : D, size of one frame embedding (of one layer).
    layers : hidden-state indices stored per frame (multi-layer models), None for one-layer models.
    default_layers : the stored layers whose mean is the (T, D) embedding (subset of ``layers``).
    """

    name: ClassVar[str] = ""
    sample_rate: int
    frame_rate: float
    dim: int
    layers: list[int] | None = None
    default_layers: list[int] | None = None

    @abstractmethod
    def _embed(self, audio: np.ndarray) -> np.ndarray:
        """(n_samples,) float32 at self.sample_rate -> (T, D) float32, or (T, L, D) for multi-layer models."""

    def prepare(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float32 at ``self.sample_rate`` (the single input-conditioning step)."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"{self.name}: expected mono audio (n_samples,), got shape {audio.shape}")
        if audio.size == 0:
            raise ValueError(f"{self.name}: empty audio clip")
        return resample(audio, sample_rate, self.sample_rate)

    def frame_times(self, n_samples: int, n_frames: int) -> np.ndarray:
        """(T,) seconds of each frame of a clip of ``n_samples`` at the model rate (uniform frames from 0;
        backends that skip time override this)."""
        return np.arange(n_frames) / self.frame_rate

    def _layers(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self._embed(x), dtype=np.float32)
        return out[:, None, :] if out.ndim == 2 else out

    def layer_embeddings(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Frames of every stored layer: (T, L, D) float32 (L = 1 for one-layer models)."""
        return self._layers(self.prepare(audio, sample_rate))

    def combine_layers(self, frames: np.ndarray) -> np.ndarray:
        """(T, L, D) -> (T, D): mean over ``default_layers`` (the only layer of one-layer models)."""
        if frames.shape[1] == 1:
            return frames[:, 0]
        idx = [self.layers.index(i) for i in self.default_layers]
        return frames[:, idx].mean(axis=1, dtype=np.float32)

    def timestamp_embeddings(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame embeddings of one mono clip.

        Parameters
        ----------
        audio : (n_samples,) float mono.
        sample_rate : rate of ``audio``.

        Returns
        -------
        frames : (T, D) float32 (multi-layer models: mean over ``default_layers``).
        times : (T,) float64, centre of each frame in seconds.
        """
        x = self.prepare(audio, sample_rate)
        frames = self.combine_layers(self._layers(x))
        return frames, self.frame_times(len(x), len(frames))

    def timestamp_embeddings_many(self, clips: list[np.ndarray], sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`timestamp_embeddings` of several clips; backends whose network is cheaper per item in
        larger batches (Basic Pitch) override it to batch across clips, with identical results."""
        return [self.timestamp_embeddings(a, sample_rate) for a in clips]

    def store_embeddings_many(self, clips: list[np.ndarray], sample_rate: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """:meth:`store_embeddings` of several clips (the extraction engines hand over chunks of a store)."""
        return [self.store_embeddings(a, sample_rate) for a in clips]

    def scene_embedding(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(n_samples,) -> (2D,) mean‖std pooled embedding."""
        return mean_std(self.timestamp_embeddings(audio, sample_rate)[0])

    def store_embeddings(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray | None]:
        """What an embedding store keeps of one clip: frames (T, L, D) and the pooled (2D,) vector, or
        None to let the store pool the frames (mean‖std of the default layer combination)."""
        return self.layer_embeddings(audio, sample_rate), None

    def pooled_embedding(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(n_samples,) -> (2D,) float32 pooled exactly as an embedding store pools this model's clips
        (mean‖std of the default layer combination, or the model's own pooling, e.g. concat per member):
        what scores a clip with a checkpoint trained on a store's ``pooled`` vectors."""
        frames, pooled = self.store_embeddings(audio, sample_rate)
        return pooled.astype(np.float32) if pooled is not None else mean_std(self.combine_layers(frames))

    def params(self) -> dict:
        """What identifies this model's output."""
        return {}

    def identity(self) -> dict:
        """Backend name and params: stored with the embeddings, and checked when a quality checkpoint
        trained on one store scores another (both must come from the same model settings)."""
        return {"backend": self.name, **self.params()}
