"""Rank statistics for the tiers: Spearman rho with a bootstrap over groups, a permutation test that
shuffles a group-level label across groups, and Holm's step-down correction.

The unit of independence in T2 is the performer-year (placement is a property of the pianist in
that year, and a pianist's segments share it), so intervals resample performer-years and the null
shuffles placements across performer-years, whatever level rho is computed at.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _corr_rows(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between each column of A (n, q) and each row of b (m, n) -> (m, q)."""
    A = A - A.mean(0)
    b = b - b.mean(1, keepdims=True)
    num = b @ A
    den = np.sqrt((b * b).sum(1))[:, None] * np.sqrt((A * A).sum(0))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def spearman_columns(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each column of X (n, q) with y (n,) -> (q,); NaN where a variable is constant."""
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y, dtype=float)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"spearman: X has {X.shape[0]} rows, y has {y.shape[0]}")
    return _corr_rows(rankdata(X, axis=0), rankdata(y)[None, :])[0]


def group_permutation_p(X: np.ndarray, group_values: np.ndarray, group_index: np.ndarray, *, n_perm: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided permutation p of Spearman rho between X's columns and a group-level variable.

    Parameters
    ----------
    X : (n, q) row values (segments, or one row per group).
    group_values : (G,) the variable per group (e.g. placement per performer-year).
    group_index : (n,) int in [0, G): the group of each row.
    n_perm : shuffles of ``group_values`` across groups; p = (1 + #{|rho*| >= |rho|}) / (n_perm + 1).

    Returns
    -------
    (rho (q,), p (q,)).
    """
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    gv = np.asarray(group_values, dtype=float)
    gi = np.asarray(group_index, dtype=np.int64)
    if gi.shape != (X.shape[0],) or gi.min(initial=0) < 0 or gi.max(initial=0) >= len(gv):
        raise ValueError("group_index must give each row of X a group in [0, len(group_values))")
    rx = rankdata(X, axis=0)
    rho = _corr_rows(rx, rankdata(gv[gi])[None, :])[0]
    rng = np.random.default_rng(seed)
    perms = np.stack([gv[rng.permutation(len(gv))][gi] for _ in range(n_perm)])
    null = _corr_rows(rx, rankdata(perms, axis=1))
    with np.errstate(invalid="ignore"):
        exceed = (np.abs(null) >= np.abs(rho)[None, :] - 1e-12).sum(0)
    p = (1.0 + exceed) / (n_perm + 1.0)
    return rho, np.where(np.isfinite(rho), p, np.nan)


def _weighted_ranks(values: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Average ranks of ``values`` (N,) in each weighted sample (rows of W (B, N): how many times each
    row is drawn), equal to ``rankdata`` of the sample with row i repeated W[b, i] times."""
    uniq, inv = np.unique(values, return_inverse=True)
    block = np.zeros((W.shape[0], len(uniq)))
    np.add.at(block.T, inv, W.T)  # total weight of each distinct value, per sample
    before = np.cumsum(block, axis=1) - block
    return (before + (block + 1.0) / 2.0)[:, inv]


def _weighted_corr(A: np.ndarray, b: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted Pearson r per sample: A (B, N, q), b (B, N), W (B, N) -> (B, q)."""
    w = W / W.sum(1, keepdims=True)
    A = A - np.einsum("bn,bnq->bq", w, A)[:, None, :]
    b = b - (w * b).sum(1, keepdims=True)
    num = np.einsum("bn,bnq,bn->bq", w, A, b)
    den = np.sqrt(np.einsum("bn,bnq->bq", w, A * A) * (w * b * b).sum(1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), np.nan)


def group_bootstrap_ci(X: np.ndarray, y: np.ndarray, group_index: np.ndarray, *, n_boot: int, seed: int,
                       level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of Spearman rho (X columns vs y) resampling whole groups with replacement.

    Each resample is a weight per row (how often its group was drawn); ranks and correlations are
    computed on the weighted sample, which equals the rho of the explicitly duplicated rows (a test
    checks this) at a fraction of the cost. Resamples where a variable is constant are skipped.

    Returns (low (q,), high (q,)).
    """
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y, dtype=float)
    gi = np.unique(np.asarray(group_index), return_inverse=True)[1].ravel()
    G = gi.max() + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, G, size=(n_boot, G))
    counts = np.zeros((n_boot, G))
    np.add.at(counts, (np.repeat(np.arange(n_boot), G), draws.ravel()), 1.0)
    W = counts[:, gi]  # (B, N)
    ry = _weighted_ranks(y, W)
    RX = np.stack([_weighted_ranks(X[:, j], W) for j in range(X.shape[1])], axis=2)  # (B, N, q)
    B = _weighted_corr(RX, ry, W)
    alpha = (1.0 - level) / 2.0
    low, high = np.full(X.shape[1], np.nan), np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        ok = np.isfinite(B[:, j])
        if ok.any():
            low[j], high[j] = np.quantile(B[ok, j], alpha), np.quantile(B[ok, j], 1.0 - alpha)
    return low, high


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p values (family-wise error), NaN entries left out and kept NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out
