"""T3 metrics: does a representation find the same passage played by another pianist, and how much of
its variation is passage vs performer?

Retrieval: every window queries all windows of OTHER performances (cosine similarity of the
z-scored pooled embeddings); a hit is a window of the same score folder and the same bars. Reported
as top-1 accuracy and mean average precision, with the chance level, a duration-only baseline (same
bars played by different pianists last about as long: a representation must beat that), a 95% CI
resampling score folders, and a permutation test that shuffles windows within each folder (keeps
"same piece", destroys "same bars").

Variance split: in each score folder every selected performer plays every selected window (a balanced
two-way layout), so a representation's within-folder variation splits exactly into a passage part
(window means), a performer part (performance means) and the rest (interaction + noise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _standardise(E: np.ndarray) -> np.ndarray:
    E = np.asarray(E, dtype=np.float64)
    sd = E.std(0)
    return (E - E.mean(0)) / np.where(sd > 0, sd, 1.0)


def cosine_similarity(E: np.ndarray) -> np.ndarray:
    """(N, N) cosine similarity of the rows of column-standardised E (N, d)."""
    Z = _standardise(E)
    Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    return Z @ Z.T


def retrieval_scores(S: np.ndarray, passage: np.ndarray, performance: np.ndarray,
                     candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-query top-1 hit and average precision.

    Parameters
    ----------
    S : (N, N) similarity (higher = closer).
    passage : (N,) passage label (folder + bars); performance : (N,) performance label.
    candidates : optional (N, N) bool mask of allowed candidates (default: every other performance).

    Returns
    -------
    (top1 (N,) float, ap (N,) float); NaN for a query without positive candidates.
    """
    passage, performance = np.asarray(passage), np.asarray(performance)
    n = len(passage)
    allowed = performance[:, None] != performance[None, :]
    if candidates is not None:
        allowed &= candidates
    top1, ap = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        cand = np.flatnonzero(allowed[i])
        pos = passage[cand] == passage[i]
        if not pos.any():
            continue
        order = np.lexsort((cand, -S[i, cand]))  # ties broken by index: deterministic
        hits = pos[order]
        top1[i] = float(hits[0])
        ranks = np.flatnonzero(hits) + 1
        ap[i] = float(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return top1, ap


def chance_levels(passage: np.ndarray, performance: np.ndarray, candidates: np.ndarray | None = None) -> dict:
    """Expected top-1 and AP of a random ranking (AP by its exact expectation over random orders)."""
    passage, performance = np.asarray(passage), np.asarray(performance)
    allowed = performance[:, None] != performance[None, :]
    if candidates is not None:
        allowed &= candidates
    t1, aps = [], []
    for i in range(len(passage)):
        cand = np.flatnonzero(allowed[i])
        R, N = int((passage[cand] == passage[i]).sum()), len(cand)
        if R == 0:
            continue
        t1.append(R / N)
        # exact E[AP] of a random order with R relevant among N (Bestgen 2015)
        k = np.arange(1, N + 1)
        aps.append(float((R - 1) / (N - 1) + (N - R) / (N - 1) * np.sum(1.0 / k) / N) if N > 1 else 1.0)
    return {"top1": float(np.mean(t1)) if t1 else None, "map": float(np.mean(aps)) if aps else None}


def folder_bootstrap_ci(values: np.ndarray, folder: np.ndarray, *, n_boot: int, seed: int,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean of per-query values resampling whole score folders."""
    values, folder = np.asarray(values, dtype=float), np.asarray(folder)
    ok = np.isfinite(values)
    values, folder = values[ok], folder[ok]
    groups = np.unique(folder)
    sums = np.array([values[folder == g].sum() for g in groups])
    counts = np.array([(folder == g).sum() for g in groups])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    means = sums[idx].sum(1) / counts[idx].sum(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def within_folder_permutation_p(E: np.ndarray, passage: np.ndarray, performance: np.ndarray, folder: np.ndarray,
                                *, n_perm: int, seed: int) -> tuple[float, np.ndarray]:
    """p of the observed mAP against shuffling embedding rows within each score folder (one-sided)."""
    S = cosine_similarity(E)
    obs = float(np.nanmean(retrieval_scores(S, passage, performance)[1]))
    folder = np.asarray(folder)
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for b in range(n_perm):
        perm = np.arange(len(folder))
        for g in np.unique(folder):
            rows = np.flatnonzero(folder == g)
            perm[rows] = rng.permutation(rows)
        null[b] = np.nanmean(retrieval_scores(S[np.ix_(perm, perm)], passage, performance)[1])
    return float((1 + (null >= obs - 1e-12).sum()) / (n_perm + 1)), null


def variance_split(Y: np.ndarray, folder: np.ndarray, passage: np.ndarray, performance: np.ndarray) -> dict:
    """Split the within-folder variation of Y (N, q) into passage, performer and residual shares.

    Each folder must be balanced (every performance has every passage once). Sums of squares are
    added over folders and columns, so the shares refer to the total within-folder variation.

    Returns
    -------
    {"passage", "performer", "residual"} shares (sum 1), per-column shares under "per_column" and the
    sums of squares per folder under "ss_by_folder" ((F, 3), for :func:`variance_split_ci`).
    """
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    folder, passage, performance = map(np.asarray, (folder, passage, performance))
    ss = np.zeros((3, Y.shape[1]))
    by_folder = []
    for g in np.unique(folder):
        rows = np.flatnonzero(folder == g)
        t = pd.DataFrame({"pa": passage[rows], "pe": performance[rows]})
        n_pa, n_pe = t["pa"].nunique(), t["pe"].nunique()
        if len(rows) != n_pa * n_pe or t.duplicated().any():
            raise ValueError(f"variance_split: folder '{g}' is not balanced ({len(rows)} windows, "
                             f"{n_pa} passages x {n_pe} performances)")
        Yg = Y[rows] - Y[rows].mean(0)
        pa_mean = pd.DataFrame(Yg).groupby(t["pa"].to_numpy()).transform("mean").to_numpy()
        pe_mean = pd.DataFrame(Yg).groupby(t["pe"].to_numpy()).transform("mean").to_numpy()
        ss_g = np.stack([(pa_mean ** 2).sum(0), (pe_mean ** 2).sum(0), ((Yg - pa_mean - pe_mean) ** 2).sum(0)])
        ss += ss_g
        by_folder.append(ss_g.sum(1))
    total = ss.sum()
    shares = ss.sum(1) / total if total > 0 else np.full(3, np.nan)
    col_tot = ss.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_col = ss / np.where(col_tot > 0, col_tot, np.nan)
    return {"passage": float(shares[0]), "performer": float(shares[1]), "residual": float(shares[2]),
            "per_column": per_col, "ss_by_folder": np.asarray(by_folder)}


def variance_split_ci(ss_by_folder: np.ndarray, *, n_boot: int, seed: int, level: float = 0.95) -> dict:
    """Percentile CIs of the passage / performer / residual shares resampling score folders."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ss_by_folder), size=(n_boot, len(ss_by_folder)))
    tot = ss_by_folder[idx].sum(1)  # (n_boot, 3)
    shares = tot / tot.sum(1, keepdims=True)
    a = (1 - level) / 2
    lo, hi = np.quantile(shares, a, axis=0), np.quantile(shares, 1 - a, axis=0)
    return {k: [float(lo[i]), float(hi[i])] for i, k in enumerate(("passage", "performer", "residual"))}
