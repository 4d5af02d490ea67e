"""``concat``: several extractors side by side, their frames aligned onto one frame grid.

Each member embeds the same clip (its own resampling and windowing); its frames are averaged into the
bins of the target grid (frame i covers [(i - 1/2) / rate, (i + 1/2) / rate) seconds, the convention of
a centred STFT such as ``logmel``), and only the bins that every member covers are kept. A member
that runs on part of the clip (``basic_pitch`` with ``window_stride`` > 1) therefore restricts the
concatenated *frames* to the times it saw.

The pooled (scene) embedding is pooled per member over that member's own frames — all log-mel frames,
the Basic Pitch frames of the windows it ran — laid out as [means of all members ‖ stds of all
members] (the layout of a mean‖std vector of the concatenated frames). Pooling log-mel only over the
sampled windows' bins cost 0.08 ridge R² on the pianist split (benchmarks/extractors.json), so the
frame-level alignment is kept for frame consumers, not for the pooled statistics.

The store records which columns came from which member (:meth:`Concat.parts`), so a member's block can
be read back out of a concatenated store.
"""

from __future__ import annotations

import numpy as np

from .base import Extractor, mean_std
from .registry import load_model, register


def align_to_grid(frames: np.ndarray, times: np.ndarray, rate: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Average (T, D) frames at ``times`` (s) into ``n_bins`` bins of a ``rate`` Hz grid.

    Returns
    -------
    binned : (n_bins, D) float32 (zeros where no frame falls).
    covered : (n_bins,) bool, True where at least one frame fell.
    """
    idx = np.floor(np.asarray(times) * rate + 0.5).astype(np.int64)
    ok = (idx >= 0) & (idx < n_bins)
    sums = np.zeros((n_bins, frames.shape[1]), np.float64)
    np.add.at(sums, idx[ok], frames[ok])
    counts = np.bincount(idx[ok], minlength=n_bins)
    covered = counts > 0
    sums[covered] /= counts[covered, None]
    return sums.astype(np.float32), covered


@register("concat")
class Concat(Extractor):
    """Members' frames concatenated per time bin of ``frame_rate`` (default: the first member's rate).

    Parameters
    ----------
    members : list of {"name": registered extractor, **its params}, in column order.
    frame_rate : the common grid (Hz).
    """

    def __init__(self, members: list[dict], frame_rate: float | None = None):
        if not members or len(members) < 2:
            raise ValueError(f"concat: needs at least two members, got {members!r}")
        self.members, self.member_specs = [], []
        for spec in members:
            spec = dict(spec)
            name = spec.pop("name", None)
            if not name:
                raise ValueError(f"concat: member {spec!r} has no 'name'")
            model = load_model(name, **spec)   # cached: the same model as when used on its own
            if model.layers is not None and len(model.layers) > 1 and model.default_layers is None:
                raise ValueError(f"concat: member '{name}' has several layers and no default_layers")
            self.members.append(model)
            self.member_specs.append({"name": name, **model.params()})
        self.frame_rate = float(frame_rate or self.members[0].frame_rate)
        # Input is brought to the first member's rate once; other members resample from there.
        self.sample_rate = self.members[0].sample_rate
        self.dim = sum(m.dim for m in self.members)

    def params(self) -> dict:
        return {"members": self.member_specs, "frame_rate": self.frame_rate}

    def parts(self) -> list[dict]:
        """[{"name", "start", "stop"}]: each member's columns in the concatenated frame."""
        out, start = [], 0
        for spec, m in zip(self.member_specs, self.members):
            out.append({"name": spec["name"], "start": start, "stop": start + m.dim})
            start += m.dim
        return out

    def _members(self, x: np.ndarray, member_out: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n,) audio at self.sample_rate -> (frames (T, sum D), times (T,)) on the common grid, and the
        pooled (2 sum D,) vector of each member over its own frames. ``member_out``: each member's
        (frames, times) of this clip when already computed (batched over clips)."""
        n_bins = int(np.floor(len(x) / self.sample_rate * self.frame_rate)) + 1
        blocks, covered, means, stds = [], np.ones(n_bins, bool), [], []
        for k, m in enumerate(self.members):
            frames, times = member_out[k] if member_out is not None else m.timestamp_embeddings(x, self.sample_rate)
            b, c = align_to_grid(frames, times, self.frame_rate, n_bins)
            blocks.append(b)
            covered &= c
            pooled = mean_std(frames)
            means.append(pooled[:m.dim])
            stds.append(pooled[m.dim:])
        if not covered.any():
            raise ValueError(f"concat: the members share no frame on a {len(x) / self.sample_rate:.3f} s clip")
        keep = np.flatnonzero(covered)
        return (np.concatenate([b[keep] for b in blocks], axis=1), keep / self.frame_rate,
                np.concatenate(means + stds).astype(np.float32))

    def _aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._members(x)[:2]

    def _embed(self, x: np.ndarray) -> np.ndarray:
        return self._aligned(x)[0]

    def timestamp_embeddings(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        return self._aligned(self.prepare(audio, sample_rate))

    def scene_embedding(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """[means ‖ stds] of each member over its own frames."""
        return self._members(self.prepare(audio, sample_rate))[2]

    def store_embeddings(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        frames, _, pooled = self._members(self.prepare(audio, sample_rate))
        return frames[:, None, :], pooled

    def store_embeddings_many(self, clips: list[np.ndarray], sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each member embeds the whole chunk of clips at once (so a batching member batches across clips)."""
        xs = [self.prepare(a, sample_rate) for a in clips]
        per_member = [m.timestamp_embeddings_many(xs, self.sample_rate) for m in self.members]
        out = []
        for i, x in enumerate(xs):
            frames, _, pooled = self._members(x, [pm[i] for pm in per_member])
            out.append((frames[:, None, :], pooled))
        return out
