"""One safetensors file per dataset holding every segment's frame embeddings.

Tensors
    frames         (sum T_i, D) or (sum T_i, L, D)  concatenated frames of all segments (float32 or
                   float16); multi-layer models keep a layer axis: L stored hidden states of one pass
    offsets        (N + 1,)   int64; segment i is frames[offsets[i]:offsets[i + 1]]
    pooled         (N, 2D)    float32 mean‖std of each segment's frames (multi-layer: of the mean over
                   ``default_layers``; concat: of each member over its own frames): what most models
                   consume
    pooled_layers  (N, L, 2D) float32 mean‖std per stored layer (multi-layer stores only)
Metadata (strings): keys (JSON list), extractor, extractor_params (JSON), frame_rate, dim; multi-layer
stores add layers and default_layers (JSON lists of hidden-state indices); a ``concat`` store adds parts
(JSON list of {name, start, stop}: each member's columns).

Reading is lazy: safetensors memory-maps the file and ``frames(key)`` slices only that segment.

Where the stores live: ``extract@<name>`` writes ``<extract.out_dir>/<name>.safetensors``;
:func:`default_store_path` is the one the downstream stages read (``extract.extractor`` in params.yaml).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors import safe_open

from .io import load_params, save_safetensors
from .models.pooling import mean_std_pool


def store_path(name: str, out_dir: str | Path | None = None) -> Path:
    """The store of configured extractor ``name``: ``<extract.out_dir>/<name>.safetensors``."""
    if out_dir is None:
        out_dir = load_params("extract")["out_dir"]
    return Path(out_dir) / f"{name}.safetensors"


def default_store_path(params_path: str | Path = "params.yaml") -> Path:
    """THE default embeddings of T1: the store of ``extract.extractor`` (train_quality, audit, ... read it)."""
    ex = load_params("extract", params_path)
    if ex["extractor"] not in ex["extractors"]:
        raise ValueError(f"{params_path}: extract.extractor '{ex['extractor']}' is not in extract.extractors "
                         f"{ex['extractors']} (no extract@ stage would write it)")
    return store_path(ex["extractor"], ex["out_dir"])


def _pool(frames: np.ndarray) -> np.ndarray:
    return mean_std_pool(frames).astype(np.float32)


def write_embedding_store(path: str | Path, items: Iterable[tuple[str, np.ndarray]], *, extractor: str,
                          extractor_params: dict, frame_rate: float, dtype: str = "float32",
                          layers: list[int] | None = None, default_layers: list[int] | None = None,
                          parts: list[dict] | None = None) -> dict:
    """Write (key, frames) or (key, frames, pooled) items to one store; returns a small summary dict.

    frames : (T, D), or (T, L, D) when ``layers`` (L hidden-state indices) is given; then ``pooled`` is
    the mean‖std of the mean over ``default_layers`` (all stored layers if None).
    """
    multi = layers is not None and len(layers) > 1
    if multi:
        default_layers = list(default_layers if default_layers is not None else layers)
        missing = [i for i in default_layers if i not in layers]
        if missing:
            raise ValueError(f"embedding store: default_layers {missing} are not among the stored layers {layers}")
        sel = [list(layers).index(i) for i in default_layers]
    keys, chunks, pooled, pooled_layers, offsets = [], [], [], [], [0]
    for item in items:
        key, frames = item[0], np.asarray(item[1])
        given = item[2] if len(item) > 2 else None  # an extractor's own pooled vector (concat)
        if multi and frames.ndim == 3 and frames.shape[1] != len(layers):
            raise ValueError(f"embedding store: segment '{key}' has {frames.shape[1]} layers, expected {len(layers)}")
        if frames.ndim == 3 and not multi:
            if frames.shape[1] != 1:
                raise ValueError(f"embedding store: segment '{key}' has {frames.shape[1]} layers but no layers given")
            frames = frames[:, 0]
        if frames.ndim != (3 if multi else 2) or len(frames) == 0:
            raise ValueError(f"embedding store: segment '{key}' has frames of shape {frames.shape}, "
                             f"need {'(T>0, L, D)' if multi else '(T>0, D)'}")
        if chunks and frames.shape[1:] != chunks[0].shape[1:]:
            raise ValueError(f"embedding store: segment '{key}' has shape {frames.shape[1:]} per frame, "
                             f"expected {chunks[0].shape[1:]}")
        if not np.isfinite(frames).all():
            raise ValueError(f"embedding store: segment '{key}' has non-finite values")
        keys.append(key)
        chunks.append(frames.astype(dtype))
        if given is not None:
            given = np.asarray(given, dtype=np.float32)
            if multi or given.shape != (2 * frames.shape[-1],) or not np.isfinite(given).all():
                raise ValueError(f"embedding store: segment '{key}' has a pooled vector of shape {given.shape}, "
                                 f"need finite ({2 * frames.shape[-1]},) for a one-layer store")
            pooled.append(given)
        elif multi:
            pooled.append(_pool(frames[:, sel].mean(axis=1, dtype=np.float32)))
            pooled_layers.append(np.stack([_pool(frames[:, j]) for j in range(frames.shape[1])]))
        else:
            pooled.append(_pool(frames))
        offsets.append(offsets[-1] + len(frames))
    if not keys:
        raise ValueError("embedding store: no segments to write")
    if len(set(keys)) != len(keys):
        raise ValueError("embedding store: duplicate keys")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"frames": np.concatenate(chunks), "offsets": np.asarray(offsets, dtype=np.int64),
               "pooled": np.stack(pooled).astype(np.float32)}
    dim = int(tensors["frames"].shape[-1])
    meta = {"keys": json.dumps(keys), "extractor": extractor, "extractor_params": json.dumps(extractor_params,
            sort_keys=True), "frame_rate": repr(float(frame_rate)), "dim": str(dim)}
    if multi:
        tensors["pooled_layers"] = np.stack(pooled_layers).astype(np.float32)
        meta["layers"] = json.dumps([int(i) for i in layers])
        meta["default_layers"] = json.dumps([int(i) for i in default_layers])
    if parts:
        meta["parts"] = json.dumps(parts, sort_keys=True)
    save_safetensors(tensors, path, metadata=meta)
    return {"segments": len(keys), "frames": int(offsets[-1]), "dim": dim,
            "layers": len(layers) if multi else 1, "bytes": path.stat().st_size}


class EmbeddingStore:
    """Lazy reader. ``keys``, ``dim``, ``frame_rate``, ``extractor``, ``layers`` (None for one-layer
    stores), ``default_layers``, ``parts``.

    ``frames(key, layers=None)`` -> (T, D) float32: the default combination, one stored layer (int) or
    the mean of several (list); ``frames_all_layers(key)`` -> (T, L, D);
    ``pooled(keys=None, layers=None, part=None)`` -> (N, 2D) (``part``: one concat member's columns,
    (N, 2 D_part)); ``frames_list(keys)`` -> list of (T, D).
    """

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
        self.layers: list[int] | None = json.loads(meta["layers"]) if "layers" in meta else None
        self.default_layers: list[int] | None = json.loads(meta["default_layers"]) if "default_layers" in meta else None
        self.parts: list[dict] = json.loads(meta["parts"]) if "parts" in meta else []
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

    def _layer_index(self, layers) -> list[int]:
        wanted = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
        if self.layers is None:
            raise ValueError(f"{self.path}: one-layer store ({self.extractor}); no layer {wanted} to select")
        bad = [i for i in wanted if i not in self.layers]
        if bad or not wanted:
            raise KeyError(f"{self.path}: layers {bad or wanted} not stored (have {self.layers})")
        return [self.layers.index(i) for i in wanted]

    def frames_all_layers(self, key: str) -> np.ndarray:
        """(T, L, D) float32 (L = 1 for one-layer stores)."""
        i = self.index(key)
        x = self._frames[int(self._offsets[i]):int(self._offsets[i + 1])].astype(np.float32)
        return x if x.ndim == 3 else x[:, None, :]

    def frames(self, key: str, layers=None) -> np.ndarray:
        if self.layers is None and layers is None:
            i = self.index(key)
            return self._frames[int(self._offsets[i]):int(self._offsets[i + 1])].astype(np.float32)
        idx = self._layer_index(self.default_layers if layers is None else layers)
        return self.frames_all_layers(key)[:, idx].mean(axis=1, dtype=np.float32)

    def frames_list(self, keys: Iterable[str], layers=None) -> list[np.ndarray]:
        return [self.frames(k, layers) for k in keys]

    def part_columns(self, part: str) -> np.ndarray:
        """Column indices of concat member ``part`` in the pooled (2D,) vector (its means, then its stds)."""
        for p in self.parts:
            if p["name"] == part:
                return np.r_[p["start"]:p["stop"], self.dim + p["start"]:self.dim + p["stop"]]
        raise KeyError(f"{self.path}: no part '{part}' (parts: {[p['name'] for p in self.parts]})")

    def pooled(self, keys: Iterable[str] | None = None, layers=None, part: str | None = None) -> np.ndarray:
        rows = None if keys is None else [self.index(k) for k in keys]
        if layers is None:
            pooled = self._f.get_tensor("pooled")
        elif isinstance(layers, (int, np.integer)):
            pooled = self._f.get_tensor("pooled_layers")[:, self._layer_index(layers)[0]]
        else:  # the mean of several layers is pooled from the frames (std is not linear in layers)
            sel = self.keys if keys is None else list(keys)
            pooled = np.stack([_pool(self.frames(k, layers)) for k in sel])
            rows = None
        if rows is not None:
            pooled = pooled[rows]
        return pooled if part is None else pooled[:, self.part_columns(part)]
