"""The extractor interface, modelled on the HEAR API.

Every backend is one module that subclasses :class:`Extractor` and registers itself by name:

    @register("logmel")
    class LogMel(Extractor): ...

``load_model(name, **params)`` builds it once (weights loaded here, not per call);
``timestamp_embeddings(audio, sample_rate)`` -> ``(frames (T, D), times (T,))``;
``scene_embedding`` -> mean‖std pooled ``(2D,)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from math import gcd
from typing import ClassVar

import numpy as np

from ..models.pooling import mean_std_pool

REGISTRY: dict[str, type[Extractor]] = {}


def register(name: str):
    def deco(cls: type[Extractor]) -> type[Extractor]:
        if name in REGISTRY:
            raise ValueError(f"extractor '{name}' registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return deco


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (exact rational ratio); a no-op when the rates agree."""
    if sr_in == sr_out:
        return audio
    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)


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
    dim : D, size of one frame embedding.
    """

    name: ClassVar[str] = ""
    sample_rate: int
    frame_rate: float
    dim: int

    @abstractmethod
    def _embed(self, audio: np.ndarray) -> np.ndarray:
        """(n_samples,) float32 at self.sample_rate -> (T, D) float32."""

    def timestamp_embeddings(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame embeddings of one mono clip.

        Parameters
        ----------
        audio : (n_samples,) float mono.
        sample_rate : rate of ``audio``.

        Returns
        -------
        frames : (T, D) float32.
        times : (T,) float64, centre of each frame in seconds.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"{self.name}: expected mono audio (n_samples,), got shape {audio.shape}")
        frames = self._embed(resample(audio, sample_rate, self.sample_rate))
        return frames, np.arange(len(frames)) / self.frame_rate

    def scene_embedding(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(n_samples,) -> (2D,) mean‖std pooled embedding."""
        return mean_std(self.timestamp_embeddings(audio, sample_rate)[0])

    def params(self) -> dict:
        """What identifies this model's output (stored with the embeddings)."""
        return {}


def load_model(name: str, **params) -> Extractor:
    """Build a registered extractor once (HEAR's ``load_model``)."""
    from . import available  # noqa: F401  (imports the backend modules so they register)

    if name not in REGISTRY:
        raise KeyError(f"params extract.extractor: unknown extractor '{name}' (have: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name](**params)
