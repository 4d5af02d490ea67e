"""Mean‖std pooling of frame embeddings (torch, masked batch) and its numpy twin."""

from __future__ import annotations

import numpy as np
import torch

# Variance floor: std of a constant feature becomes sqrt(EPS) instead of 0, which keeps sqrt's
# gradient finite and is far below any real feature's spread.
EPS = 1e-12


def masked_mean_std(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean‖std over the valid frames of each sequence.

    Parameters
    ----------
    frames : tensor (B, T, D)
        Padded frames; values at padded positions are ignored (even NaN).
    mask : bool tensor (B, T)
        True for real frames. Every row needs at least one.

    Returns
    -------
    pooled : tensor (B, 2D)
        ``[mean, std]`` with population std (divide by the count), same dtype as ``frames``.
    """
    if frames.ndim != 3 or mask.shape != frames.shape[:2]:
        raise ValueError(f"frames (B,T,D) and mask (B,T) expected, got {tuple(frames.shape)} and {tuple(mask.shape)}")
    mask = mask.to(torch.bool)
    counts = mask.sum(dim=1)
    if bool((counts == 0).any()):
        bad = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"rows {bad} have no valid frames")
    m = mask.unsqueeze(-1)
    x = torch.where(m, frames, torch.zeros((), dtype=frames.dtype))
    n = counts.to(frames.dtype).unsqueeze(-1)
    mean = x.sum(dim=1) / n
    dev = torch.where(m, frames - mean.unsqueeze(1), torch.zeros((), dtype=frames.dtype))
    var = (dev * dev).sum(dim=1) / n
    return torch.cat([mean, var.clamp_min(EPS).sqrt()], dim=-1)


def mean_std_pool(frames: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`masked_mean_std` for one unpadded sequence.

    Parameters
    ----------
    frames : array (T, D), T >= 1

    Returns
    -------
    pooled : float64 array (2D,)
        ``[mean, std]``, population std with the same variance floor as the torch version.
    """
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"frames: expected shape (T>=1, D), got {x.shape}")
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    return np.concatenate([mean, np.sqrt(np.maximum(var, EPS))])
