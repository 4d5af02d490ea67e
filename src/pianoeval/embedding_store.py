"""One safetensors file per dataset holding every segment's frame embeddings.

Tensors
    frames   (sum T_i, D)  concatenated frames of all segments (float32 or float16)
    offsets  (N + 1,)      int64; segment i is frames[offsets[i]:offsets[i + 1]]
    pooled   (N, 2D)       float32 mean‖std of each segment's frames (what most models consume)
Metadata (strings): keys (JSON list), extractor, extractor_params (JSON), frame_rate, dim.

Reading is lazy: safetensors memory-maps the file and ``frames(key)`` slices only that segment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors import safe_open

from .extractors.base import mean_std
from .io import save_safetensors


def write_embedding_store(path: str | Path, items: Iterable[tuple[str, np.ndarray]], *, extractor: str,
                          extractor_params: dict, frame_rate: float, dtype: str = "float32") -> dict:
    """Write (key, frames (T, D)) pairs to one store; returns a small summary dict."""
    keys, chunks, pooled, offsets = [], [], [], [0]
    for key, frames in items:
        frames = np.asarray(frames)
        if frames.ndim != 2 or len(frames) == 0:
            raise ValueError(f"embedding store: segment '{key}' has frames of shape {frames.shape}, need (T>0, D)")
        if chunks and frames.shape[1] != chunks[0].shape[1]:
            raise ValueError(f"embedding store: segment '{key}' has D={frames.shape[1]}, expected {chunks[0].shape[1]}")
        if not np.isfinite(frames).all():
            raise ValueError(f"embedding store: segment '{key}' has non-finite values")
        keys.append(key)
        chunks.append(frames.astype(dtype))
        pooled.append(mean_std(frames))
        offsets.append(offsets[-1] + len(frames))
    if not keys:
        raise ValueError("embedding store: no segments to write")
    if len(set(keys)) != len(keys):
        raise ValueError("embedding store: duplicate keys")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"frames": np.concatenate(chunks), "offsets": np.asarray(offsets, dtype=np.int64),
               "pooled": np.stack(pooled).astype(np.float32)}
    meta = {"keys": json.dumps(keys), "extractor": extractor, "extractor_params": json.dumps(extractor_params,
            sort_keys=True), "frame_rate": repr(float(frame_rate)), "dim": str(tensors["frames"].shape[1])}
    save_safetensors(tensors, path, metadata=meta)
    return {"segments": len(keys), "frames": int(offsets[-1]), "dim": int(tensors["frames"].shape[1]),
            "bytes": path.stat().st_size}


class EmbeddingStore:
    """Lazy reader. ``keys``, ``dim``, ``frame_rate``, ``extractor``; ``frames(key)`` -> (T, D) float32,
    ``pooled(keys=None)`` -> (N, 2D), ``frames_list(keys)`` -> list of (T, D)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: embedding store not found (run the extract stage)")
        self._f = safe_open(str(self.path), framework="np")
        meta = self._f.metadata() or {}
        try:
            self.keys: list[str] = json.loads(meta["keys"])
            self.extractor: str = meta["extractor"]
            self.extractor_params: dict = json.loads(meta["extractor_params"])
            self.frame_rate = float(meta["frame_rate"])
            self.dim = int(meta["dim"])
        except KeyError as e:
            raise ValueError(f"{self.path}: not an embedding store (metadata {e} missing)") from None
        self._offsets = self._f.get_tensor("offsets")
        self._pos = {k: i for i, k in enumerate(self.keys)}
        self._frames = self._f.get_slice("frames")

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self._pos

    def index(self, key: str) -> int:
        try:
            return self._pos[key]
        except KeyError:
            raise KeyError(f"{self.path}: no segment '{key}' in the embedding store") from None

    def n_frames(self, key: str) -> int:
        i = self.index(key)
        return int(self._offsets[i + 1] - self._offsets[i])

    def frames(self, key: str) -> np.ndarray:
        i = self.index(key)
        return self._frames[int(self._offsets[i]):int(self._offsets[i + 1])].astype(np.float32)

    def frames_list(self, keys: Iterable[str]) -> list[np.ndarray]:
        return [self.frames(k) for k in keys]

    def pooled(self, keys: Iterable[str] | None = None) -> np.ndarray:
        pooled = self._f.get_tensor("pooled")
        if keys is None:
            return pooled
        return pooled[[self.index(k) for k in keys]]
